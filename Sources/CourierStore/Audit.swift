import CourierCore
import Crypto
import Foundation
import GRDB

/// One change, as the audit log keeps it. Rows are hash-chained: each `hash` is the SHA-256 of
/// the previous row's hash and this row's content, so a changed or deleted row breaks the chain.
public struct AuditRecord: Codable, FetchableRecord, MutablePersistableRecord, Sendable {
    public static let databaseTableName = "audit"
    public var id: Int64?
    /// ISO 8601 in UTC with milliseconds: text, so the hash is computed on exactly what is stored.
    public var at: String
    public var user: String
    public var action: String
    public var subject: String
    /// A JSON object summarizing what changed (never a secret).
    public var detail: String
    public var hash: String
    /// The app the change concerns, when it concerns one: the log filtered by app finds its tasks,
    /// approvals and rollbacks too. Written from the detail's `app`, which the hash covers, and
    /// checked against it by `verifyAudit`; rows older than this column were filled in from the
    /// tasks and subjects they name (their detail has no `app`).
    public var appId: String?

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let action = Column(CodingKeys.action)
        public static let user = Column(CodingKeys.user)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    static func chain(previous: String, at: String, user: String, action: String, subject: String, detail: String) -> String {
        let content = [previous, at, user, action, subject, detail].joined(separator: "\u{1F}")
        return SHA256.hash(data: Data(content.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

/// The outcome of checking the chain: the first row whose hash does not follow, or the first
/// row that is missing (ids run without gaps, and SQLite remembers the last one given out).
public struct AuditVerification: Sendable, Equatable {
    public let rows: Int
    public let firstBadRow: Int64?
    /// The bad row was deleted rather than changed.
    public let missing: Bool
    public var isValid: Bool { firstBadRow == nil }

    public init(rows: Int, firstBadRow: Int64?, missing: Bool = false) {
        self.rows = rows; self.firstBadRow = firstBadRow; self.missing = missing
    }

    /// In one sentence, for the page and the command line.
    public var summary: String {
        guard let row = firstBadRow else { return "The audit chain holds: \(rows) rows, each following the one before." }
        return missing ? "The audit chain is broken: row \(row) is missing (deleted)."
                       : "The audit chain is broken: row \(row) was changed after it was written."
    }
}

/// What the audit page shows: every field optional.
public struct AuditFilter: Sendable, Equatable {
    /// An app ID (part of one) that the change concerns or its subject mentions.
    public var app = ""
    public var user = ""
    /// The part of the action before the dot: app, package, task, whitelist, settings, …
    public var kind = ""
    public init(app: String = "", user: String = "", kind: String = "") { self.app = app; self.user = user; self.kind = kind }
}

extension Store {
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

    /// The newest entries first.
    public func auditEntries(limit: Int = 100) async throws -> [AuditRecord] {
        try await db.read { db in try AuditRecord.order(AuditRecord.Columns.id.desc).limit(limit).fetchAll(db) }
    }

    /// The entries about one subject, oldest first (a task's history).
    public func auditEntries(subject: String, actionPrefix: String) async throws -> [AuditRecord] {
        try await db.read { db in
            try AuditRecord.filter(Column("subject") == subject && Column("action").like(actionPrefix + "%"))
                .order(AuditRecord.Columns.id).fetchAll(db)
        }
    }

    /// Recomputes the chain from the first row, and looks for rows that are gone.
    /// The newest row's id and hash: the chain's head. Kept somewhere the database's writers
    /// cannot reach (a ticket, a mail, another machine), it lets `courier audit verify --head`
    /// tell a rewritten chain from an intact one: the chain alone only proves that rows follow
    /// one another, and whoever can write the database can recompute every later hash.
    public func auditHead() async throws -> (row: Int64, hash: String)? {
        try await db.read { db in
            try Row.fetchOne(db, sql: "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").map { ($0[0], $0[1]) }
        }
    }

    /// The hash stored for row `id`, if it exists.
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
                if let app = Self.detailApp(r.detail), r.appId != app { return AuditVerification(rows: count, firstBadRow: r.id) }
                previous = r.hash
                next += 1
            }
            // The last rows deleted: SQLite still remembers the highest id it gave out.
            let last = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'audit'") ?? 0
            if last >= next { return AuditVerification(rows: count, firstBadRow: next, missing: true) }
            return AuditVerification(rows: count, firstBadRow: nil)
        }
    }

    /// The `app` of a row's detail, when it names one.
    static func detailApp(_ detail: String) -> String? {
        guard detail.contains("\"app\""), let data = detail.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["app"] as? String
    }

    static func auditRequest(_ f: AuditFilter) -> QueryInterfaceRequest<AuditRecord> {
        var request = AuditRecord.all()
        let like = Store.containing
        if !f.app.isEmpty {
            request = request.filter(sql: "(appId LIKE ? ESCAPE '\\' OR subject LIKE ? ESCAPE '\\')", arguments: [like(f.app), like(f.app)])
        }
        if !f.user.isEmpty { request = request.filter(AuditRecord.Columns.user == f.user) }
        if !f.kind.isEmpty { request = request.filter(sql: "action LIKE ? ESCAPE '\\'", arguments: [like(f.kind + ".").dropFirst().description]) }
        return request.order(AuditRecord.Columns.id.desc)
    }

    /// One page of the log, newest first.
    public func auditPage(_ filter: AuditFilter, page: Int, perPage: Int = 50) async throws -> Page<AuditRecord> {
        try await db.read { db in
            let request = Self.auditRequest(filter)
            let total = try request.fetchCount(db)
            let page = max(1, min(page, max(1, (total + perPage - 1) / perPage)))
            return Page(items: try request.limit(perPage, offset: (page - 1) * perPage).fetchAll(db), total: total, page: page, perPage: perPage)
        }
    }

    /// Every matching row, newest first, at most `limit` (the CSV export).
    public func auditRows(_ filter: AuditFilter, limit: Int) async throws -> [AuditRecord] {
        try await db.read { db in try Self.auditRequest(filter).limit(limit).fetchAll(db) }
    }

    /// The users and kinds of change the log holds (the filters' choices).
    public func auditChoices() async throws -> (users: [String], kinds: [String]) {
        try await db.read { db in
            let users = try String.fetchAll(db, sql: "SELECT DISTINCT user FROM audit ORDER BY user")
            let actions = try String.fetchAll(db, sql: "SELECT DISTINCT action FROM audit")
            return (users, Array(Set(actions.map { String($0.prefix { $0 != "." }) })).sorted())
        }
    }
}

/// Who wants to know that apps, packages or settings changed (the delivery snapshot will).
public final class CatalogueChanges: @unchecked Sendable {
    private let lock = NSLock()
    private var listeners: [@Sendable () async -> Void] = []
    private var generation = 0

    public init() {}

    /// `listener` runs after each committed change, before the change's caller goes on (the
    /// delivery snapshot is rebuilt there, so a release counts from the very next request).
    /// A listener handles its own failures (logs them, counts them, says so on `/readyz`):
    /// nothing here could tell anyone.
    public func subscribe(_ listener: @escaping @Sendable () async -> Void) { lock.withLock { listeners.append(listener) } }

    /// How many changes have been announced: a cheap way for a reader to see it is stale.
    public var count: Int { lock.withLock { generation } }

    func announce() async {
        let current = lock.withLock { () -> [@Sendable () async -> Void] in
            generation += 1
            return listeners
        }
        for l in current { await l() }
    }
}
