import CourierCore
import CourierStore
import Foundation
import GRDB


extension SQLiteStore {
    /// The settings' approval rules, read strictly (a settings row that cannot be read refuses the write).
    static func approvalRules(_ db: Database) throws -> ApprovalRules {
        let s = try SettingsRecord.read(db)
        return ApprovalRules(official: s.officialNeedsApproval, gray: s.grayNeedsApproval)
    }

    static func registerApprovalMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v7-approval") { db in
            try db.alter(table: "settings") { t in
                t.add(column: "officialNeedsApproval", .boolean).notNull().defaults(to: false)
                t.add(column: "grayNeedsApproval", .boolean).notNull().defaults(to: false)
            }
            try db.alter(table: "task") { t in
                t.add(column: "approval", .text).notNull().defaults(to: "")
                t.add(column: "approvalFor", .text).notNull().defaults(to: "")
                t.add(column: "requestedBy", .text)
                t.add(column: "requestedAt", .datetime)
                t.add(column: "decidedBy", .text)
                t.add(column: "decidedAt", .datetime)
                t.add(column: "decisionComment", .text).notNull().defaults(to: "")
            }
            try db.create(index: "taskApproval", on: "task", columns: ["approval"])
        }
    }

    public func setUpdateReqRate(_ seconds: Int, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.updateReqRate", subject: "settings") { db in
            var s = try SettingsRecord.read(db)
            let before = s.updateReqRate
            s.updateReqRate = seconds
            try s.save(db)
            return (s, ["before": String(before), "after": String(seconds)])
        }
    }

    public func setApprovalRules(official: Bool, gray: Bool, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.approval", subject: "settings") { db in
            var s = try SettingsRecord.read(db)
            let before = "official=\(s.officialNeedsApproval) gray=\(s.grayNeedsApproval)"
            s.officialNeedsApproval = official
            s.grayNeedsApproval = gray
            try s.save(db)
            return (s, ["before": before, "after": "official=\(official) gray=\(gray)"])
        }
    }

    public func decide(task id: Int64, approve: Bool, comment: String, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, approve ? "task.approve" : "task.reject", subject: String(id)) { db in
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            let detail = try t.decide(approve: approve, comment: comment, from: try t.state(db), by: actor)
            try SQLiteStore.dropAdmissionsUnlessOpenWindow(db, &t)
            try t.update(db)
            try SQLiteStore.refreshPackageStatus(db, t.packageId)
            return (t, detail)
        }
    }

    public func countAwaitingApproval() async throws -> Int {
        try await db.read { db in try TaskRecord.filter(TaskRecord.Columns.approval == ApprovalState.awaiting.rawValue).fetchCount(db) }
    }

    public func recentlyDecided(limit: Int) async throws -> [TaskRecord] {
        try await db.read { db in
            try TaskRecord.filter(ApprovalState.decided.map(\.rawValue).contains(TaskRecord.Columns.approval))
                .order(sql: "COALESCE(decidedAt, requestedAt) DESC, id DESC").limit(limit).fetchAll(db)
        }
    }

    public func tasksAwaitingApproval() async throws -> [TaskRecord] {
        try await db.read { db in
            try TaskRecord.filter(TaskRecord.Columns.approval == ApprovalState.awaiting.rawValue).order(Column("requestedAt"), TaskRecord.Columns.id).fetchAll(db)
        }
    }
}
