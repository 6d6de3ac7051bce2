import CourierCore
import Crypto
import Foundation


/// One change, as the audit log keeps it. Rows are hash-chained: each `hash` is the SHA-256 of
/// the previous row's hash and this row's content, so a changed or deleted row breaks the chain.
public struct AuditRecord: Codable, Sendable {
    public init(id: Int64?, at: String, user: String, action: String, subject: String, detail: String, hash: String, appId: String?) {
        self.id = id; self.at = at; self.user = user; self.action = action; self.subject = subject; self.detail = detail
        self.hash = hash; self.appId = appId
    }
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


    package static func chain(previous: String, at: String, user: String, action: String, subject: String, detail: String) -> String {
        let content = [previous, at, user, action, subject, detail].joined(separator: "\u{1F}")
        return SHA256.hash(data: Data(content.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    package static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The `app` of a row's detail, when it names one.
    package static func detailApp(_ detail: String) -> String? {
        guard detail.contains("\"app\""), let data = detail.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["app"] as? String
    }
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

    package func announce() async {
        let current = lock.withLock { () -> [@Sendable () async -> Void] in
            generation += 1
            return listeners
        }
        for l in current { await l() }
    }
}
