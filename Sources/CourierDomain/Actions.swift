import CourierArchive
import CourierCore
import CourierStore
import Foundation
import NIOPosix

/// Every change a person or CI makes, in one place: each action takes the acting user, checks
/// a named permission, validates with CourierCore, and writes through one named Store write
/// (one transaction with its audit row; the Store then tells listeners the catalogue changed).
/// The console, the JSON API and the command line all call these.
public struct Actions: Sendable {
    public let store: Store
    let signer: SigningKeyCache
    let passwords: PasswordHasher
    /// Uploads and ingest time, when a server runs (nil for the command line).
    let metrics: (any UploadMeter)?
    /// Where release events go (the webhook), when a server runs.
    let events: (any ReleaseEventSink)?

    public init(store: Store, signer: SigningKeyCache = SigningKeyCache(), passwords: PasswordHasher = PasswordHasher(),
                metrics: (any UploadMeter)? = nil, events: (any ReleaseEventSink)? = nil) {
        self.store = store
        self.events = events
        self.signer = signer
        self.passwords = passwords
        self.metrics = metrics
    }

    // MARK: Apps

    public func createApp(by actor: ActingUser, id: String, name: String) async throws -> AppRecord {
        try actor.require(.editApps)
        var errors = FieldErrors()
        let appID = errors.collect { () throws(FieldError) in try AppID(validating: id) }
        let appName = errors.collect { () throws(FieldError) in try AppName.validate(name) }
        guard errors.isEmpty, let appID, let appName else { throw errors }
        return try await store.createApp(id: appID, name: appName, by: actor)
    }

    public func renameApp(by actor: ActingUser, id: String, name: String) async throws -> AppRecord {
        try actor.require(.editApps)
        return try await store.renameApp(id, name: try AppName.validate(name), by: actor)
    }

    // MARK: Settings

    /// The virtual domain is written once; the console asks for confirmation first.
    public func setVirtualDomain(by actor: ActingUser, _ text: String, confirmed: Bool) async throws -> SettingsRecord {
        try actor.require(.editSettings)
        let domain = try DomainName.validate(text, field: "virtualDomain")
        guard confirmed else {
            throw FieldError("confirm", "Tick the box to confirm that the virtual domain cannot be changed after it is saved.")
        }
        return try await store.setVirtualDomain(domain, by: actor)
    }

    /// Global host and app key go together; they cannot change once a global package uses them.
    public func setGlobalLocation(by actor: ActingUser, host: String, appKey: String) async throws -> SettingsRecord {
        try actor.require(.editSettings)
        var errors = FieldErrors()
        let h = errors.collect { () throws(FieldError) in try DomainName.validate(host, field: "globalHost", label: "global resource host", example: "mcube.example.com") }
        let k = errors.collect { () throws(FieldError) in try AppKey.validate(appKey) }
        guard errors.isEmpty, let h, let k else { throw errors }
        return try await store.setGlobalLocation(host: h, appKey: k, by: actor)
    }

    /// Installs a signing key and re-signs every stored package with it. New blobs are written
    /// first, outside the blob lock (the slow part); then, under it, packages committed
    /// meanwhile are caught up and the key and every package switch over in one transaction;
    /// old blobs go last. Interrupted before the switch, the old key stays in force and the
    /// new blobs are swept at the next start.
    public func installSigningKey(by actor: ActingUser, _ key: SigningKey) async throws -> (SettingsRecord, resigned: Int) {
        try actor.require(.editSigningKey)
        var resigned: [Int64: ResignedPackage] = [:]
        do {
            for p in try await store.allPackages() {
                guard let id = p.id else { continue }
                resigned[id] = Self.resigned(p, id, try await resign(p, with: key))
            }
            return try await store.withBlobLock {
                for p in try await store.allPackages() where p.id.map({ resigned[$0]?.oldBlob != p.blob }) == true {
                    resigned[p.id!] = Self.resigned(p, p.id!, try await resign(p, with: key))
                }
                let patchBlobs = try await store.patches().compactMap(\.blob)
                let settings = try await store.switchSigningKey(pem: key.privateKeyPEM, fingerprint: key.fingerprint,
                                                          resigned: Array(resigned.values), by: actor)
                try await store.removeUnreferenced(resigned.values.map(\.oldBlob) + patchBlobs)
                return (settings, resigned.count)
            }
        } catch {
            try? await store.withBlobLock { try await store.removeUnreferenced(resigned.values.map(\.blob)) }
            throw error
        }
    }

