import CourierCore
import CourierStore
import Foundation
import GRDB

// The records are plain values (CourierStore); this is how SQLite stores them.

/// A record whose `id` SQLite gives it on insertion.
protocol RowIDRecord: MutablePersistableRecord {
    var id: Int64? { get set }
}

extension RowIDRecord {
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

extension WhitelistRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "whitelist"
    public enum Columns {
        public static let name = Column("name")
    }
}

extension TaskRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "task"
    public enum Columns {
        public static let id = Column("id")
        public static let packageId = Column("packageId")
        public static let appId = Column("appId")
        public static let status = Column("status")
        public static let approval = Column("approval")
    }
}

extension SettingsRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "settings"
}

extension UserRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "user"
    public enum Columns {
        public static let name = Column("name")
    }
}

extension SessionRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "session"
}

extension APITokenRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "apiToken"
    public enum Columns {
        public static let id = Column("id")
        public static let userId = Column("userId")
        public static let tokenHash = Column("tokenHash")
    }
}

extension AppRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "app"
}

extension PackageRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "package"
    public enum Columns {
        public static let id = Column("id")
        public static let appId = Column("appId")
        public static let version = Column("version")
        public static let versionKey = Column("versionKey")
        public static let type = Column("type")
        public static let blob = Column("blob")
    }
}

extension PackageFileRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "packageFile"
    public enum Columns {
        public static let packageId = Column("packageId")
        public static let path = Column("path")
    }
}

extension AuditRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "audit"
    public enum Columns {
        public static let id = Column("id")
        public static let action = Column("action")
        public static let user = Column("user")
    }
}

extension ImportRecord: FetchableRecord, RowIDRecord {
    public static let databaseTableName = "batchImport"
}

extension ImportRowRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "batchImportRow"
}

extension PatchRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "patch"
}

extension AppSummary: FetchableRecord {
}

extension SettingsRecord {
    /// The settings row, read strictly: SQLite keeps whatever a column is given, and a value of
    /// another type reads as 0 or empty (approval off, checks without pause). Such a row is
    /// refused, never guessed at, by every reader: the delivery snapshot then offers nothing, and
    /// a change that needs the settings (an approval rule) is refused.
    public static func read(_ db: Database) throws -> SettingsRecord {
        if let row = try Row.fetchOne(db, sql: """
            SELECT typeof(officialNeedsApproval) = 'integer' AND officialNeedsApproval IN (0, 1)
               AND typeof(grayNeedsApproval) = 'integer' AND grayNeedsApproval IN (0, 1)
               AND typeof(updateReqRate) = 'integer' AND updateReqRate BETWEEN ? AND ?
               AND typeof(virtualDomain) IN ('text', 'null') AND typeof(globalHost) IN ('text', 'null')
               AND typeof(appKey) IN ('text', 'null') AND typeof(signingKeyPEM) IN ('text', 'null')
            FROM settings WHERE id = 1
            """, arguments: [updateReqRateRange.lowerBound, updateReqRateRange.upperBound]),
           row[0] as Bool? != true {
            throw ServerFault("The stored settings cannot be read (a value of the wrong type or out of range): no release is offered until the settings row is fixed or a backup restored.")
        }
        return try fetchOne(db, key: 1) ?? SettingsRecord()
    }
}

extension UserRecord {
    /// Read strictly: a role this binary does not know is refused, and `disabled` is false only
    /// when it is stored as 0 (a value of another type would read as false: enabled).
    public init(row: Row) throws {
        guard let role = Role(rawValue: row["role"] as String? ?? "") else { throw ServerFault("A user's stored role cannot be read.") }
        self.init(name: row["name"], passwordHash: row["passwordHash"], role: role)
        id = row["id"]
        createdAt = row["createdAt"]
        if case .int64(0) = (row["disabled"] as DatabaseValue).storage { disabled = false } else { disabled = true }
    }
}

extension TaskRecord {
    /// SQL: the task ended without ever releasing (`neverReleased` and ended), for ordering.
    static let endedUnreleasedSQL = "(approvalFor = 'release' AND approval != 'approved' AND status IN ('finished', 'rejected'))"

    /// The same, counting the whitelists it names, as a write must.
    func state(_ db: Database) throws -> TaskState {
        var s = state
        s.unreadable = try unreadable(db)
        return s
    }

    /// The same, counting the whitelists it names (missing, of an unknown kind, or holding an
    /// expression this binary refuses), as the delivery snapshot does: for the writes that
    /// would otherwise act on what cannot be read.
    func unreadable(_ db: Database) throws -> String? {
        if let why = unreadable { return why }
        guard taskType == .gray, modeName == .whitelist else { return nil }
        for id in whitelistIdList {
            guard let w = try WhitelistRecord.fetchOne(db, key: id) else { return "whitelist \(id) is missing" }
            guard let kind = Whitelist.Kind(rawValue: w.kind) else { return "whitelist \(id): unknown kind “\(w.kind)”" }
            guard kind == .regex else { continue }   // ID lists: the kind is all there is to read
            let values = Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [id]))
            do { _ = try Whitelist(id: id, name: w.name, kind: kind, values: values) } catch { return "whitelist \(id): \(error.message)" }
        }
        return nil
    }
}
