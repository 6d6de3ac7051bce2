import CourierCore
import CourierStore
import Foundation
import GRDB

extension SQLiteStore {
    static func registerImportMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v5-imports") { db in
            try db.create(table: "batchImport") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("key", .text).notNull().unique()
                t.column("createdBy", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("expiresAt", .datetime).notNull()
                t.column("status", .text).notNull()
            }
            try db.create(table: "batchImportRow") { t in
                t.column("importId", .integer).notNull().references("batchImport", onDelete: .cascade)
                t.column("n", .integer).notNull()
                t.column("fileName", .text).notNull()
                t.column("appId", .text)
                t.column("newApp", .boolean).notNull()
                t.column("type", .text)
                t.column("fileCount", .integer).notNull()
                t.column("size", .integer).notNull()
                t.column("fields", .text).notNull()
                t.column("error", .text)
                t.column("refused", .boolean).notNull()
                t.column("packageId", .integer)
                t.primaryKey(["importId", "n"])
            }
        }
    }

    public func importFile(key: String, n: Int) -> String { "\(importsDirectory)/\(key)/\(n).zip" }

    public func createImport(key: String, rows: [ImportRowRecord], by actor: ActingUser, now: Date) async throws -> ImportRecord {
        try await change(by: actor, "import.create", subject: key, catalogue: false) { db in
            var record = ImportRecord(id: nil, key: key, createdBy: actor.name, createdAt: now, expiresAt: now.addingTimeInterval(ImportRecord.lifetime))
            try record.insert(db)
            for var row in rows {
                row.importId = record.id!
                try row.insert(db)
            }
            return (record, ["files": String(rows.count), "ready": String(rows.filter { $0.error == nil }.count)])
        }
    }

    public func importRecord(_ id: Int64) async throws -> ImportRecord? {
        try await db.read { db in try ImportRecord.fetchOne(db, key: id) }
    }

    public func importRows(_ id: Int64) async throws -> [ImportRowRecord] {
        try await db.read { db in try ImportRowRecord.filter(Column("importId") == id).order(Column("n")).fetchAll(db) }
    }

    public func updateImportRow(_ id: Int64, n: Int, draft: PackageDraft, error: String?, by actor: ActingUser,
                                now: Date) async throws {
        try await change(by: actor, "import.editRow", subject: "\(id) \(n)", catalogue: false) { db in
            guard let record = try ImportRecord.fetchOne(db, key: id), record.status == "open" else {
                throw Conflict("This import was submitted; its rows can no longer change.")
            }
            guard record.expiresAt > now else { throw Conflict("This import has expired (24 hours); start a new one.") }
            guard var row = try ImportRowRecord.filter(Column("importId") == id && Column("n") == n).fetchOne(db), !row.created, !row.refused else {
                throw NotFound("This import has no such row to edit.")
            }
            row.draft = draft
            row.error = error
            try row.update(db)
            return ((), ["version": draft.version])
        }
    }

    public func beginImportSubmission(_ id: Int64, by actor: ActingUser, now: Date) async throws -> Bool {
        struct NotOpen: Error {}
        do {
            return try await change(by: actor, "import.submit", subject: String(id), catalogue: false) { db in
                try db.execute(sql: "UPDATE batchImport SET status = 'submitting' WHERE id = ? AND status = 'open' AND expiresAt > ?",
                               arguments: [id, now])
                guard db.changesCount == 1 else { throw NotOpen() }   // rolled back: no audit row for a second click
                return (true, [:])
            }
        } catch is NotOpen {
            return false
        }
    }

    public func failImportRow(_ id: Int64, n: Int, error: String) async throws {
        try await db.write { db in
            try db.execute(sql: "UPDATE batchImportRow SET error = ? WHERE importId = ? AND n = ? AND packageId IS NULL",
                           arguments: [error, id, n])
        }
    }

    public func endImportSubmission(_ id: Int64) async throws -> ImportRecord? {
        let (record, done) = try await db.write { db -> (ImportRecord?, Bool) in
            let left = try ImportRowRecord.filter(Column("importId") == id && Column("packageId") == nil && Column("refused") == false).fetchCount(db)
            try db.execute(sql: "UPDATE batchImport SET status = ? WHERE id = ?", arguments: [left == 0 ? "done" : "open", id])
            return (try ImportRecord.fetchOne(db, key: id), left == 0)
        }
        if done, let record { try? FileManager.default.removeItem(atPath: "\(importsDirectory)/\(record.key)") }
        return record
    }

    public func sweepImports(now: Date, startingUp: Bool) async throws -> Int {
        let (expired, keys) = try await db.write { db -> ([String], Set<String>) in
            if startingUp { try db.execute(sql: "UPDATE batchImport SET status = 'open' WHERE status = 'submitting'") }
            // Never one being submitted: that submission ends it.
            let expired = try String.fetchAll(db, sql: "SELECT key FROM batchImport WHERE status = 'open' AND expiresAt < ?", arguments: [now])
            try db.execute(sql: "DELETE FROM batchImport WHERE status = 'open' AND expiresAt < ?", arguments: [now])
            let open = Set(try String.fetchAll(db, sql: "SELECT key FROM batchImport WHERE status != 'done'"))
            return (expired, open)
        }
        removeImportFolders(expired: expired, keeping: keys, startingUp: startingUp)
        return expired.count
    }
}
