import CourierCore
import CourierStore
import Foundation
import PostgresNIO

/// Settings, apps, packages and their blobs on PostgreSQL. Writes lock what their rules read:
/// the settings row, the app a package is added to (so two nodes adding versions to one app
/// queue, and the second sees the first's version). Blob changes that must not interleave take
/// an advisory lock, which holds across nodes.
extension PostgresStore: CatalogueStore {
    /// A stored value this binary cannot read.
    struct Unreadable: Error, CustomStringConvertible { let description: String }

    static func enumValue<E: RawRepresentable<String>>(_ raw: String, _ what: String) throws -> E {
        guard let e = E(rawValue: raw) else { throw Unreadable(description: "unknown \(what) “\(raw.prefix(40))”") }
        return e
    }

    // MARK: Settings

    static let settingsColumns = """
        virtual_domain, global_host, app_key, signing_key_pem, signing_key_fingerprint, official_needs_approval, gray_needs_approval, update_req_rate
        """

    /// The settings row, read strictly: the schema holds each column to its type; the update
    /// interval is held to its range (SettingsRecord.read on SQLite).
    func settings(on c: PostgresConnection?, lock: Bool = false) async throws -> SettingsRecord {
        let found = try await rows("SELECT \(unescaped: Self.settingsColumns) FROM settings WHERE id = 1\(unescaped: lock ? " FOR UPDATE" : "")",
                                   as: (String?, String?, String?, String?, String?, Bool, Bool, Int32).self, on: c)
        guard let r = found.first else { return SettingsRecord() }
        guard SettingsRecord.updateReqRateRange.contains(Int(r.7)) else {
            throw ServerFault("The stored settings cannot be read (a value of the wrong type or out of range): no release is offered until the settings row is fixed or a backup restored.")
        }
        var s = SettingsRecord()
        s.virtualDomain = r.0; s.globalHost = r.1; s.appKey = r.2; s.signingKeyPEM = r.3; s.signingKeyFingerprint = r.4
        s.officialNeedsApproval = r.5; s.grayNeedsApproval = r.6; s.updateReqRate = Int(r.7)
        return s
    }

    func save(_ s: SettingsRecord, on c: PostgresConnection) async throws {
        try await c.query("""
            UPDATE settings SET virtual_domain = \(s.virtualDomain), global_host = \(s.globalHost), app_key = \(s.appKey),
                signing_key_pem = \(s.signingKeyPEM), signing_key_fingerprint = \(s.signingKeyFingerprint),
                official_needs_approval = \(s.officialNeedsApproval), gray_needs_approval = \(s.grayNeedsApproval),
                update_req_rate = \(Int32(s.updateReqRate))
            WHERE id = 1
            """, logger: logger)
    }

    public func ping() async throws {
        _ = try await all("SELECT 1", as: Int32.self)
    }

    public func settings() async throws -> SettingsRecord {
        try await settings(on: nil)
    }