    /// Parses or generates a key off the cooperative pool (RSA work takes milliseconds to seconds).
    public static func makeKey(_ make: @escaping @Sendable () throws -> SigningKey) async throws -> SigningKey {
        try await NIOThreadPool.singleton.runIfActive(make)
    }

    static func resigned(_ p: PackageRecord, _ id: Int64, _ amr: AmrFile) -> ResignedPackage {
        ResignedPackage(packageId: id, oldBlob: p.blob, blob: amr.sha256, size: Int64(amr.size), md5: amr.md5,
                       tarOffset: Int64(amr.tarOffset))
    }

    /// Writes a package's `.amr` again around its unchanged tar, signed with `key`, into the blob
    /// store; the signing and writing run on the thread pool.
    func resign(_ p: PackageRecord, with key: SigningKey) async throws -> AmrFile {
        let files = try await store.files(of: p.id ?? 0).map {
            ManifestFile(path: $0.path, size: UInt64($0.size), sha256: $0.sha256, tarOffset: UInt64($0.tarOffset))
        }
        return try await NIOThreadPool.singleton.runIfActive { [blobs = store.blobs] in
            let out = blobs.temporaryPath(suffix: ".amr")
            defer { unlink(out) }
            let amr = try AmrBuilder.resign(amrPath: blobs.path(for: p.blob), tarOffset: UInt64(p.tarOffset),
                                            tarSize: UInt64(p.tarSize), files: files, appID: p.appId, version: p.version,
                                            signer: key, to: out)
            try blobs.adopt(out, sha256: amr.sha256)
            return amr
        }
    }

    // MARK: Packages

