import CourierCore
import CourierStore
import Foundation
import PostgresNIO

/// The audit log on PostgreSQL: the same hash chain as SQLite's. Appends from every node queue
/// on the `audit_head` row, so each links to the one committed before it. Ids come from a
/// sequence, which a rolled-back append leaves a gap in: what proves a row deleted is its
/// successor's `previous_id` (or the head) naming a row that is not there, never a gap.
extension PostgresStore: AuditStore {
    /// Appends the audit row of a change, inside the change's own transaction.
    static func audit(_ c: PostgresConnection, by actor: ActingUser, _ action: String, subject: String, detail: [String: String],
                      logger: Logger) async throws {
        var head: (Int64, String)?
        for try await row in try await c.query("SELECT last_id, last_hash FROM audit_head WHERE id = 1 FOR UPDATE", logger: logger)
            .decode((Int64, String).self) { head = row }
        guard let (previousId, previous) = head else { throw ServerFault("The audit log's head row is missing.") }
        let data = try JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys, .withoutEscapingSlashes])
        let detailText = String(decoding: data, as: UTF8.self)
        let at = AuditRecord.timestamp.format(Date())
        let hash = AuditRecord.chain(previous: previous, at: at, user: actor.name, action: action, subject: subject, detail: detailText)
        var id: Int64 = 0
        for try await row in try await c.query("""
            INSERT INTO audit (at, "user", action, subject, detail, hash, app_id, previous_id)
            VALUES (\(at), \(actor.name), \(action), \(subject), \(detailText), \(hash), \(detail["app"]), \(previousId)) RETURNING id
            """, logger: logger).decode(Int64.self) { id = row }
        try await c.query("UPDATE audit_head SET last_id = \(id), last_hash = \(hash) WHERE id = 1", logger: logger)
    }

    static let auditColumns = #"id, at, "user", action, subject, detail, hash, app_id"#
    typealias AuditRow = (Int64, String, String, String, String, String, String, String?)

    func auditRecords(_ query: PostgresQuery) async throws -> [AuditRecord] {
        try await rows(query, as: AuditRow.self).map {
            AuditRecord(id: $0.0, at: $0.1, user: $0.2, action: $0.3, subject: $0.4, detail: $0.5, hash: $0.6, appId: $0.7)
        }
    }

    public func auditEntries(limit: Int) async throws -> [AuditRecord] {
        try await auditRecords("SELECT \(unescaped: Self.auditColumns) FROM audit ORDER BY id DESC LIMIT \(limit)")
    }

    public func auditEntries(subject: String, actionPrefix: String) async throws -> [AuditRecord] {
        try await auditRecords("""
            SELECT \(unescaped: Self.auditColumns) FROM audit WHERE subject = \(subject) AND starts_with(action, \(actionPrefix)) ORDER BY id
            """)
    }

    public func auditHead() async throws -> (row: Int64, hash: String)? {
        try await rows("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", as: (Int64, String).self).first.map { (row: $0.0, hash: $0.1) }
    }

    public func auditHash(row id: Int64) async throws -> String? {
        try await all("SELECT hash FROM audit WHERE id = \(id)", as: String.self).first
    }

    public func verifyAudit() async throws -> AuditVerification {
        try await transaction { c in
            // One snapshot for the rows and the head.
            try await c.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
            var previous = "", previousId: Int64 = 0, count = 0
            let rows = try await c.query("SELECT \(unescaped: Self.auditColumns), previous_id FROM audit ORDER BY id", logger: logger)
            for try await r in rows.decode((Int64, String, String, String, String, String, String, String?, Int64?).self) {
                count += 1
                // The row before this one, as it was when this one was written, is gone.
                guard r.8 == previousId else { return AuditVerification(rows: count, firstBadRow: r.8 ?? r.0, missing: r.8 != nil) }
                let expected = AuditRecord.chain(previous: previous, at: r.1, user: r.2, action: r.3, subject: r.4, detail: r.5)
                guard expected == r.6 else { return AuditVerification(rows: count, firstBadRow: r.0) }
                // The app column is outside the hash: it must say what the (hashed) detail says.
                if let app = AuditRecord.detailApp(r.5), r.7 != app { return AuditVerification(rows: count, firstBadRow: r.0) }
                previous = r.6
                previousId = r.0
            }
            // The last rows deleted: the head still names the last one appended.
            let head = try await all("SELECT last_id FROM audit_head WHERE id = 1", as: Int64.self, on: c).first ?? 0
            if head != previousId { return AuditVerification(rows: count, firstBadRow: head, missing: true) }
            return AuditVerification(rows: count, firstBadRow: nil)
        }
    }

    /// `select … WHERE filter … tail`: the app (case-insensitive, like SQLite's LIKE) in the app
    /// column or the subject, the user exactly, the kind as the action's first word.
    func auditQuery(_ select: String, _ f: AuditFilter, _ tail: String) -> PostgresQuery {
        let app = f.app.isEmpty ? nil : LikePattern.containing(f.app)
        let user = f.user.isEmpty ? nil : f.user
        let kind = f.kind.isEmpty ? nil : String(LikePattern.containing(f.kind + ".").dropFirst())   // `kind.` then anything
        return """
            \(unescaped: select) WHERE (\(app)::text IS NULL OR app_id ILIKE \(app) OR subject ILIKE \(app))
            AND (\(user)::text IS NULL OR "user" = \(user)) AND (\(kind)::text IS NULL OR action ILIKE \(kind)) \(unescaped: tail)
            """
    }

    public func auditPage(_ filter: AuditFilter, page: Int, perPage: Int) async throws -> Page<AuditRecord> {
        let total = Int(try await all(auditQuery("SELECT COUNT(*) FROM audit", filter, ""), as: Int64.self).first ?? 0)
        let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
        let items = try await auditRecords(auditQuery("SELECT \(Self.auditColumns) FROM audit", filter,
                                                      "ORDER BY id DESC LIMIT \(perPage) OFFSET \((page - 1) * perPage)"))
        return Page(items: items, total: total, page: page, perPage: perPage)
    }

    public func auditRows(_ filter: AuditFilter, limit: Int) async throws -> [AuditRecord] {
        try await auditRecords(auditQuery("SELECT \(Self.auditColumns) FROM audit", filter, "ORDER BY id DESC LIMIT \(limit)"))
    }

    public func auditChoices() async throws -> (users: [String], kinds: [String]) {
        let users = try await all(#"SELECT DISTINCT "user" FROM audit ORDER BY "user""#, as: String.self)
        let actions = try await all("SELECT DISTINCT action FROM audit", as: String.self)
        return (users, Array(Set(actions.map { String($0.prefix { $0 != "." }) })).sorted())
    }
}
