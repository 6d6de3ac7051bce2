import CourierCore
import Foundation

/// Users, sessions and API tokens.
public protocol AccountStore: AnyObject, Sendable {
    func createUser(name: String, passwordHash: String, role: Role, by actor: ActingUser) async throws -> UserRecord
    func userCount() async throws -> Int
    /// The first administrator, through the first-run setup page: only while no user exists
    /// (checked in the same transaction, so two submissions cannot both succeed).
    func createFirstAdmin(name: String, passwordHash: String) async throws -> UserRecord
    func user(named name: String) async throws -> UserRecord?
    /// Starts a session; returns the cookie value (only its hash is stored).
    func createSession(userId: Int64, lifetime: TimeInterval) async throws -> (cookie: String, session: SessionRecord)
    func session(cookie: String) async throws -> (SessionRecord, UserRecord)?
    func deleteSession(cookie: String) async throws
    /// Creates an API token; returns the secret (shown once, stored hashed).
    func createToken(userName: String, name: String, scopes: Set<TokenScope>, expiresAt: Date?, by actor: ActingUser) async throws -> String
    /// The stored token hashes (tests check that no secret is stored).
    func tokenHashes() async throws -> [String]
    /// The token with this secret and its user, whatever their state: the caller says why a
    /// revoked or expired token, or a disabled user's, is refused.
    func token(secret: String) async throws -> (APITokenRecord, UserRecord)?
    /// Notes a token's use (not audited: it changes nothing a person did).
    func touchToken(_ id: Int64, at date: Date) async throws
    /// Tokens with their user's name, newest first: one user's, or everyone's (nil).
    func tokens(of userName: String?) async throws -> [(APITokenRecord, user: String)]
    /// Revokes a token; `owner` limits it to that user's tokens (nil: any, for administrators).
    func revokeToken(_ id: Int64, owner: String?, by actor: ActingUser) async throws -> APITokenRecord
    func users() async throws -> [UserRecord]
    /// A user's own new password; every other session of theirs ends (`keep` stays signed in).
    /// Changes a user in one transaction with its audit row: `edit` changes the record and
    /// answers the audit detail; the last active administrator always stays
    /// (`AdministratorRule`); `signOut` ends the user's sessions, `revokeTokens` their tokens.
    func changeUser(_ name: String, _ action: String, by actor: ActingUser, signOut: Bool, revokeTokens: Bool,
                    _ edit: @escaping @Sendable (inout UserRecord) throws -> [String: String]) async throws -> UserRecord
    func changeOwnPassword(_ name: String, passwordHash: String, keep sessionHash: String?, by actor: ActingUser) async throws
}

extension AccountStore {
    public func createToken(userName: String, scopes: Set<TokenScope>, expiresAt: Date?, by actor: ActingUser) async throws -> String { try await createToken(userName: userName, name: "", scopes: scopes, expiresAt: expiresAt, by: actor) }
    public func createToken(userName: String, name: String, scopes: Set<TokenScope>, by actor: ActingUser) async throws -> String { try await createToken(userName: userName, name: name, scopes: scopes, expiresAt: nil, by: actor) }
    public func createToken(userName: String, scopes: Set<TokenScope>, by actor: ActingUser) async throws -> String { try await createToken(userName: userName, name: "", scopes: scopes, expiresAt: nil, by: actor) }
    public func touchToken(_ id: Int64) async throws { try await touchToken(id, at: Date()) }
    public func resetPassword(_ name: String, passwordHash: String, by actor: ActingUser) async throws -> UserRecord { try await resetPassword(name, passwordHash: passwordHash, revokeTokens: false, by: actor) }
    public func setRole(_ name: String, _ role: Role, by actor: ActingUser) async throws -> UserRecord {
        try await changeUser(name, "user.role", by: actor, signOut: false, revokeTokens: false) { u in
            let before = u.role
            u.role = role
            return ["before": before.rawValue, "role": role.rawValue]
        }
    }

