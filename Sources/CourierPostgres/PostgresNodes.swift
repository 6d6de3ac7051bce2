import CourierCore
import CourierStore
import Foundation
import PostgresNIO

/// What several nodes share (SPEC §9): the catalogue version every change raises (each node
/// polls it, and LISTENs for `courier_catalogue`), leases, and time-window admissions the
/// database decides.
extension PostgresStore: NodeStore {
    public func catalogueVersion() async throws -> Int64 {
        try await all("SELECT version FROM catalogue_version WHERE id = 1", as: Int64.self).first ?? 0
    }

    public func acquireLease(_ name: String, holder: String, for seconds: TimeInterval, now: Date) async throws -> Bool {
        let expires = now.addingTimeInterval(seconds).timeIntervalSince1970, at = now.timeIntervalSince1970
        return try await transaction { c in
            try await c.query("""
                INSERT INTO lease (name, holder, expires_at) VALUES (\(name), \(holder), \(expires))
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                WHERE lease.holder = excluded.holder OR lease.expires_at <= \(at)
                """, logger: logger)
            return try await all("SELECT holder FROM lease WHERE name = \(name)", as: String.self, on: c).first == holder
        }
    }

    public func releaseLease(_ name: String, holder: String) async throws {
        try await client.query("DELETE FROM lease WHERE name = \(name) AND holder = \(holder)", logger: logger)
    }

    /// The task's row is locked first: admissions to one window queue up across nodes, so the
    /// count each one reads is the last one's.
    public func admit(task: Int64, device: String, limit: Int, now: Date) async throws -> Bool {
        try await transaction { c in
            let open = try await all("""
                SELECT id FROM task WHERE id = \(task) AND mode = 'timeWindow' AND status = 'releasing' AND end_time > \(now) FOR UPDATE
                """, as: Int64.self, on: c)
            let already = try await all("SELECT 1 FROM admission WHERE task_id = \(task) AND device_id = \(device)", as: Int32.self, on: c)
            if !already.isEmpty { return true }
            guard !open.isEmpty else { return false }
            let count = try await all("SELECT COUNT(*) FROM admission WHERE task_id = \(task)", as: Int64.self, on: c).first ?? 0
            guard count < limit else { return false }
            try await c.query("INSERT INTO admission (task_id, device_id) VALUES (\(task), \(device))", logger: logger)
            return true
        }
    }
}
