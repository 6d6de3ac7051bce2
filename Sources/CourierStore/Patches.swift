import CourierCore
import Foundation
import GRDB

/// A patch from one version of an app (the base) to a later one (SPEC §3 "Patches"), built in
/// the background; `blob` nil records one that was built and is not worth offering (at least
/// half the full `.amr`), so it is never built again.
public struct PatchRecord: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "patch"
    public var packageId: Int64
    public var basePackageId: Int64
    public var appId: String
    public var version: String
    public var base: String
    public var blob: String?
    public var size: Int64
    public var changedFiles: Int
    public var removedFiles: Int
    public var createdAt: Date

    public init(packageId: Int64, basePackageId: Int64, appId: String, version: String, base: String, blob: String?, size: Int64,
                changedFiles: Int, removedFiles: Int, createdAt: Date = Date()) {
        self.packageId = packageId; self.basePackageId = basePackageId; self.appId = appId; self.version = version; self.base = base
        self.blob = blob; self.size = size; self.changedFiles = changedFiles; self.removedFiles = removedFiles; self.createdAt = createdAt
    }

    /// Whether the update answer offers it (PatchRules: smaller than half of the full `.amr`).
    public func offered(fullSize: Int64) -> Bool { blob != nil && PatchRules.worthOffering(patchSize: size, fullSize: fullSize) }
}

extension Store {
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

    /// Every patch whose row can be read. The table is Courier's own cache: a row that does
    /// not decode is passed over (never offered), not allowed to stop delivery.
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

    /// Records a built patch whose blob (if any) is already in the store, unless one of its two
    /// packages changed since it was read (a key replacement re-signed the target: the patch
    /// carries the old signature) or it was recorded meanwhile. Answers whether it was recorded;
    /// if not, the caller removes the blob. Call inside `withBlobLock`. Not audited: Courier
    /// made it, nobody changed anything.
    public func recordPatch(_ patch: PatchRecord, targetBlob: String, baseBlob: String) async throws -> Bool {
        let recorded = try await db.write { db -> Bool in
            let blobs = try Row.fetchAll(db, sql: "SELECT id, blob FROM package WHERE id IN (?, ?)", arguments: [patch.packageId, patch.basePackageId])
            let now = Dictionary(blobs.map { ($0[0] as Int64, $0[1] as String) }, uniquingKeysWith: { a, _ in a })
            guard now[patch.packageId] == targetBlob, now[patch.basePackageId] == baseBlob,
                  try PatchRecord.exists(db, key: ["packageId": patch.packageId, "basePackageId": patch.basePackageId]) == false else {
                return false
            }
            try patch.insert(db)
            try Store.bumpCatalogueVersion(db)
            return true
        }
        if recorded { await changes.announce() }
        return recorded
    }

    /// Deletes patches (by their target and base package IDs) and answers the blobs nothing
    /// refers to any more, for the caller to remove. Call inside `withBlobLock`.
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
            try Store.bumpCatalogueVersion(db)
            return try blobs.filter { blob in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM (\(Self.referencedBlobsSQL)) WHERE blob = ?)", arguments: [blob]) != true
            }
        }
        await changes.announce()
        return gone
    }
}

/// What changed between two versions of an app, file by file (the reviewer's view of issue 18,
/// and `GET …/diff?from=`): by path, sizes in bytes.
public struct PackageDiff: Sendable, Encodable, Equatable {
    public struct File: Sendable, Encodable, Equatable {
        public let path: String
        public let size: Int64
    }
    public struct Changed: Sendable, Encodable, Equatable {
        public let path: String
        public let sizeFrom: Int64
        public let sizeTo: Int64
    }
    public var added: [File] = []
    public var removed: [File] = []
    public var changed: [Changed] = []
    /// Bytes of the files a patch carries (added and changed), before its tar headers.
    public var newBytes: Int64 { added.reduce(0) { $0 + $1.size } + changed.reduce(0) { $0 + $1.sizeTo } }
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
}

extension Store {
    /// The files of package `to` against those of package `from`.
    public func diff(from: Int64, to: Int64) async throws -> PackageDiff {
        try await db.read { db in
            func files(_ id: Int64) throws -> [String: (size: Int64, sha256: String)] {
                var all: [String: (Int64, String)] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT path, size, sha256 FROM packageFile WHERE packageId = ?", arguments: [id]) {
                    all[r[0]] = (r[1], r[2])
                }
                return all
            }
            let old = try files(from), new = try files(to)
            var d = PackageDiff()
            for (path, f) in new.sorted(by: { $0.key < $1.key }) {
                if let o = old[path] {
                    if o.sha256 != f.sha256 { d.changed.append(.init(path: path, sizeFrom: o.size, sizeTo: f.size)) }
                } else {
                    d.added.append(.init(path: path, size: f.size))
                }
            }
            for (path, o) in old.sorted(by: { $0.key < $1.key }) where new[path] == nil { d.removed.append(.init(path: path, size: o.size)) }
            return d
        }
    }
}