    /// A disabled user cannot sign in; their sessions end at once.
    public func setDisabled(_ name: String, _ disabled: Bool, by actor: ActingUser) async throws -> UserRecord {
        try await changeUser(name, disabled ? "user.disable" : "user.enable", by: actor, signOut: disabled, revokeTokens: false) { u in
            u.disabled = disabled
            return [:]
        }
    }

    /// A new password set by an administrator: the user's sessions end (and their tokens, if asked).
    public func resetPassword(_ name: String, passwordHash: String, revokeTokens: Bool, by actor: ActingUser) async throws -> UserRecord {
        try await changeUser(name, "user.resetPassword", by: actor, signOut: true, revokeTokens: revokeTokens) { u in
            u.passwordHash = passwordHash
            return [:]   // never the hash
        }
    }
}

/// Which releases wait for a reviewer, and the reviewers' decisions.
public protocol ApprovalStore: AnyObject, Sendable {
    /// How often devices may check for updates (`config.updateReqRate` in every answer).
    func setUpdateReqRate(_ seconds: Int, by actor: ActingUser) async throws -> SettingsRecord
    /// Which releases wait for a reviewer. Tasks already waiting keep waiting.
    func setApprovalRules(official: Bool, gray: Bool, by actor: ActingUser) async throws -> SettingsRecord
    /// Approves or rejects what a task waits for. Checked in the deciding transaction: it
    /// still waits, and the reviewer is neither its creator nor the one who asked.
    func decide(task id: Int64, approve: Bool, comment: String, by actor: ActingUser) async throws -> TaskRecord
    /// How many tasks wait for a reviewer (the navigation's badge).
    func countAwaitingApproval() async throws -> Int
    /// The latest decisions (approved, rejected, withdrawn), newest first.
    func recentlyDecided(limit: Int) async throws -> [TaskRecord]
    /// Tasks waiting for a reviewer, oldest request first.
    func tasksAwaitingApproval() async throws -> [TaskRecord]
}

/// The audit log: one hash-chained row per change.
public protocol AuditStore: AnyObject, Sendable {
    /// The newest entries first.
    func auditEntries(limit: Int) async throws -> [AuditRecord]
    /// The entries about one subject, oldest first (a task's history).
    func auditEntries(subject: String, actionPrefix: String) async throws -> [AuditRecord]
    /// The newest row's id and hash: the chain's head. Kept somewhere the database's writers
    /// cannot reach (a ticket, a mail, another machine), it lets `courier audit verify --head`
    /// tell a rewritten chain from an intact one: the chain alone only proves that rows follow
    /// one another, and whoever can write the database can recompute every later hash.
    func auditHead() async throws -> (row: Int64, hash: String)?
    /// The hash stored for row `id`, if it exists.
    func auditHash(row id: Int64) async throws -> String?
    /// Recomputes the chain from the first row, and looks for rows that are gone.
    func verifyAudit() async throws -> AuditVerification
    /// One page of the log, newest first.
    func auditPage(_ filter: AuditFilter, page: Int, perPage: Int) async throws -> Page<AuditRecord>
    /// Every matching row, newest first, at most `limit` (the CSV export).
    func auditRows(_ filter: AuditFilter, limit: Int) async throws -> [AuditRecord]
    /// The users and kinds of change the log holds (the filters' choices).
    func auditChoices() async throws -> (users: [String], kinds: [String])
}

extension AuditStore {
    public func auditEntries() async throws -> [AuditRecord] { try await auditEntries(limit: 100) }
    public func auditPage(_ filter: AuditFilter, page: Int) async throws -> Page<AuditRecord> { try await auditPage(filter, page: page, perPage: 50) }
}

