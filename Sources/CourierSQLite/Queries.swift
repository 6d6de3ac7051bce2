import CourierCore
import CourierStore
import Foundation
import GRDB

extension SQLiteStore {
    // MARK: settings

    public func ping() async throws {
        _ = try await db.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    public func settings() async throws -> SettingsRecord {
        try await db.read { db in try SettingsRecord.read(db) }
    }

    public func setVirtualDomain(_ domain: String, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.virtualDomain", subject: "settings") { db in
            var s = try SettingsRecord.read(db)
            if let existing = s.virtualDomain {
                if existing == domain { return (s, ["virtualDomain": domain, "unchanged": "true"]) }
                throw Conflict("The virtual domain is already set to \(existing) and cannot be changed.", field: "virtualDomain")
            }
            s.virtualDomain = domain
            try s.save(db)
            return (s, ["virtualDomain": domain])
        }
    }

    public func setGlobalLocation(host: String, appKey: String, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.globalLocation", subject: "settings") { db in
            var s = try SettingsRecord.read(db)
            if s.globalHost == host && s.appKey == appKey { return (s, ["globalHost": host, "appKey": appKey, "unchanged": "true"]) }
            let inUse = try PackageRecord.filter(PackageRecord.Columns.type == PackageType.global.rawValue).fetchCount(db) > 0
            if inUse {
                throw Conflict("Global packages already use \(s.globalHost ?? "")/\(s.appKey ?? ""); the global host and app key cannot change.",
                               field: "globalHost")
            }
            s.globalHost = host
            s.appKey = appKey
            try s.save(db)
            return (s, ["globalHost": host, "appKey": appKey])
        }
    }

    public func switchSigningKey(pem: String, fingerprint: String, resigned: [ResignedPackage], by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.signingKey", subject: "settings") { db in
            var s = try SettingsRecord.read(db)
            let previous = s.signingKeyFingerprint
            s.signingKeyPEM = pem
            s.signingKeyFingerprint = fingerprint
            try s.save(db)
            for r in resigned {
                guard var p = try PackageRecord.fetchOne(db, key: r.packageId) else { continue }
                p.blob = r.blob; p.size = r.size; p.md5 = r.md5; p.tarOffset = r.tarOffset
                try p.update(db)
            }
            // Patches carry their target's signatures: they are built again with the new ones.
            try db.execute(sql: "DELETE FROM patch")
            return (s, ["fingerprint": fingerprint, "previousFingerprint": previous ?? "", "resignedPackages": String(resigned.count)])
        }
    }

    // MARK: apps

    public func createApp(id: AppID, name: String, by actor: ActingUser) async throws -> AppRecord {
        try await change(by: actor, "app.create", subject: id.rawValue) { db in
            if try AppRecord.fetchOne(db, key: id.rawValue) != nil {
                throw Conflict("An app with ID \(id) already exists. Choose another ID.", field: "id")
            }
            let app = AppRecord(id: id, name: name)
            try app.insert(db)
            return (app, ["name": name, "app": app.id])
        }
    }

    public func renameApp(_ id: String, name: String, by actor: ActingUser) async throws -> AppRecord {
        try await change(by: actor, "app.rename", subject: id) { db in
            guard var app = try AppRecord.fetchOne(db, key: id) else { throw NotFound.app(id) }
            let before = app.name
            app.name = name
            try app.update(db)
            return (app, ["before": before, "name": name, "app": app.id])
        }
    }

    public func allApps() async throws -> [AppRecord] {
        try await db.read { db in try AppRecord.fetchAll(db) }
    }

    public func allAppsStrictly() async throws -> (apps: [AppRecord], unreadable: [String: String]) {
        try await db.read { db in
            var apps: [AppRecord] = []
            var bad: [String: String] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM app")
            while let row = try rows.next() {
                do { apps.append(try AppRecord(row: row)) } catch {
                    bad[(row["id"] as String?) ?? "?"] = "its stored row cannot be read (\(String(describing: error).prefix(160)))"
                }
            }
            return (apps, bad)
        }
    }

    public func app(_ id: String) async throws -> AppRecord? {
        try await db.read { db in try AppRecord.fetchOne(db, key: id) }
    }

    public func apps(search: String, page: Int, perPage: Int) async throws -> Page<AppSummary> {
        try await db.read { db in
            let pattern = LikePattern.containing(search)
            let filter = "WHERE app.id LIKE :q ESCAPE '\\' OR app.name LIKE :q ESCAPE '\\'"
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM app \(filter)", arguments: ["q": pattern]) ?? 0
            let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
            let items = try AppSummary.fetchAll(db, sql: """
                SELECT app.id, app.name, app.type, app.createdAt,
                       (SELECT COUNT(*) FROM package p WHERE p.appId = app.id) AS packageCount,
                       newest.version AS latestVersion, newest.status AS latestStatus,
                       (SELECT t.id FROM task t WHERE t.appId = app.id
                        ORDER BY t.status IN ('finished', 'rejected') ASC, \(TaskRecord.endedUnreleasedSQL) ASC, t.id DESC LIMIT 1)
                         AS releaseTaskId,
                       (SELECT p.version FROM task t JOIN package p ON p.id = t.packageId
                        WHERE t.appId = app.id AND t.type = 'official' AND t.rolledBack = 0 AND t.status IN ('releasing', 'finished')
                          AND NOT (t.approvalFor = 'release' AND t.approval != 'approved')
                        ORDER BY p.versionKey DESC LIMIT 1) AS officialVersion
                FROM app LEFT JOIN package newest
                  ON newest.id = (SELECT id FROM package WHERE appId = app.id ORDER BY versionKey DESC LIMIT 1)
                \(filter) ORDER BY app.id LIMIT :limit OFFSET :offset
                """, arguments: ["q": pattern, "limit": perPage, "offset": (page - 1) * perPage])
            return Page(items: items, total: total, page: page, perPage: perPage)
        }
    }

    public func batchReleaseCandidates(search: String, limit: Int) async throws -> [(app: AppRecord, newest: PackageRecord)] {
        try await db.read { db in
            let pattern = LikePattern.containing(search)
            let rows = try Row.fetchAll(db, sql: """
                SELECT app.id AS appId, p.id AS packageId FROM app
                JOIN package p ON p.id = (SELECT id FROM package WHERE appId = app.id ORDER BY versionKey DESC LIMIT 1)
                WHERE p.status IN ('toBeReleased', 'finished', 'rejected') AND (app.id LIKE :q ESCAPE '\\' OR app.name LIKE :q ESCAPE '\\')
                ORDER BY app.id LIMIT :limit
                """, arguments: ["q": pattern, "limit": limit])
            return try rows.compactMap { row in
                guard let app = try AppRecord.fetchOne(db, key: row["appId"] as String),
                      let p = try PackageRecord.fetchOne(db, key: row["packageId"] as Int64) else { return nil }
                return (app, p)
            }
        }
    }

    // MARK: packages

    public func packages(of appId: String) async throws -> [PackageRecord] {
        try await db.read { db in
            try PackageRecord.filter(PackageRecord.Columns.appId == appId).order(PackageRecord.Columns.versionKey.desc).fetchAll(db)
        }
    }

    public func package(_ appId: String, _ version: String) async throws -> PackageRecord? {
        try await db.read { db in
            try PackageRecord.filter(PackageRecord.Columns.appId == appId && PackageRecord.Columns.version == version).fetchOne(db)
        }
    }

    public func allPackages() async throws -> [PackageRecord] {
        try await db.read { db in try PackageRecord.fetchAll(db) }
    }

    public func packagesWithTasks() async throws -> [PackageRecord] {
        try await packagesWithTasksStrictly().packages
    }

    public func packagesWithTasksStrictly() async throws -> (packages: [PackageRecord], unreadable: [Int64: String]) {
        try await db.read { db in
            var packages: [PackageRecord] = []
            var bad: [Int64: String] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM package WHERE id IN (SELECT packageId FROM task)")
            while let row = try rows.next() {
                let id: Int64 = row["id"] ?? 0
                do {
                    let p = try PackageRecord(row: row)
                    if let why = p.range.problem { bad[id] = "its package's client range cannot be read: \(why)" } else if p.moreSettingsUnreadable {
                        bad[id] = "its package's settings (moreSettings) cannot be read"
                    } else { packages.append(p) }
                } catch {
                    bad[id] = "its package's stored row cannot be read (\(String(describing: error).prefix(160)))"
                }
            }
            return (packages, bad)
        }
    }

    public func files(of packageId: Int64) async throws -> [PackageFileRecord] {
        try await db.read { db in
            try PackageFileRecord.filter(PackageFileRecord.Columns.packageId == packageId).order(PackageFileRecord.Columns.path).fetchAll(db)
        }
    }

    public func files(of packageId: Int64, page: Int, perPage: Int) async throws -> Page<PackageFileRecord> {
        try await db.read { db in
            let request = PackageFileRecord.filter(PackageFileRecord.Columns.packageId == packageId)
            let total = try request.fetchCount(db)
            let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
            let items = try request.order(PackageFileRecord.Columns.path).limit(perPage, offset: (page - 1) * perPage).fetchAll(db)
            return Page(items: items, total: total, page: page, perPage: perPage)
        }
    }

    public func file(of packageId: Int64, path: String) async throws -> PackageFileRecord? {
        try await db.read { db in try PackageFileRecord.fetchOne(db, key: ["packageId": packageId, "path": path]) }
    }

    public func facts(of appId: String) async throws -> AppFacts {
        try await db.read { db in try Self.facts(db, appId) }
    }

    static func facts(_ db: Database, _ appId: String) throws -> AppFacts {
        let app = try AppRecord.fetchOne(db, key: appId)
        let highest = try PackageRecord.filter(PackageRecord.Columns.appId == appId).order(PackageRecord.Columns.versionKey.desc).fetchOne(db)
        return AppFacts(fixedType: app?.type, highestVersion: highest?.packageVersion)
    }

    /// Records a built package and its files in one transaction. The version and type rules
    /// are checked again inside it, so two racing uploads cannot both win.
    public func insertPackage(_ package: PackageRecord, files: [PackageFileRecord], importRow: ImportRowKey?,
                       by actor: ActingUser) async throws -> PackageRecord {
        try await change(by: actor, "package.add", subject: "\(package.appId) \(package.version)") { db in
            let facts = try Self.facts(db, package.appId)
            try facts.check(package.packageVersion, package.type)
            var p = package
            try p.insert(db)
            for var f in files {
                f.packageId = p.id!
                try f.insert(db)
            }
            if facts.fixedType == nil, var app = try AppRecord.fetchOne(db, key: p.appId) {
                app.type = p.type
                try app.update(db)
            }
            if let importRow {
                // The import row is marked in the same transaction: created, or not at all.
                try db.execute(sql: "UPDATE batchImportRow SET packageId = ?, error = NULL WHERE importId = ? AND n = ?",
                               arguments: [p.id, importRow.importId, importRow.n])
            }
            return (p, ["type": p.type.rawValue, "sha256": p.blob, "files": String(files.count), "size": String(p.size), "app": p.appId])
        }
    }

    public func withBlobLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await blobs.lock.run(body)
    }

    public func packageCounts() async throws -> (all: Int, global: Int) {
        try await db.read { db in
            (try PackageRecord.fetchCount(db), try PackageRecord.filter(PackageRecord.Columns.type == PackageType.global.rawValue).fetchCount(db))
        }
    }

    public func isBlobReferenced(_ blob: String) async throws -> Bool {
        try await db.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM (\(Self.referencedBlobsSQL)) WHERE blob = ?)", arguments: [blob]) == true
        }
    }
}
