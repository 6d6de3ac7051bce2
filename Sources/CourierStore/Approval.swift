import CourierCore
import Foundation
import GRDB

/// Reviewer approval (SPEC §7): settings say which releases wait; a reviewer who did not ask
/// for a release approves or rejects it, with a comment.
extension TaskRecord {
    /// Marks the task as waiting for a reviewer: the task itself (`release`: it is not offered
    /// to clients until approved), a wider share of an approved task (`widening`: not offered
    /// either until approved; rejected, it ends) or its promotion to official (the grayscale
    /// release goes on).
    mutating func requestApproval(for subject: ApprovalSubject, by actor: ActingUser) {
        var s = state
        s.requestApproval(subject)
        apply(s)
        requestedBy = actor.name
        requestedAt = Date()
        decidedBy = nil
        decidedAt = nil
        decisionComment = ""
    }

    /// A task that asked for approval of its own release and did not get it (waiting, rejected,
    /// or withdrawn): it never reached a client, and clients never see it.
    public var neverReleased: Bool { approvalSubject == .release && approvalState != .approved }

    /// Who may not decide on this task: whoever created it and whoever asked for the approval.
    public func isOwnRequest(of name: String) -> Bool { name == createdBy || name == requestedBy }
}

extension Store {
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

    /// How often devices may check for updates (`config.updateReqRate` in every answer).
    public func setUpdateReqRate(_ seconds: Int, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.updateReqRate", subject: "settings") { db in
            var s = try SettingsRecord.read(db)
            let before = s.updateReqRate
            s.updateReqRate = seconds
            try s.save(db)
            return (s, ["before": String(before), "after": String(seconds)])
        }
    }

    /// Which releases wait for a reviewer. Tasks already waiting keep waiting.
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

    /// Approves or rejects what a task waits for. Checked in the deciding transaction: it
    /// still waits, and the reviewer is neither its creator nor the one who asked.
    public func decide(task id: Int64, approve: Bool, comment: String, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, approve ? "task.approve" : "task.reject", subject: String(id)) { db in
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            let op: TaskOperation = approve ? .approve : .reject
            let before = try t.state(db)
            switch before.refusal(op, ownRequest: t.isOwnRequest(of: actor.name)) {
            case nil: break
            case .person(let why)?: throw Refused("Task \(id): \(why)")
            case .state(let why)?: throw Conflict("Task \(id): \(why)")
            }
            t.apply(before.after(op))
            t.decidedBy = actor.name
            t.decidedAt = Date()
            t.decisionComment = comment
            try Store.dropAdmissionsUnlessOpenWindow(db, &t)
            try t.update(db)
            try Store.refreshPackageStatus(db, t.packageId)
            return (t, ["for": t.approvalFor, "requestedBy": t.requestedBy ?? "", "comment": comment, "status": t.status,
                        "app": t.appId, "version": t.version])
        }
    }

    /// How many tasks wait for a reviewer (the navigation's badge).
    public func countAwaitingApproval() async throws -> Int {
        try await db.read { db in try TaskRecord.filter(TaskRecord.Columns.approval == ApprovalState.awaiting.rawValue).fetchCount(db) }
    }

    /// The latest decisions (approved, rejected, withdrawn), newest first.
    public func recentlyDecided(limit: Int) async throws -> [TaskRecord] {
        try await db.read { db in
            try TaskRecord.filter(ApprovalState.decided.map(\.rawValue).contains(TaskRecord.Columns.approval))
                .order(sql: "COALESCE(decidedAt, requestedAt) DESC, id DESC").limit(limit).fetchAll(db)
        }
    }

    /// Tasks waiting for a reviewer, oldest request first.
    public func tasksAwaitingApproval() async throws -> [TaskRecord] {
        try await db.read { db in
            try TaskRecord.filter(TaskRecord.Columns.approval == ApprovalState.awaiting.rawValue).order(Column("requestedAt"), TaskRecord.Columns.id).fetchAll(db)
        }
    }
}