/// Batch imports and their rows.
public protocol ImportStore: AnyObject, Sendable {
    /// Batch imports' files until they are submitted: `imports/{key}/{n}.zip`.
    var importsDirectory: String { get }
    /// Where row `n` of the import keyed `key` keeps its zip.
    func importFile(key: String, n: Int) -> String
    /// Records an import whose files are already in `imports/{key}/`.
    func createImport(key: String, rows: [ImportRowRecord], by actor: ActingUser, now: Date) async throws -> ImportRecord
    func importRecord(_ id: Int64) async throws -> ImportRecord?
    func importRows(_ id: Int64) async throws -> [ImportRowRecord]
    /// Changes a row's fields (only while the import is open and the row not created).
    func updateImportRow(_ id: Int64, n: Int, draft: PackageDraft, error: String?, by actor: ActingUser, now: Date) async throws
    /// Moves an open import to `submitting`; false when it is not open (a second click, a
    /// second tab, a second API call: only one submission runs).
    func beginImportSubmission(_ id: Int64, by actor: ActingUser, now: Date) async throws -> Bool
    /// Records a row's failure at submission.
    func failImportRow(_ id: Int64, n: Int, error: String) async throws
    /// Ends a submission: `done` when every row is created (its files are removed), else open
    /// again so the failed rows can be fixed and submitted.
    func endImportSubmission(_ id: Int64) async throws -> ImportRecord?
    /// Start-up and regular housekeeping: a submission cut short is open again; imports past
    /// their expiry are deleted with their files; folders no import refers to are removed.
    func sweepImports(now: Date, startingUp: Bool) async throws -> Int
}

extension ImportStore {
    public func createImport(key: String, rows: [ImportRowRecord], by actor: ActingUser) async throws -> ImportRecord { try await createImport(key: key, rows: rows, by: actor, now: Date()) }
    public func updateImportRow(_ id: Int64, n: Int, draft: PackageDraft, error: String?, by actor: ActingUser) async throws { try await updateImportRow(id, n: n, draft: draft, error: error, by: actor, now: Date()) }
    public func beginImportSubmission(_ id: Int64, by actor: ActingUser) async throws -> Bool { try await beginImportSubmission(id, by: actor, now: Date()) }
    public func sweepImports(startingUp: Bool) async throws -> Int { try await sweepImports(now: Date(), startingUp: startingUp) }
}

extension ImportStore {
    /// Removes the folders of `expired` imports; at start-up also every folder that no import
    /// in `keys` names, left by an interrupted upload (no upload can then be between filling
    /// its folder and recording its import).
    package func removeImportFolders(expired: [String], keeping keys: Set<String>, startingUp: Bool) {
        for key in expired { try? FileManager.default.removeItem(atPath: "\(importsDirectory)/\(key)") }
        guard startingUp else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: importsDirectory)) ?? [] where !keys.contains(name) {
            try? FileManager.default.removeItem(atPath: "\(importsDirectory)/\(name)")
        }
    }
}

/// What several nodes share: the catalogue version, leases, time-window admissions.
public protocol NodeStore: AnyObject, Sendable {
    /// The catalogue's version now (it only grows).
    func catalogueVersion() async throws -> Int64
    /// Takes or renews the lease `name` for `holder` until `now + seconds`; true when `holder`
    /// has it. Another holder's lease is taken over only once it has expired (its node stopped
    /// renewing it). One statement: two nodes asking at once cannot both get it.
    func acquireLease(_ name: String, holder: String, for seconds: TimeInterval, now: Date) async throws -> Bool
    /// Gives the lease up (a node stopping), so another takes it at once rather than after it expires.
    func releaseLease(_ name: String, holder: String) async throws
    /// Admits `device` to time-window task `task` when it is among the first `limit` devices,
    /// decided by the database in one transaction: true when the device is admitted (now or
    /// before), false when the window is full or the task is no longer an open window. Several
    /// nodes asking at once admit exactly `limit` devices.
    /// (SQLite counts under its one writer's lock, behind the node's own ledger; PostgreSQL
    /// reads a count the database keeps per window, so a window of a million costs the same.)
    func admit(task: Int64, device: String, limit: Int, now: Date) async throws -> Bool
    /// How many devices time-window task `task` has admitted so far, as stored: what the
    /// console shows (on several nodes no node's own ledger knows them all).
    func admittedDevices(task: Int64) async throws -> Int
    /// Where failed sign-ins are counted when several nodes share this store (every node must
    /// see every attempt); nil for a store only one node uses, which counts them in memory.
    var signInLedger: (any SignInLedger)? { get }
}

