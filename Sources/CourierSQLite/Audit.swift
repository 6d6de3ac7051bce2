import CourierCore
import CourierStore
import Crypto
import Foundation
import GRDB

extension SQLiteStore {
    /// Appends the audit row of a change, inside the change's own transaction.
    func audit(_ db: Database, by actor: ActingUser, _ action: String, subject: String, detail: [String: String] = [:]) throws {
        let previous = try String.fetchOne(db, sql: "SELECT hash FROM audit ORDER BY id DESC LIMIT 1") ?? ""
        let data = try JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys, .withoutEscapingSlashes])
        let detailText = String(decoding: data, as: UTF8.self)
        let at = AuditRecord.timestamp.format(Date())
        var row = AuditRecord(id: nil, at: at, user: actor.name, action: action, subject: subject, detail: detailText,
                              hash: AuditRecord.chain(previous: previous, at: at, user: actor.name, action: action,
                                                      subject: subject, detail: detailText),
                              appId: detail["app"])
        try row.insert(db)
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
            var previous = ""
            var count = 0
            var next: Int64 = 1
            let rows = try AuditRecord.order(AuditRecord.Columns.id).fetchCursor(db)
            while let r = try rows.next() {
                count += 1
                guard r.id == next else { return AuditVerification(rows: count, firstBadRow: next, missing: true) }
                let expected = AuditRecord.chain(previous: previous, at: r.at, user: r.user, action: r.action,
                                                 subject: r.subject, detail: r.detail)
                guard expected == r.hash else { return AuditVerification(rows: count, firstBadRow: r.id) }
                // The app column is outside the hash: it must say what the (hashed) detail says.
                if let app = AuditRecord.detailApp(r.detail), r.appId != app { return AuditVerification(rows: count, firstBadRow: r.id) }
                previous = r.hash
                next += 1
            }
            // The last rows deleted: SQLite still remembers the highest id it gave out.
            let last = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'audit'") ?? 0
            if last >= next { return AuditVerification(rows: count, firstBadRow: next, missing: true) }
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
