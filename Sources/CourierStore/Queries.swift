import CourierCore
import Foundation
import GRDB

/// A row of the H5 apps list.
public struct AppSummary: Decodable, FetchableRecord, Sendable {
    public var id: String
    public var name: String
    public var type: PackageType?
    public var packageCount: Int
    public var latestVersion: String?
    public var createdAt: Date
}

public struct Page<T: Sendable>: Sendable {
    public var items: [T]
    public var total: Int
    public var page: Int
    public var perPage: Int
    public var pageCount: Int { max(1, (total + perPage - 1) / perPage) }
}

extension Store {
    // MARK: settings

    public func settings() throws -> SettingsRecord {
        try db.read { db in try SettingsRecord.fetchOne(db, key: 1) } ?? SettingsRecord()
    }

    /// Updates settings inside one transaction; `change` sees the current row and may refuse.
    public func updateSettings(_ change: @Sendable (inout SettingsRecord) throws -> Void) throws -> SettingsRecord {
        try db.write { db in
            var s = try SettingsRecord.fetchOne(db, key: 1) ?? SettingsRecord()
            try change(&s)
            try s.save(db)
            return s
        }
    }

    // MARK: apps

    public func createApp(id: AppID, name: String) throws -> AppRecord {
        try db.write { db in
            if try AppRecord.fetchOne(db, key: id.rawValue) != nil {
                throw FieldError("id", "An app with ID \(id) already exists. Choose another ID.")
            }
            let app = AppRecord(id: id, name: name)
            try app.insert(db)
            return app
        }
    }

    public func app(_ id: String) throws -> AppRecord? {
        try db.read { db in try AppRecord.fetchOne(db, key: id) }
    }

    public func apps(search: String, page: Int, perPage: Int = 20) throws -> Page<AppSummary> {
        try db.read { db in
            let pattern = "%" + search.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
            let filter = "WHERE app.id LIKE :q ESCAPE '\\' OR app.name LIKE :q ESCAPE '\\'"
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM app \(filter)", arguments: ["q": pattern]) ?? 0
            let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
            let items = try AppSummary.fetchAll(db, sql: """
                SELECT app.id, app.name, app.type, app.createdAt,
                       (SELECT COUNT(*) FROM package p WHERE p.appId = app.id) AS packageCount,
                       (SELECT version FROM package p WHERE p.appId = app.id ORDER BY versionKey DESC LIMIT 1) AS latestVersion
                FROM app \(filter) ORDER BY app.id LIMIT :limit OFFSET :offset
                """, arguments: ["q": pattern, "limit": perPage, "offset": (page - 1) * perPage])
            return Page(items: items, total: total, page: page, perPage: perPage)
        }
    }

    // MARK: packages

    public func packages(of appId: String) throws -> [PackageRecord] {
        try db.read { db in
            try PackageRecord.filter(Column("appId") == appId).order(Column("versionKey").desc).fetchAll(db)
        }
    }

    public func package(_ appId: String, _ version: String) throws -> PackageRecord? {
        try db.read { db in
            try PackageRecord.filter(Column("appId") == appId && Column("version") == version).fetchOne(db)
        }
    }

    public func allPackages() throws -> [PackageRecord] {
        try db.read { db in try PackageRecord.fetchAll(db) }
    }

    public func files(of packageId: Int64) throws -> [PackageFileRecord] {
        try db.read { db in
            try PackageFileRecord.filter(Column("packageId") == packageId).order(Column("path")).fetchAll(db)
        }
    }

    public func file(of packageId: Int64, path: String) throws -> PackageFileRecord? {
        try db.read { db in try PackageFileRecord.fetchOne(db, key: ["packageId": packageId, "path": path]) }
    }

    public func facts(of appId: String) throws -> AppFacts {
        try db.read { db in try Self.facts(db, appId) }
    }

    static func facts(_ db: Database, _ appId: String) throws -> AppFacts {
        let app = try AppRecord.fetchOne(db, key: appId)
        let highest = try PackageRecord.filter(Column("appId") == appId).order(Column("versionKey").desc).fetchOne(db)
        return AppFacts(fixedType: app?.type, highestVersion: highest?.packageVersion)
    }

    /// Records a built package and its files in one transaction. The version and type rules
    /// are checked again inside it, so two racing uploads cannot both win.
    func insertPackage(_ package: PackageRecord, files: [PackageFileRecord]) throws -> PackageRecord {
        try db.write { db in
            let facts = try Self.facts(db, package.appId)
            if let highest = facts.highestVersion, package.packageVersion <= highest {
                throw FieldError("version", "The version must be greater than \(highest), the app's highest version.")
            }
            if let fixed = facts.fixedType, fixed != package.type {
                throw FieldError("type", "This app's packages are \(fixed.rawValue); its resource package type cannot change.")
            }
            var p = package
            try p.insert(db)
            for var f in files {
                f.packageId = p.id!
                try f.insert(db)
            }
            if facts.fixedType == nil {
                try db.execute(sql: "UPDATE app SET type = ? WHERE id = ?", arguments: [p.type.rawValue, p.appId])
            }
            return p
        }
    }

    /// Runs `body` while no other blob change can happen (package commits, key switches).
    public func withBlobLock<T>(_ body: () throws -> T) rethrows -> T {
        try blobs.lock.withLock(body)
    }

    /// Moves a finished `.amr` into the blob store and records its package. Serialized with
    /// every other blob change, so a racing double submit (same bytes, same blob) cannot delete
    /// the blob the winner has just recorded, and a package signed with a key that was
    /// replaced meanwhile is refused rather than stored with the old signature.
    public func commitPackage(amrAt tempPath: String, _ package: PackageRecord, files: [PackageFileRecord],
                              signedWith fingerprint: String?) throws -> PackageRecord {
        try blobs.lock.withLock {
            guard try settings().signingKeyFingerprint == fingerprint else {
                throw FieldError("file", "The signing key was replaced while this package was being processed. Upload it again.")
            }
            try blobs.adopt(tempPath, sha256: package.blob)
            do {
                return try insertPackage(package, files: files)
            } catch {
                if try !isBlobReferenced(package.blob) { blobs.remove(package.blob) }
                throw error
            }
        }
    }

    /// Deletes the blobs among `shas` that no package refers to. Call inside `withBlobLock`.
    public func removeUnreferenced(_ shas: [String]) throws {
        for sha in Set(shas) where try !isBlobReferenced(sha) { blobs.remove(sha) }
    }

    public func packageCounts() throws -> (all: Int, global: Int) {
        try db.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*), COALESCE(SUM(type = 'global'), 0) FROM package")!
            return (row[0], row[1])
        }
    }

    public func isBlobReferenced(_ blob: String) throws -> Bool {
        try db.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM package WHERE blob = ?)", arguments: [blob]) ?? false }
    }
}