/// Failed sign-ins counted where every node sees them: the sign-in throttle's numbers, shared.
public protocol SignInLedger: Sendable {
    /// Reserves one attempt under every key, unless one of them already holds its `limit` of
    /// attempts newer than `window`: one decision for all nodes at once.
    func reserveSignIn(_ keys: [(key: String, limit: Int)], window: TimeInterval, now: Date) async throws -> SignInReservation
    /// The password was right: `clearing` starts afresh and this attempt no longer counts.
    func releaseSignIn(_ id: String, clearing key: String) async throws
}

public enum SignInReservation: Sendable, Equatable {
    /// Reserved: the attempt's id, for `releaseSignIn`.
    case reserved(String)
    /// Refused: seconds until the oldest attempt of a full key leaves the window.
    case wait(TimeInterval)
}

extension NodeStore {
    public var signInLedger: (any SignInLedger)? { nil }
    public func acquireLease(_ name: String, holder: String, for seconds: TimeInterval) async throws -> Bool { try await acquireLease(name, holder: holder, for: seconds, now: Date()) }
    public func admit(task: Int64, device: String, limit: Int) async throws -> Bool { try await admit(task: task, device: device, limit: limit, now: Date()) }
}

/// Patches between versions, and what changed between two packages.
public protocol PatchStore: AnyObject, Sendable {
    /// Every patch whose row can be read. The table is Courier's own cache: a row that does
    /// not decode is passed over (never offered), not allowed to stop delivery.
    func patches() async throws -> [PatchRecord]
    func patches(of appId: String) async throws -> [PatchRecord]
    func patch(_ appId: String, _ version: String, from base: String) async throws -> PatchRecord?
    /// Records a built patch whose blob (if any) is already in the store, unless one of its two
    /// packages changed since it was read (a key replacement re-signed the target: the patch
    /// carries the old signature) or it was recorded meanwhile. Answers whether it was recorded;
    /// if not, the caller removes the blob. Call inside `withBlobLock`. Not audited: Courier
    /// made it, nobody changed anything. Not announced to `changes` either: the caller does,
    /// once for many (the delivery snapshot is rebuilt once, not once per patch).
    func recordPatch(_ patch: PatchRecord, targetBlob: String, baseBlob: String) async throws -> Bool
    /// Deletes patches (by their target and base package IDs) and answers the blobs nothing
    /// refers to any more, for the caller to remove. Call inside `withBlobLock`.
    func deletePatches(_ keys: [(packageId: Int64, basePackageId: Int64)]) async throws -> [String]
    /// The files of package `to` against those of package `from`.
    func diff(from: Int64, to: Int64) async throws -> PackageDiff
}

