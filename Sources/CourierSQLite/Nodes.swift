import CourierCore
import CourierStore
import Foundation
import GRDB

/// What several Courier nodes on one database will share (SPEC §9, the next issue), stated as
/// store operations rather than as "SQLite has one writer": a durable catalogue version (the
/// change feed a node polls, so a missed notification is caught), leases (housekeeping runs on
/// one node at a time) and a time-window admission decided by the database. Each is one
/// statement or one transaction here; a second backend implements the same operation with its
/// own locking (a row lock or a serialisable transaction), and the shared store tests hold it to
/// the same results.
extension SQLiteStore {
    static func registerNodeMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v15-nodes") { db in
            try db.create(table: "catalogueVersion") { t in
                t.column("id", .integer).primaryKey().check { $0 == 1 }
                t.column("version", .integer).notNull()
            }
            try db.execute(sql: "INSERT INTO catalogueVersion (id, version) VALUES (1, 0)")
            try db.create(table: "lease") { t in
                t.column("name", .text).primaryKey()
                t.column("holder", .text).notNull()
                t.column("expiresAt", .double).notNull()
            }
        }
    }

    /// Raised in the transaction of every change to the catalogue: a node whose snapshot was
    /// built at a lower version is stale.
    static func bumpCatalogueVersion(_ db: Database) throws {
        try db.execute(sql: "UPDATE catalogueVersion SET version = version + 1 WHERE id = 1")
    }

    public func catalogueVersion() async throws -> Int64 {
        try await db.read { db in try Int64.fetchOne(db, sql: "SELECT version FROM catalogueVersion WHERE id = 1") ?? 0 }
    }

    public func acquireLease(_ name: String, holder: String, for seconds: TimeInterval, now: Date) async throws -> Bool {
        try await db.write { db in
            try db.execute(sql: """
                INSERT INTO lease (name, holder, expiresAt) VALUES (?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expiresAt = excluded.expiresAt
                WHERE lease.holder = excluded.holder OR lease.expiresAt <= ?
                """, arguments: [name, holder, now.addingTimeInterval(seconds).timeIntervalSince1970, now.timeIntervalSince1970])
            return try String.fetchOne(db, sql: "SELECT holder FROM lease WHERE name = ?", arguments: [name]) == holder
        }
    }

    public func releaseLease(_ name: String, holder: String) async throws {
        try await db.write { db in try db.execute(sql: "DELETE FROM lease WHERE name = ? AND holder = ?", arguments: [name, holder]) }
    }

    public func admit(task: Int64, device: String, limit: Int, now: Date) async throws -> Bool {
        try await db.write { db in
            let already = "SELECT EXISTS (SELECT 1 FROM admission WHERE taskId = ? AND deviceId = ?)"
            if try Bool.fetchOne(db, sql: already, arguments: [task, device]) == true { return true }
            try db.execute(sql: """
                INSERT OR IGNORE INTO admission (taskId, deviceId) SELECT ?, ?
                WHERE EXISTS (SELECT 1 FROM task WHERE id = ? AND mode = 'timeWindow' AND status = 'releasing' AND endTime > ?)
                  AND (SELECT COUNT(*) FROM admission WHERE taskId = ?) < ?
                """, arguments: [task, device, task, now, task, limit])
            return db.changesCount > 0
        }
    }

    public func admittedDevices(task: Int64) async throws -> Int {
        try await db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM admission WHERE taskId = ?", arguments: [task]) ?? 0 }
    }
}