    /// Turns an uploaded zip plus a draft into a stored package: validate the fields, check the
    /// zip, build and sign the .amr, move it into the blob store, record it. Either all of it
    /// happens or none: on any refusal the temp files and the blob are gone and no row exists.
    /// `zipPath` is consumed: it is deleted whatever the outcome.
    public func addPackage(by actor: ActingUser, appId: String, draft: PackageDraft, zipPath: String?,
                           importRow: ImportRowKey? = nil) async throws -> PackageRecord {
        let start = DispatchTime.now().uptimeNanoseconds
        var st = stat()
        let bytes = zipPath.map { stat($0, &st) == 0 ? Int64(st.st_size) : 0 } ?? 0
        do {
            let p = try await ingest(by: actor, appId: appId, draft: draft, zipPath: zipPath, importRow: importRow)
            metrics?.stored(bytes: bytes, nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - start))
            return p
        } catch {
            metrics?.refused()
            throw error
        }
    }

    func ingest(by actor: ActingUser, appId: String, draft: PackageDraft, zipPath: String?,
                importRow: ImportRowKey?) async throws -> PackageRecord {
        defer { if let zipPath { unlink(zipPath) } }
        try actor.require(.uploadPackages)
        guard let app = try await store.app(appId) else { throw NotFound.app(appId) }
        let settings = try await store.settings()
        guard settings.virtualDomain != nil else { throw Self.needsVirtualDomain }
        var errors = FieldErrors()
        var validated: PackageSettings?
        let facts = try await store.facts(of: appId)
        do { validated = try draft.validate(for: facts) } catch { errors = error }
        if zipPath == nil { errors.append(FieldError("file", "Choose the offline package .zip file to upload.")) }
        guard errors.isEmpty, let s = validated, let zipPath else {
            // One submission reports everything: the zip's layout too, as far as the fields allow.
            if let zipPath { for e in await zipProblems(app: app, settings: settings, draft: draft, fieldErrors: errors, zipPath: zipPath) { errors.append(e) } }
            throw errors
        }

        let global = settings.globalHost.flatMap { h in settings.appKey.map { GlobalLocation(host: h, appKey: $0) } }
        let appID = AppID(trusted: app.id)
        let key = try signer.current(settings)
        let amrPath = store.blobs.temporaryPath(suffix: ".amr")
        defer { unlink(amrPath) }   // after adopt() it no longer exists under this name
        let built: AmrFile = try await NIOThreadPool.singleton.runIfActive {
            let zip = try ZipReader(path: zipPath)
            let files = try PackageLayout.contentFiles(of: zip.entries, appID: appID, type: s.type,
                                                       global: global, mainUrl: s.mainUrl)
            return try AmrBuilder.build(from: zip, files: files, appID: app.id, version: s.version.description,
                                        signer: key, to: amrPath)
        }
        var record = PackageRecord(appId: app.id, settings: s, createdBy: actor.name)
        record.blob = built.sha256
        record.size = Int64(built.size)
        record.md5 = built.md5
        record.tarOffset = Int64(built.tarOffset)
        record.tarSize = Int64(built.tarSize)
        record.fileCount = built.files.count
        let files = built.files.map {
            PackageFileRecord(packageId: 0, path: $0.path, size: Int64($0.size), sha256: $0.sha256, tarOffset: Int64($0.tarOffset))
        }
        return try await store.commitPackage(amrAt: amrPath, record, files: files, signedWith: key?.fingerprint, importRow: importRow,
                                             by: actor)
    }

    /// Everything wrong with a package that will not be stored (the console's form without its
    /// confirmation, or with field errors): the fields, then the zip's layout and app ID.
    public func packageProblems(appId: String, draft: PackageDraft, zipPath: String?) async throws -> FieldErrors {
        guard let app = try await store.app(appId) else { throw NotFound.app(appId) }
        let settings = try await store.settings()
        var errors = FieldErrors()
        let facts = try await store.facts(of: appId)
        do { _ = try draft.validate(for: facts) } catch { errors = error }
        if let zipPath {
            for e in await zipProblems(app: app, settings: settings, draft: draft, fieldErrors: errors, zipPath: zipPath) { errors.append(e) }
        } else {
            errors.append(FieldError("file", "Choose the offline package .zip file to upload."))
        }
        return errors
    }

    /// The zip's layout problems when the fields did not all validate: the type the app has (or
    /// the one chosen, when it is one), and the main entrance unless it was refused itself.
    func zipProblems(app: AppRecord, settings: SettingsRecord, draft: PackageDraft, fieldErrors: FieldErrors, zipPath: String) async -> [FieldError] {
        let type = app.type ?? PackageType(rawValue: draft.type) ?? .normal
        let mainUrl = fieldErrors["mainUrl"] == nil ? (try? MainURL.validate(draft.mainUrl)) ?? nil : nil
        let global = settings.globalHost.flatMap { h in settings.appKey.map { GlobalLocation(host: h, appKey: $0) } }
        let appID = AppID(trusted: app.id)
        do {
            try await NIOThreadPool.singleton.runIfActive {
                let zip = try ZipReader(path: zipPath)
                _ = try PackageLayout.contentFiles(of: zip.entries, appID: appID, type: type, global: global, mainUrl: mainUrl)
            }
            return []
        } catch let e as FieldError {
            return fieldErrors[e.field] == nil ? [e] : []
        } catch {
            return []
        }
    }

    /// The same refusal, the same status, for the console and the API.
    public static let needsVirtualDomain = Conflict("Set the virtual domain on the configuration page before adding packages.", field: "virtualDomain")

    // MARK: People

    public func addUser(by actor: ActingUser, name: String, password: String, role: Role) async throws -> UserRecord {
        try actor.require(.manageUsers)
        let trimmed = try UserName.validateNew(name)
        try Password.validate(password)
        let hash = try await passwords.hash(password)
        return try await store.createUser(name: trimmed, passwordHash: hash, role: role, by: actor)
    }

    public func setRole(by actor: ActingUser, name: String, role text: String) async throws -> UserRecord {
        try actor.require(.manageUsers)
        guard let role = Role(rawValue: text) else { throw FieldError("role", "Choose a role: admin, developer or reviewer.") }
        return try await store.setRole(name, role, by: actor)
    }

    public func setDisabled(by actor: ActingUser, name: String, _ disabled: Bool) async throws -> UserRecord {
        try actor.require(.manageUsers)
        guard !(disabled && name == actor.name) else { throw Conflict("You cannot disable yourself.") }
        return try await store.setDisabled(name, disabled, by: actor)
    }

    public func resetPassword(by actor: ActingUser, name: String, password: String, revokeTokens: Bool = false) async throws -> UserRecord {
        try actor.require(.manageUsers)
        try Password.validate(password)
        return try await store.resetPassword(name, passwordHash: try await passwords.hash(password), revokeTokens: revokeTokens, by: actor)
    }

    /// Creates an API token for `userName`; returns the secret, shown once and stored hashed.
    /// Creates an API token for `userName`: one's own, or anyone's for an administrator. Answers
    /// the secret, shown once. `expires` is empty or a day (`2027-01-31`): the token works until
    /// the end of that day, UTC.
    public func createToken(by actor: ActingUser, userName: String, name: String = "", scopes text: String,
                            expires: String = "", now: Date = Date()) async throws -> String {
        try actor.require(userName == actor.name ? .read : .manageUsers)
        var errors = FieldErrors()
        let name = name.trimmingCharacters(in: .whitespaces)
        if name.count > 64 { errors.append(FieldError("name", "The token's name is at most 64 characters.")) }
        let scopes = TokenScope.parse(text)
        if scopes == nil { errors.append(FieldError("scope", "Choose at least one scope: read, upload, release (admin for administrators).")) }
        if scopes?.contains(.admin) == true, try await store.user(named: userName)?.role != .admin {
            errors.append(FieldError("scope", "The admin scope (settings, approval rules, signing key) is for administrators' tokens only."))
        }
        var expiresAt: Date?
        do { expiresAt = try Self.tokenExpiry(expires, now: now) } catch let e as FieldError { errors.append(e) }
        guard errors.isEmpty, let scopes else { throw errors }
        return try await store.createToken(userName: userName, name: name, scopes: scopes, expiresAt: expiresAt, by: actor)
    }

    /// The longest a token may live, in days.
    public static let maxTokenDays = 3 * 366

    /// `2027-01-31` → the end of that day, UTC; empty → never expires.
    static func tokenExpiry(_ text: String, now: Date) throws -> Date? {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        guard text.utf8.count == 10, let day = f.date(from: text) else {
            throw FieldError("expires", "Enter the last day the token works as YYYY-MM-DD, or leave it empty for a token that does not expire.")
        }
        let end = day.addingTimeInterval(86_400)
        guard end > now else { throw FieldError("expires", "Choose today or a later day.") }
        guard end <= now.addingTimeInterval(Double(Self.maxTokenDays) * 86_400) else {
            throw FieldError("expires", "A token may live at most three years.")
        }
        return end
    }

    /// Revokes a token: one's own, or anyone's for an administrator.
    public func revokeToken(by actor: ActingUser, id: Int64) async throws -> APITokenRecord {
        try actor.require(.read)
        return try await store.revokeToken(id, owner: actor.may(.manageUsers) ? nil : actor.name, by: actor)
    }
}

/// The parsed signing key, kept while its PEM in the settings is unchanged (parsing RSA
/// keys is not free, and every ingest needs it).
public final class SigningKeyCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: (pem: String, key: SigningKey)?

    public init() {}

    public func current(_ settings: SettingsRecord) throws -> SigningKey? {
        guard let pem = settings.signingKeyPEM else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if let c = cached, c.pem == pem { return c.key }
        let key = try SigningKey(pem: pem)
        cached = (pem, key)
        return key
    }
}

/// Counts uploads for the server's metrics (the command line has none).
public protocol UploadMeter: Sendable {
    func stored(bytes: Int64, nanoseconds: Int64)
    func refused()
}
