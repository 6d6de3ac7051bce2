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

/// The outcome of checking the chain: the first row whose hash does not follow, if any.
public struct AuditVerification: Sendable, Equatable {
    public let rows: Int
    public let firstBadRow: Int64?
    public var isValid: Bool { firstBadRow == nil }
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
                                                      subject: subject, detail: detailText))
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

    /// Recomputes the chain from the first row.
    public func verifyAudit() async throws -> AuditVerification {
        try await db.read { db in
            var previous = ""
            var count = 0
            let rows = try AuditRecord.order(AuditRecord.Columns.id).fetchCursor(db)
            while let r = try rows.next() {
                count += 1
                let expected = AuditRecord.chain(previous: previous, at: r.at, user: r.user, action: r.action,
                                                 subject: r.subject, detail: r.detail)
                guard expected == r.hash else { return AuditVerification(rows: count, firstBadRow: r.id) }
                previous = r.hash
            }
            return AuditVerification(rows: count, firstBadRow: nil)
        }
    }
}

/// Who wants to know that apps, packages or settings changed (the delivery snapshot will).
public final class CatalogueChanges: @unchecked Sendable {
    private let lock = NSLock()
    private var listeners: [@Sendable () async throws -> Void] = []
    private var generation = 0

    public init() {}

    /// `listener` runs after each committed change, before the change's caller goes on (the
    /// delivery snapshot is rebuilt there, so a release counts from the very next request).
    public func subscribe(_ listener: @escaping @Sendable () async throws -> Void) { lock.withLock { listeners.append(listener) } }

    /// How many changes have been announced: a cheap way for a reader to see it is stale.
    public var count: Int { lock.withLock { generation } }

    func announce() async {
        let current = lock.withLock { () -> [@Sendable () async throws -> Void] in
            generation += 1
            return listeners
        }
        for l in current { try? await l() }
    }
}
