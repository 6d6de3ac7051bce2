import CourierCore
import CourierStore
import Crypto
import Foundation
import GRDB

extension SQLiteStore {
    /// Appends the audit row of a change, inside the change's own transaction.
    func audit(_ db: Database, by actor: ActingUser, _ action: String, subject: String, detail: [String: String] = [:]) throws {
        let previous = try String.fetchOne(db, sql: "SELECT hash FROM audit ORDER BY id DESC LIMIT 1") ?? ""
        // The link names the last id given out (SQLite remembers it after the row is deleted):
        // a deleted tail leaves the next row pointing at a row that is not there.
        let previousId = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'audit'") ?? 0
        let data = try JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys, .withoutEscapingSlashes])
        let detailText = String(decoding: data, as: UTF8.self)
        let at = AuditRecord.timestamp.format(Date())
        let hash = AuditRecord.chain(previous: previous, at: at, user: actor.name, action: action, subject: subject, detail: detailText)
        try db.execute(sql: """
            INSERT INTO audit (at, user, action, subject, detail, hash, appId, previousId) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [at, actor.name, action, subject, detailText, hash, detail["app"], previousId])
    }

    public func auditEntries(limit: Int) async throws -> [AuditRecord] {
        try await db.read { db in try AuditRecord.order(AuditRecord.Columns.id.desc).limit(limit).fetchAll(db) }
    }

    public func auditEntries(subject: String, actionPrefix: String) async throws -> [AuditRecord] {
        try await db.read { db in
            try AuditRecord.filter(Column("subject") == subject && Column("action").like(actionPrefix + "%"))
                .order(AuditRecord.Columns.id).fetchAll(db)
        }
    }

    public func auditHead() async throws -> (row: Int64, hash: String)? {
        try await db.read { db in
            try Row.fetchOne(db, sql: "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").map { ($0[0], $0[1]) }
        }
    }

    public func auditHash(row id: Int64) async throws -> String? {
        try await db.read { db in try String.fetchOne(db, sql: "SELECT hash FROM audit WHERE id = ?", arguments: [id]) }
    }

    public func verifyAudit() async throws -> AuditVerification {
        try await db.read { db in
            var previous = "", previousId: Int64 = 0, count = 0
            let rows = try Row.fetchCursor(db, sql: "SELECT id, at, user, action, subject, detail, hash, appId, previousId FROM audit ORDER BY id")
            while let row = try rows.next() {
                let r = AuditRecord(id: row[0], at: row[1], user: row[2], action: row[3], subject: row[4], detail: row[5], hash: row[6],
                                    appId: row[7])
                let id: Int64 = row[0]
                count += 1
                // Each row names the one before it (rows from before v17: the id before its own),
                // so a gap a rolled-back append left (a backup from PostgreSQL has them) is
                // no deleted row, and a link to a row that is not there is.
                let link: Int64 = row[8] ?? id - 1
                guard link == previousId else { return AuditVerification(rows: count, firstBadRow: link, missing: true) }
                let expected = AuditRecord.chain(previous: previous, at: r.at, user: r.user, action: r.action,
                                                 subject: r.subject, detail: r.detail)
                guard expected == r.hash else { return AuditVerification(rows: count, firstBadRow: r.id) }
                // The app column is outside the hash: it must say what the (hashed) detail says.
                if let app = AuditRecord.detailApp(r.detail), r.appId != app { return AuditVerification(rows: count, firstBadRow: r.id) }
                previous = r.hash
                previousId = id
            }
            // The last rows deleted: SQLite still remembers the highest id it gave out.
            let last = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'audit'") ?? 0
            if last > previousId { return AuditVerification(rows: count, firstBadRow: previousId + 1, missing: true) }
            return AuditVerification(rows: count, firstBadRow: nil)
        }
    }

    static func auditRequest(_ f: AuditFilter) -> QueryInterfaceRequest<AuditRecord> {
        var request = AuditRecord.all()
        let like = LikePattern.containing
        if !f.app.isEmpty {
            request = request.filter(sql: "(appId LIKE ? ESCAPE '\\' OR subject LIKE ? ESCAPE '\\')", arguments: [like(f.app), like(f.app)])
        }
        if !f.user.isEmpty { request = request.filter(AuditRecord.Columns.user == f.user) }
        if !f.kind.isEmpty { request = request.filter(sql: "action LIKE ? ESCAPE '\\'", arguments: [like(f.kind + ".").dropFirst().description]) }
        return request.order(AuditRecord.Columns.id.desc)
    }

    public func auditPage(_ filter: AuditFilter, page: Int, perPage: Int) async throws -> Page<AuditRecord> {
        try await db.read { db in
            let request = Self.auditRequest(filter)
            let total = try request.fetchCount(db)
            let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
            return Page(items: try request.limit(perPage, offset: (page - 1) * perPage).fetchAll(db), total: total, page: page, perPage: perPage)
        }
    }

    public func auditRows(_ filter: AuditFilter, limit: Int) async throws -> [AuditRecord] {
        try await db.read { db in try Self.auditRequest(filter).limit(limit).fetchAll(db) }
    }

    public func auditChoices() async throws -> (users: [String], kinds: [String]) {
        try await db.read { db in
            let users = try String.fetchAll(db, sql: "SELECT DISTINCT user FROM audit ORDER BY user")
            let actions = try String.fetchAll(db, sql: "SELECT DISTINCT action FROM audit")
            return (users, Array(Set(actions.map { String($0.prefix { $0 != "." }) })).sorted())
        }
    }
}
