import CourierCore
import CourierStore
import Foundation
import GRDB

extension SQLiteStore {
    /// Every blob a row refers to: packages' `.amr` files and patches. What is not here is swept.
    static let referencedBlobsSQL = "SELECT blob FROM package UNION SELECT blob FROM patch WHERE blob IS NOT NULL"

    /// The blobs a database refers to (one from before patches too: a backup's).
    static func referencedBlobs(_ db: Database) throws -> Set<String> {
        try Set(String.fetchAll(db, sql: try db.tableExists("patch") ? referencedBlobsSQL : "SELECT blob FROM package"))
    }

    static func createPatchTable(_ db: Database) throws {
        try db.create(table: "patch") { t in
            t.column("packageId", .integer).notNull().references("package", onDelete: .cascade)
            t.column("basePackageId", .integer).notNull().references("package", onDelete: .cascade)
            t.column("appId", .text).notNull()
            t.column("version", .text).notNull()
            t.column("base", .text).notNull()
            t.column("blob", .text)
            t.column("size", .integer).notNull()
            t.column("changedFiles", .integer).notNull()
            t.column("removedFiles", .integer).notNull()
            t.column("createdAt", .datetime).notNull()
            t.primaryKey(["packageId", "basePackageId"])
        }
        try db.create(index: "patch_blob", on: "patch", columns: ["blob"])
    }

    public func patches() async throws -> [PatchRecord] {
        try await db.read { db in
            var all: [PatchRecord] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM patch")
            while let row = try rows.next() { if let p = try? PatchRecord(row: row) { all.append(p) } }
            return all
        }
    }

    public func patches(of appId: String) async throws -> [PatchRecord] {
        try await db.read { db in try PatchRecord.filter(Column("appId") == appId).fetchAll(db) }
    }

    public func patch(_ appId: String, _ version: String, from base: String) async throws -> PatchRecord? {
        try await db.read { db in
            try PatchRecord.filter(Column("appId") == appId && Column("version") == version && Column("base") == base).fetchOne(db)
        }
    }

    public func recordPatch(_ patch: PatchRecord, targetBlob: String, baseBlob: String) async throws -> Bool {
        let recorded = try await db.write { db -> Bool in
            let blobs = try Row.fetchAll(db, sql: "SELECT id, blob FROM package WHERE id IN (?, ?)", arguments: [patch.packageId, patch.basePackageId])
            let now = Dictionary(blobs.map { ($0[0] as Int64, $0[1] as String) }, uniquingKeysWith: { a, _ in a })
            guard now[patch.packageId] == targetBlob, now[patch.basePackageId] == baseBlob,
                  try PatchRecord.exists(db, key: ["packageId": patch.packageId, "basePackageId": patch.basePackageId]) == false else {
                return false
            }
            try patch.insert(db)
            try SQLiteStore.bumpCatalogueVersion(db)
            return true
        }
        // Not announced: the patch service announces once a round (or every two seconds), so
        // a hundred patches do not rebuild the delivery snapshot a hundred times.
        return recorded
    }

    public func deletePatches(_ keys: [(packageId: Int64, basePackageId: Int64)]) async throws -> [String] {
        guard !keys.isEmpty else { return [] }
        let gone = try await db.write { db -> [String] in
            var blobs: [String] = []
            for k in keys {
                if let p = try PatchRecord.fetchOne(db, key: ["packageId": k.packageId, "basePackageId": k.basePackageId]) {
                    if let blob = p.blob { blobs.append(blob) }
                    try p.delete(db)
                }
            }
            try SQLiteStore.bumpCatalogueVersion(db)
            return try blobs.filter { blob in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM (\(Self.referencedBlobsSQL)) WHERE blob = ?)", arguments: [blob]) != true
            }
        }
        await changes.announce()
        return gone
    }
}

extension SQLiteStore {
    public func diff(from: Int64, to: Int64) async throws -> PackageDiff {
        try await db.read { db in
            func files(_ id: Int64) throws -> [String: (size: Int64, sha256: String)] {
                var all: [String: (Int64, String)] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT path, size, sha256 FROM packageFile WHERE packageId = ?", arguments: [id]) {
                    all[r[0]] = (r[1], r[2])
                }
                return all
            }
            return PackageDiff(from: try files(from), to: try files(to))
        }
    }
}