/// Settings, apps, packages and their blobs.
public protocol CatalogueStore: AnyObject, Sendable {
    /// Content-addressed package and patch files.
    var blobs: BlobStore { get }
    /// A trivial read: the database answers (`/readyz`).
    func ping() async throws
    /// The settings, read strictly (`SettingsRecord.read`).
    func settings() async throws -> SettingsRecord
    /// The virtual domain is written once (SPEC §2).
    func setVirtualDomain(_ domain: String, by actor: ActingUser) async throws -> SettingsRecord
    /// Global host and app key go together; they cannot change once a global package uses them
    /// (counted inside the same transaction, so a racing global upload cannot slip between).
    func setGlobalLocation(host: String, appKey: String, by actor: ActingUser) async throws -> SettingsRecord
    /// Switches the signing key and every package's `.amr` at once. Call inside `withBlobLock`.
    func switchSigningKey(pem: String, fingerprint: String, resigned: [ResignedPackage], by actor: ActingUser) async throws -> SettingsRecord
    func createApp(id: AppID, name: String, by actor: ActingUser) async throws -> AppRecord
    /// Renames an app (its ID never changes); clients see the new name from the next request.
    func renameApp(_ id: String, name: String, by actor: ActingUser) async throws -> AppRecord
    func allApps() async throws -> [AppRecord]
    /// Every app, read row by row: one whose row does not decode is answered apart (its tasks
    /// then offer nothing; the other apps go on).
    func allAppsStrictly() async throws -> (apps: [AppRecord], unreadable: [String: String])
    func app(_ id: String) async throws -> AppRecord?
    func apps(search: String, page: Int, perPage: Int) async throws -> Page<AppSummary>
    /// Apps whose newest package is to be released or release finished (the batch release's
    /// choices), by ID, at most `limit`, matching `search` in the ID or name.
    func batchReleaseCandidates(search: String, limit: Int) async throws -> [(app: AppRecord, newest: PackageRecord)]
    func packages(of appId: String) async throws -> [PackageRecord]
    func package(_ appId: String, _ version: String) async throws -> PackageRecord?
    func allPackages() async throws -> [PackageRecord]
    /// The packages some release task names: all the delivery snapshot needs (a catalogue of
    /// mostly unreleased versions is not read after every change).
    func packagesWithTasks() async throws -> [PackageRecord]
    /// The same, read row by row: a package row that does not decode, or whose client range
    /// cannot be read, is answered apart with why (its tasks then offer nothing).
    func packagesWithTasksStrictly() async throws -> (packages: [PackageRecord], unreadable: [Int64: String])
    func files(of packageId: Int64) async throws -> [PackageFileRecord]
    /// One page of a package's files, in path order (the package page shows 100 at a time).
    func files(of packageId: Int64, page: Int, perPage: Int) async throws -> Page<PackageFileRecord>
    func file(of packageId: Int64, path: String) async throws -> PackageFileRecord?
    func facts(of appId: String) async throws -> AppFacts
    /// Runs `body` while no other blob change can happen (package commits, key switches).
    func withBlobLock<T: Sendable>(_ body: () async throws -> T) async throws -> T
    /// Records a built package and its files in one transaction with its audit row (its blob
    /// already in place); the version and type rules (`AppFacts`) are checked again inside it,
    /// so two racing uploads cannot both win; an import row is marked created in it too.
    func insertPackage(_ package: PackageRecord, files: [PackageFileRecord], importRow: ImportRowKey?, by actor: ActingUser) async throws -> PackageRecord
    func packageCounts() async throws -> (all: Int, global: Int)
    func isBlobReferenced(_ blob: String) async throws -> Bool
    /// Removes what an interrupted upload or ingest may have left: temp files, and blobs
    /// that no package refers to (written but never committed). Run at start-up. With `grace`,
    /// only files untouched for that long go: on a blob folder shared by several nodes, another
    /// node may be writing a file now, or have renamed a blob in that its transaction has not
    /// committed yet. One node owning its folder (the embedded default) sweeps everything.
    func sweep(grace: TimeInterval, now: Date) async throws -> (tempFiles: Int, orphanBlobs: Int)
}

extension CatalogueStore {
    public func apps(search: String, page: Int) async throws -> Page<AppSummary> { try await apps(search: search, page: page, perPage: 20) }
    public func commitPackage(amrAt tempPath: String, _ package: PackageRecord, files: [PackageFileRecord], signedWith fingerprint: String?, by actor: ActingUser) async throws -> PackageRecord { try await commitPackage(amrAt: tempPath, package, files: files, signedWith: fingerprint, importRow: nil, by: actor) }

    /// Moves a finished `.amr` into the blob store and records its package. Serialized with
    /// every other blob change, so a racing double submit (same bytes, same blob) cannot delete
    /// the blob the winner has just recorded, and a package signed with a key that was
    /// replaced meanwhile is refused rather than stored with the old signature.
    public func commitPackage(amrAt tempPath: String, _ package: PackageRecord, files: [PackageFileRecord],
                              signedWith fingerprint: String?, importRow: ImportRowKey?, by actor: ActingUser) async throws -> PackageRecord {
        try await withBlobLock {
            guard try await settings().signingKeyFingerprint == fingerprint else {
                throw FieldError("file", "The signing key was replaced while this package was being processed. Upload it again.")
            }
            try blobs.adopt(tempPath, sha256: package.blob)
            do {
                return try await insertPackage(package, files: files, importRow: importRow, by: actor)
            } catch {
                if try await !isBlobReferenced(package.blob) { blobs.remove(package.blob) }
                throw error
            }
        }
    }

