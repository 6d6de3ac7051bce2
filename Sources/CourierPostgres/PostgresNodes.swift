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

    public func admittedDevices(task: Int64) async throws -> Int {
        Int(try await all("SELECT n FROM admission_count WHERE task_id = \(task)", as: Int64.self).first ?? 0)
    }

    public func releaseLease(_ name: String, holder: String) async throws {
        try await client.query("DELETE FROM lease WHERE name = \(name) AND holder = \(holder)", logger: logger)
    }

    /// The task's row is locked first: admissions to one window queue up across nodes, so the
    /// count each one reads (the window's `admission_count`, kept by triggers) is the last one's.
    public func admit(task: Int64, device: String, limit: Int, now: Date) async throws -> Bool {
        try await transaction { c in
            let open = try await all("""
                SELECT id FROM task WHERE id = \(task) AND mode = 'timeWindow' AND status = 'releasing' AND end_time > \(now) FOR UPDATE
                """, as: Int64.self, on: c)
            let already = try await all("SELECT 1 FROM admission WHERE task_id = \(task) AND device_id = \(device)", as: Int32.self, on: c)
            if !already.isEmpty { return true }
            guard !open.isEmpty else { return false }
            let count = try await all("SELECT n FROM admission_count WHERE task_id = \(task)", as: Int64.self, on: c).first ?? 0
            guard count < limit else { return false }
            try await c.query("INSERT INTO admission (task_id, device_id) VALUES (\(task), \(device))", logger: logger)
            return true
        }
    }
}

/// The sign-in throttle's counts, shared by the nodes (issue 20): one row per key an attempt
/// counts under. A reservation takes each key's advisory lock (in a fixed order, so two never
/// deadlock), so parallel guesses on several nodes queue and each sees the last one's row.
extension PostgresStore: SignInLedger {
    public var signInLedger: (any SignInLedger)? { self }

    public func reserveSignIn(_ keys: [(key: String, limit: Int)], window: TimeInterval, now: Date) async throws -> SignInReservation {
        let cutoff = now.addingTimeInterval(-window)
        // Keys are stored hashed: fixed length, no NUL (PostgreSQL's text has none), no names.
        let keys = keys.map { (key: TokenHash.of($0.key), limit: $0.limit) }
        return try await transaction { c in
            for key in keys.map(\.key).sorted() {
                try await c.query("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 0))", logger: logger)
            }
            // Expired rows go: these keys' own, and a bounded handful of anyone's, so the table
            // holds only the last window's attempts whatever is sent.
            try await c.query("""
                DELETE FROM sign_in_attempt WHERE at <= \(cutoff)
                AND (key = ANY(\(keys.map(\.key))) OR ctid IN (SELECT ctid FROM sign_in_attempt WHERE at <= \(cutoff) LIMIT 100))
                """, logger: logger)
            var wait: TimeInterval = 0
            for (key, limit) in keys {
                let (count, oldest) = try await rows("SELECT COUNT(*), MIN(at) FROM sign_in_attempt WHERE key = \(key)",
                                                     as: (Int64, Date?).self, on: c).first ?? (Int64(0), nil)
                if count >= limit, let oldest { wait = max(wait, window - now.timeIntervalSince(oldest)) }
            }
            if wait > 0 { return .wait(wait) }
            let id = UUID().uuidString
            for (key, _) in keys {
                try await c.query("INSERT INTO sign_in_attempt (id, key, at) VALUES (\(id), \(key), \(now))", logger: logger)
            }
            return .reserved(id)
        }
    }

    public func releaseSignIn(_ id: String, clearing key: String) async throws {
        try await client.query("DELETE FROM sign_in_attempt WHERE id = \(id) OR key = \(TokenHash.of(key))", logger: logger)
    }
}