    public func setVirtualDomain(_ domain: String, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.virtualDomain", subject: "settings") { c in
            var s = try await settings(on: c, lock: true)
            if let existing = s.virtualDomain {
                if existing == domain { return (s, ["virtualDomain": domain, "unchanged": "true"]) }
                throw Conflict("The virtual domain is already set to \(existing) and cannot be changed.", field: "virtualDomain")
            }
            s.virtualDomain = domain
            try await save(s, on: c)
            return (s, ["virtualDomain": domain])
        }
    }

    public func setGlobalLocation(host: String, appKey: String, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.globalLocation", subject: "settings") { c in
            var s = try await settings(on: c, lock: true)
            if s.globalHost == host && s.appKey == appKey { return (s, ["globalHost": host, "appKey": appKey, "unchanged": "true"]) }
            // A global upload on another node locks the settings row too (insertPackage): it
            // cannot slip in between this count and the write.
            let inUse = try await all("SELECT COUNT(*) FROM package WHERE type = 'global'", as: Int64.self, on: c).first ?? 0 > 0
            if inUse {
                throw Conflict("Global packages already use \(s.globalHost ?? "")/\(s.appKey ?? ""); the global host and app key cannot change.",
                               field: "globalHost")
            }
            s.globalHost = host
            s.appKey = appKey
            try await save(s, on: c)
            return (s, ["globalHost": host, "appKey": appKey])
        }
    }

    public func switchSigningKey(pem: String, fingerprint: String, resigned: [ResignedPackage], by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.signingKey", subject: "settings") { c in
            var s = try await settings(on: c, lock: true)
            let previous = s.signingKeyFingerprint
            s.signingKeyPEM = pem
            s.signingKeyFingerprint = fingerprint
            try await save(s, on: c)
            for r in resigned {
                try await c.query("""
                    UPDATE package SET blob = \(r.blob), size = \(r.size), md5 = \(r.md5), tar_offset = \(r.tarOffset) WHERE id = \(r.packageId)
                    """, logger: logger)
            }
            // Patches carry their target's signatures: they are built again with the new ones.
            try await c.query("DELETE FROM patch", logger: logger)
            return (s, ["fingerprint": fingerprint, "previousFingerprint": previous ?? "", "resignedPackages": String(resigned.count)])
        }
    }

    // MARK: Apps

    static let appColumns = "id, name, type, created_at"

    static func app(_ r: (String, String, String?, Date)) throws -> AppRecord {
        AppRecord(stored: r.0, name: r.1, type: try r.2.map { try enumValue($0, "package type") }, createdAt: r.3)
    }

    func apps(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [AppRecord] {
        try await rows(query, as: (String, String, String?, Date).self, on: c).map(Self.app)
    }

    public func createApp(id: AppID, name: String, by actor: ActingUser) async throws -> AppRecord {
        try await change(by: actor, "app.create", subject: id.rawValue) { c in
            let app = AppRecord(id: id, name: name)
            // Two nodes creating the same ID at once: the second inserts nothing.
            let inserted = try await all("""
                INSERT INTO app (id, name, type, created_at) VALUES (\(app.id), \(name), NULL, \(app.createdAt))
                ON CONFLICT (id) DO NOTHING RETURNING id
                """, as: String.self, on: c)
            guard !inserted.isEmpty else { throw Conflict("An app with ID \(id) already exists. Choose another ID.", field: "id") }
            return (app, ["name": name, "app": app.id])
        }
    }

    public func renameApp(_ id: String, name: String, by actor: ActingUser) async throws -> AppRecord {
        try await change(by: actor, "app.rename", subject: id) { c in
            guard var app = try await apps("SELECT \(unescaped: Self.appColumns) FROM app WHERE id = \(id) FOR UPDATE", on: c).first else {
                throw NotFound.app(id)
            }
            let before = app.name
            app.name = name
            try await c.query("UPDATE app SET name = \(name) WHERE id = \(id)", logger: logger)
            return (app, ["before": before, "name": name, "app": app.id])
        }
    }

    public func allApps() async throws -> [AppRecord] {
        try await apps("SELECT \(unescaped: Self.appColumns) FROM app")
    }

    public func allAppsStrictly() async throws -> (apps: [AppRecord], unreadable: [String: String]) {
        var apps: [AppRecord] = [], bad: [String: String] = [:]
        for r in try await rows("SELECT \(unescaped: Self.appColumns) FROM app", as: (String, String, String?, Date).self) {
            do { apps.append(try Self.app(r)) } catch { bad[r.0] = "its stored row cannot be read (\(String(describing: error).prefix(160)))" }
        }
        return (apps, bad)
    }

    public func app(_ id: String) async throws -> AppRecord? {
        try await apps("SELECT \(unescaped: Self.appColumns) FROM app WHERE id = \(id)").first
    }

    /// SQL: a task ended without ever releasing (`TaskRecord.neverReleased` and ended), for ordering.
    static let endedUnreleased = "(t.approval_for = 'release' AND t.approval != 'approved' AND t.status IN ('finished', 'rejected'))"

    public func apps(search: String, page: Int, perPage: Int) async throws -> Page<AppSummary> {
        let q = LikePattern.containing(search)
        let total = Int(try await all("SELECT COUNT(*) FROM app WHERE app.id ILIKE \(q) OR app.name ILIKE \(q)", as: Int64.self).first ?? 0)
        let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
        let found = try await rows("""
            SELECT app.id, app.name, app.type, app.created_at,
                   (SELECT COUNT(*) FROM package p WHERE p.app_id = app.id),
                   newest.version, newest.status,
                   (SELECT t.id FROM task t WHERE t.app_id = app.id
                    ORDER BY t.status IN ('finished', 'rejected') ASC, \(unescaped: Self.endedUnreleased) ASC, t.id DESC LIMIT 1),
                   (SELECT p.version FROM task t JOIN package p ON p.id = t.package_id
                    WHERE t.app_id = app.id AND t.type = 'official' AND NOT t.rolled_back AND t.status IN ('releasing', 'finished')
                      AND NOT (t.approval_for = 'release' AND t.approval != 'approved')
                    ORDER BY p.version_key DESC LIMIT 1)
            FROM app LEFT JOIN package newest
              ON newest.id = (SELECT id FROM package WHERE app_id = app.id ORDER BY version_key DESC LIMIT 1)
            WHERE app.id ILIKE \(q) OR app.name ILIKE \(q) ORDER BY app.id LIMIT \(Int64(perPage)) OFFSET \(Int64((page - 1) * perPage))
            """, as: (String, String, String?, Date, Int64, String?, String?, Int64?, String?).self)
        let items = try found.map { r in
            var s = AppSummary(id: r.0, name: r.1, type: try r.2.map { try Self.enumValue($0, "package type") }, packageCount: Int(r.4),
                               latestVersion: r.5, createdAt: r.3)
            s.latestStatus = try r.6.map { try Self.enumValue($0, "package status") }
            s.releaseTaskId = r.7
            s.officialVersion = r.8
            return s
        }
        return Page(items: items, total: total, page: page, perPage: perPage)
    }

    public func batchReleaseCandidates(search: String, limit: Int) async throws -> [(app: AppRecord, newest: PackageRecord)] {
        let q = LikePattern.containing(search)
        let found = try await rows("""
            SELECT app.id, p.id FROM app
            JOIN package p ON p.id = (SELECT id FROM package WHERE app_id = app.id ORDER BY version_key DESC LIMIT 1)
            WHERE p.status IN ('toBeReleased', 'finished', 'rejected') AND (app.id ILIKE \(q) OR app.name ILIKE \(q))
            ORDER BY app.id LIMIT \(Int64(limit))
            """, as: (String, Int64).self)
        var out: [(app: AppRecord, newest: PackageRecord)] = []
        for (appId, packageId) in found {
            guard let app = try await app(appId),
                  let p = try await packages("SELECT \(unescaped: Self.packageColumns) FROM package WHERE id = \(packageId)").first else { continue }
            out.append((app, p))
        }
        return out
    }

    // MARK: Packages

    static let packageColumns = """
        id, app_id, version, version_key, type, android_min, android_max, ios_min, ios_max, main_url, extend_info, download_policy,
        install_policy, status, blob, size, md5, tar_offset, tar_size, file_count, created_at, created_by, more_settings
        """
    typealias PackageRow = (Int64, String, String, String, String, String?, String?, String?, String?, String?, String, String,
                            String, String, String, Int64, String, Int64, Int64, Int32, Date, String, String)

    static func package(_ r: PackageRow) throws -> PackageRecord {
        var p = PackageRecord(stored: r.1, version: r.2, versionKey: r.3, type: try enumValue(r.4, "package type"), createdBy: r.21)
        p.id = r.0
        p.androidMin = r.5; p.androidMax = r.6; p.iosMin = r.7; p.iosMax = r.8; p.mainUrl = r.9; p.extendInfo = r.10
        p.downloadPolicy = try enumValue(r.11, "download policy")
        p.installPolicy = try enumValue(r.12, "install policy")
        p.status = try enumValue(r.13, "package status")
        p.blob = r.14; p.size = r.15; p.md5 = r.16; p.tarOffset = r.17; p.tarSize = r.18; p.fileCount = Int(r.19)
        p.createdAt = r.20; p.moreSettings = r.22
        return p
    }

    func packages(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [PackageRecord] {
        try await rows(query, as: PackageRow.self, on: c).map(Self.package)
    }

    public func packages(of appId: String) async throws -> [PackageRecord] {
        try await packages("SELECT \(unescaped: Self.packageColumns) FROM package WHERE app_id = \(appId) ORDER BY version_key DESC")
    }

    public func package(_ appId: String, _ version: String) async throws -> PackageRecord? {
        try await packages("SELECT \(unescaped: Self.packageColumns) FROM package WHERE app_id = \(appId) AND version = \(version)").first
    }

    public func allPackages() async throws -> [PackageRecord] {
        try await packages("SELECT \(unescaped: Self.packageColumns) FROM package")
    }

    public func packagesWithTasks() async throws -> [PackageRecord] {
        try await packagesWithTasksStrictly().packages
    }

    public func packagesWithTasksStrictly() async throws -> (packages: [PackageRecord], unreadable: [Int64: String]) {
        var packages: [PackageRecord] = [], bad: [Int64: String] = [:]
        let found = try await rows("SELECT \(unescaped: Self.packageColumns) FROM package WHERE id IN (SELECT package_id FROM task)",
                                   as: PackageRow.self)
        for r in found {
            do {
                let p = try Self.package(r)
                if let why = p.range.problem { bad[r.0] = "its package's client range cannot be read: \(why)" } else if p.moreSettingsUnreadable {
                    bad[r.0] = "its package's settings (moreSettings) cannot be read"
                } else { packages.append(p) }
            } catch {
                bad[r.0] = "its package's stored row cannot be read (\(String(describing: error).prefix(160)))"
            }
        }
        return (packages, bad)
    }

    func files(_ query: PostgresQuery) async throws -> [PackageFileRecord] {
        try await rows(query, as: (Int64, String, Int64, String, Int64).self)
            .map { PackageFileRecord(packageId: $0.0, path: $0.1, size: $0.2, sha256: $0.3, tarOffset: $0.4) }
    }

    public func files(of packageId: Int64) async throws -> [PackageFileRecord] {
        try await files("SELECT package_id, path, size, sha256, tar_offset FROM package_file WHERE package_id = \(packageId) ORDER BY path")
    }

    public func files(of packageId: Int64, page: Int, perPage: Int) async throws -> Page<PackageFileRecord> {
        let total = Int(try await all("SELECT COUNT(*) FROM package_file WHERE package_id = \(packageId)", as: Int64.self).first ?? 0)
        let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
        let items = try await files("""
            SELECT package_id, path, size, sha256, tar_offset FROM package_file WHERE package_id = \(packageId) ORDER BY path
            LIMIT \(Int64(perPage)) OFFSET \(Int64((page - 1) * perPage))
            """)
        return Page(items: items, total: total, page: page, perPage: perPage)
    }

    public func file(of packageId: Int64, path: String) async throws -> PackageFileRecord? {
        try await files("SELECT package_id, path, size, sha256, tar_offset FROM package_file WHERE package_id = \(packageId) AND path = \(path)").first
    }

    public func facts(of appId: String) async throws -> AppFacts {
        try await facts(appId, on: nil)
    }

    func facts(_ appId: String, on c: PostgresConnection?) async throws -> AppFacts {
        let app = try await app(appId, on: c)
        // The newest package read whole and strictly, as on SQLite: one that cannot be read refuses.
        let highest = try await packages("""
            SELECT \(unescaped: Self.packageColumns) FROM package WHERE app_id = \(appId) ORDER BY version_key DESC LIMIT 1
            """, on: c).first
        return AppFacts(fixedType: app?.type, highestVersion: highest?.packageVersion)
    }

    func app(_ id: String, on c: PostgresConnection?) async throws -> AppRecord? {
        try await apps("SELECT \(unescaped: Self.appColumns) FROM app WHERE id = \(id)", on: c).first
    }

    /// Records a built package and its files in one transaction. The app's row is locked first:
    /// two nodes adding versions to one app queue, and the second checks against the first's.
    public func insertPackage(_ package: PackageRecord, files: [PackageFileRecord], importRow: ImportRowKey?,
                       by actor: ActingUser) async throws -> PackageRecord {
        try await change(by: actor, "package.add", subject: "\(package.appId) \(package.version)") { c in
            guard try await apps("SELECT \(unescaped: Self.appColumns) FROM app WHERE id = \(package.appId) FOR UPDATE", on: c).first != nil else {
                throw NotFound.app(package.appId)
            }
            // A global package and a change of the global location exclude each other.
            if package.type == .global { _ = try await settings(on: c, lock: true) }
            let facts = try await facts(package.appId, on: c)
            try facts.check(package.packageVersion, package.type)
            var p = package
            p.id = try await all("""
                INSERT INTO package (app_id, version, version_key, type, android_min, android_max, ios_min, ios_max, main_url, extend_info,
                    download_policy, install_policy, status, blob, size, md5, tar_offset, tar_size, file_count, created_at, created_by, more_settings)
                VALUES (\(p.appId), \(p.version), \(p.versionKey), \(p.type.rawValue), \(p.androidMin), \(p.androidMax), \(p.iosMin),
                    \(p.iosMax), \(p.mainUrl), \(p.extendInfo), \(p.downloadPolicy.rawValue), \(p.installPolicy.rawValue),
                    \(p.status.rawValue), \(p.blob), \(p.size), \(p.md5), \(p.tarOffset), \(p.tarSize), \(Int32(p.fileCount)),
                    \(p.createdAt), \(p.createdBy), \(p.moreSettings))
                RETURNING id
                """, as: Int64.self, on: c).first
            let id = p.id ?? 0
            for f in files {
                try await c.query("""
                    INSERT INTO package_file (package_id, path, size, sha256, tar_offset) VALUES (\(id), \(f.path), \(f.size), \(f.sha256), \(f.tarOffset))
                    """, logger: logger)
            }
            if facts.fixedType == nil {
                try await c.query("UPDATE app SET type = \(p.type.rawValue) WHERE id = \(p.appId)", logger: logger)
            }
            if let importRow {
                // The import row is marked in the same transaction: created, or not at all.
                try await c.query("""
                    UPDATE batch_import_row SET package_id = \(id), error = NULL WHERE import_id = \(importRow.importId) AND n = \(Int32(importRow.n))
                    """, logger: logger)
            }
            return (p, ["type": p.type.rawValue, "sha256": p.blob, "files": String(files.count), "size": String(p.size), "app": p.appId])
        }
    }

    /// Held for `body`'s length by a transaction that only holds an advisory lock every node
    /// takes for blob changes (the in-process lock first, so this node's own callers queue
    /// without a connection each). The lock goes with the transaction: at its end, or when its
    /// connection is lost, never left behind on a pooled connection. Waiting for it can be
    /// cancelled (a shutdown does not hang on another node's long key switch).
    public func withBlobLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await blobs.lock.run {
            try await client.withConnection { c in
                try await c.query("BEGIN", logger: logger)
                do {
                    while try await all("SELECT pg_try_advisory_xact_lock(\(Self.blobLockKey))", as: Bool.self, on: c).first != true {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    let value = try await body()
                    _ = try? await c.query("COMMIT", logger: logger)   // it wrote nothing: only the lock ends
                    return value
                } catch {
                    _ = try? await c.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    static let blobLockKey: Int64 = 0x436F_7572_626C_6F62   // "Courblob"

    public func packageCounts() async throws -> (all: Int, global: Int) {
        let r = try await rows("SELECT COUNT(*), COUNT(*) FILTER (WHERE type = 'global') FROM package", as: (Int64, Int64).self).first
        return (Int(r?.0 ?? 0), Int(r?.1 ?? 0))
    }

    /// Every blob a row refers to: packages' `.amr` files and patches. What is not here is swept.
    static let referencedBlobs = "SELECT blob FROM package UNION SELECT blob FROM patch WHERE blob IS NOT NULL"

    public func isBlobReferenced(_ blob: String) async throws -> Bool {
        try await all("SELECT EXISTS (SELECT 1 FROM (\(unescaped: Self.referencedBlobs)) r WHERE blob = \(blob))", as: Bool.self).first == true
    }

    public func sweep(grace: TimeInterval, now: Date) async throws -> (tempFiles: Int, orphanBlobs: Int) {
        let before = now.addingTimeInterval(-grace)
        let temps = blobs.clearTemporaryFiles(untouchedSince: grace > 0 ? before : nil)
        // This node's pending marks first, then the rows: a blob it added whose rows never
        // committed (the node was killed in between) goes now, whatever its age.
        // Under the blob lock, which every node's adopt-and-commit holds: the same bytes being
        // added by another node now cannot fall between the check and the removal.
        var orphans = try await withBlobLock { [blobs] in
            let pending = blobs.ownPending()
            let referenced = Set(try await all("\(unescaped: Self.referencedBlobs)", as: String.self))
            let elsewhere = blobs.pendingAnywhere(butHere: true)
            var removed = 0
            for blob in pending where !referenced.contains(blob) && !elsewhere.contains(blob)
                                      && FileManager.default.fileExists(atPath: blobs.path(for: blob)) {
                blobs.remove(blob)
                removed += 1
            }
            blobs.forgetPending()
            return removed
        }
        let referenced = Set(try await all("\(unescaped: Self.referencedBlobs)", as: String.self))
        // Blobs any node marks pending stay, whatever their age (a key switch re-signing
        // thousands of packages adopts for a long time before it commits).
        orphans += blobs.removeAll(except: referenced.union(blobs.pendingAnywhere()), untouchedSince: grace > 0 ? before : nil)
        return (temps, orphans)
    }
}