    /// Deletes the blobs among `shas` that no package refers to. Call inside `withBlobLock`.
    public func removeUnreferenced(_ shas: [String]) async throws {
        for sha in Set(shas) where try await !isBlobReferenced(sha) { blobs.remove(sha) }
    }
    public func sweep(now: Date) async throws -> (tempFiles: Int, orphanBlobs: Int) { try await sweep(grace: 0, now: now) }
    public func sweep(grace: TimeInterval) async throws -> (tempFiles: Int, orphanBlobs: Int) { try await sweep(grace: grace, now: Date()) }
    public func sweep() async throws -> (tempFiles: Int, orphanBlobs: Int) { try await sweep(grace: 0, now: Date()) }
}

/// Whitelists, release tasks, admissions and device events.
public protocol ReleaseStore: AnyObject, Sendable {
    func createWhitelist(name: String, kind: Whitelist.Kind, values: Set<String>, by actor: ActingUser) async throws -> WhitelistRecord
    /// Adds values (duplicates dropped); answers how many were new, and the approved tasks on
    /// the list that now wait for a reviewer again. `check` sees the resulting set first (a
    /// regex list compiles it) and may refuse.
    func addWhitelistValues(_ id: Int64, _ values: Set<String>, by actor: ActingUser, check: @escaping @Sendable (WhitelistRecord, Set<String>) throws -> Void) async throws -> (added: Int, awaitingApproval: [Int64])
    /// Removes values; answers how many were there.
    func removeWhitelistValues(_ id: Int64, _ values: Set<String>, by actor: ActingUser) async throws -> Int
    /// Deletes a whitelist no unfinished task uses; the refusal names the tasks.
    func deleteWhitelist(_ id: Int64, by actor: ActingUser) async throws
    /// Every whitelist with its number of values (without loading the values).
    func whitelistSummaries() async throws -> [(WhitelistRecord, count: Int)]
    /// One whitelist with its values.
    func whitelist(_ id: Int64) async throws -> (WhitelistRecord, Set<String>)?
    /// Every whitelist with its values (the delivery snapshot's input), except those `known` at the same revision (their
    /// values are nil: the caller still has them).
    func whitelists(known: [Int64: Int]) async throws -> [(WhitelistRecord, Set<String>?)]
    /// Every whitelist with all its values.
    func whitelists() async throws -> [(WhitelistRecord, Set<String>)]
    /// Creates a task for a package; at most one unfinished task per package.
    func createTask(_ task: TaskRecord, by actor: ActingUser) async throws -> TaskRecord
    /// Pause, resume, finish, promote to official, roll back (SPEC §5).
    func operate(task id: Int64, _ op: TaskOperation, by actor: ActingUser) async throws -> TaskRecord
    /// Changes a percentage task's share (raising it keeps every admitted device admitted).
    func setPercentage(task id: Int64, _ percentage: Double, by actor: ActingUser) async throws -> TaskRecord
    /// Deletes a finished task.
    func deleteTask(_ id: Int64, by actor: ActingUser) async throws
    func task(_ id: Int64) async throws -> TaskRecord?
    func tasks(of appId: String) async throws -> [TaskRecord]
    func tasks(ids: [Int64]) async throws -> [Int64: TaskRecord]
    func allTasks() async throws -> [TaskRecord]
    /// Every task, read row by row: one that does not decode is answered apart, never stopping
    /// the others (one bad row must not freeze or stop every app's delivery).
    func allTasksStrictly() async throws -> (tasks: [TaskRecord], undecodable: [UndecodableTask])
    /// Every recorded admission, by task: loaded into memory with each snapshot.
    func admissions() async throws -> [Int64: Set<String>]
    /// Makes admissions durable (before the client is told).
    func recordAdmissions(_ pairs: [(task: Int64, device: String)]) async throws
    /// Every device that gave up a task's version, by task (loaded into memory at start).
    func gaveUpDevices() async throws -> [Int64: Set<UInt64>]
    /// Remembers that these devices gave up these tasks' versions, and counts each once on its
    /// task (`failed`); tasks deleted since the snapshot named them are passed over. Answers the
    /// pairs recorded.
    @discardableResult
    func recordGaveUp(_ pairs: [(task: Int64, device: UInt64)]) async throws -> [(task: Int64, device: UInt64)]
    /// Counts a client's report, once per device, task, kind and hour (a device repeating itself,
    /// or one connection replaying it, adds nothing); false when the task is gone (deleted since
    /// the snapshot named it).
    @discardableResult
    func countEvent(task: Int64, _ event: String, device: String, now: Date) async throws -> Bool
    /// Forgets which devices reported in hours before `now`'s, a bounded batch per transaction
    /// (housekeeping calls it; a client's report never waits on a large delete). Answers how
    /// many rows went.
    @discardableResult
    func pruneEventsSeen(now: Date, batch: Int) async throws -> Int
    func eventCounts(task: Int64) async throws -> [String: Int]

    // Release health (SPEC §5)

    /// A task's hourly counters, oldest first (`checked` is an estimate: see `mergeSketches`).
    func healthHours(task: Int64) async throws -> [HealthHour]
    /// Merges one node's sketches of an hour into the stored ones (register by register: the same
    /// devices flushed twice, or seen by two nodes, count once): the devices that checked, by task
    /// (each task's `checked` counter becomes its merged estimate), and the devices on each
    /// installed version (adoption). Tasks deleted since are passed over.
    func mergeSketches(hour: Int64, checks: [Int64: HyperLogLog], adoption: [AdoptionKey: HyperLogLog]) async throws
    /// The adoption sketches of an app's versions from `sinceHour` on, merged per version.
    func adoption(app: String, sinceHour: Int64) async throws -> [String: HyperLogLog]
    /// Forgets sketches no longer needed and counters older than `ReleaseHealth.maxHours`.
    @discardableResult
    func pruneHealth(now: Date) async throws -> Int
    /// A ramp's move, as user `courier` (`TaskRecord.rampMove`): nil when there was none to make.
    func rampStep(task: Int64, expecting done: Int, pause reason: String?, baseline: RampPlan.Baseline?, now: Date) async throws -> TaskRecord?

    // Revoked versions (SPEC §5)

    /// Revokes a released version with a reason (its unfinished task, if any, is finished):
    /// refused for a version never released or already revoked.
    func revoke(_ appId: String, _ version: String, reason: String, by actor: ActingUser) async throws -> Revocation
    /// Every revocation, by package ID (the delivery snapshot's input).
    func revocations() async throws -> [Int64: Revocation]

    // The webhook (SPEC §5)

    func webhook() async throws -> Webhook?
    /// Sets (or, with nil, removes) the webhook; the secret is never written to the audit log.
    func setWebhook(url: String?, secret: String, by actor: ActingUser) async throws -> Webhook?
}

extension ReleaseStore {
    public func countEvent(task: Int64, _ event: String, device: String) async throws -> Bool { try await countEvent(task: task, event, device: device, now: Date()) }
    public func pruneEventsSeen(batch: Int) async throws -> Int { try await pruneEventsSeen(now: Date(), batch: batch) }
    public func pruneEventsSeen(now: Date) async throws -> Int { try await pruneEventsSeen(now: now, batch: 5000) }
    public func pruneEventsSeen() async throws -> Int { try await pruneEventsSeen(now: Date(), batch: 5000) }
}

/// Courier's state behind one seam: every change is a named write (one transaction with its
/// audit row, then `changes` is told), every read a named query, grouped by area. The rules a
/// change obeys are CourierCore's (`TaskState`, `AdministratorRule`, `AppFacts`,
/// `UnfinishedTaskRule`…); an implementation keeps them in its transaction and states how it
/// serialises writers that could break them. `SQLiteStore` (CourierSQLite) is the embedded default.
public protocol Store: AccountStore, ApprovalStore, AuditStore, ImportStore, NodeStore, PatchStore, CatalogueStore, ReleaseStore {
    /// Told after every committed change to apps, packages or settings.
    var changes: CatalogueChanges { get }
}
