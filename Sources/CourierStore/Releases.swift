import CourierCore
import Crypto
import Foundation
import GRDB

/// A whitelist's name and kind; its values are rows of `whitelistValue`.
public struct WhitelistRecord: Codable, FetchableRecord, MutablePersistableRecord, Sendable {
    public static let databaseTableName = "whitelist"
    public var id: Int64?
    public var name: String
    public var kind: String
    public var createdAt = Date()
    /// Raised whenever values are added or removed: the delivery snapshot reloads only the
    /// lists whose revision moved (a list may hold 100,000 values).
    public var revision = 0
    public enum Columns {
        public static let name = Column(CodingKeys.name)
    }
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A release task as stored; `releaseTask` gives the value the decision reads.
public struct TaskRecord: Codable, FetchableRecord, MutablePersistableRecord, Sendable {
    public static let databaseTableName = "task"
    public var id: Int64?
    public var packageId: Int64
    public var appId: String
    public var version: String
    /// `official` or `gray`.
    public var type: String
    /// `whitelist`, `timeWindow`, `percentage`, or empty for official tasks.
    public var mode = ""
    public var whitelistIds = "[]"
    public var endTime: Date?
    public var userCount: Int?
    /// How many devices a time window admitted, kept when it finished (its devices are dropped).
    public var admittedCount: Int?
    public var percentage: Double?
    /// JSON: `[{"field","op","values"}]`.
    public var rules = "[]"
    public var descriptionMarkdown = ""
    public var status = ReleaseTask.Status.releasing.rawValue
    public var rolledBack = false
    public var createdBy: String
    public var createdAt = Date()
    /// The reviewer's part (SPEC §7): `awaiting`, `approved`, `rejected`, `withdrawn`, or empty
    /// when no approval was asked for.
    public var approval = ""
    /// What awaits or awaited approval: `release` (the task itself) or `promotion` (to official).
    public var approvalFor = ""
    public var requestedBy: String?
    public var requestedAt: Date?
    public var decidedBy: String?
    public var decidedAt: Date?
    /// The reviewer's comment, Markdown.
    public var decisionComment = ""

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let packageId = Column(CodingKeys.packageId)
        public static let appId = Column(CodingKeys.appId)
        public static let status = Column(CodingKeys.status)
        public static let approval = Column(CodingKeys.approval)
    }
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    struct StoredRule: Codable { let field: String; let op: String; let values: [String] }

    /// Records a checked task for `package`.
    public init(package: PackageRecord, kind: ReleaseTask.Kind, description: String, createdBy: String) {
        packageId = package.id ?? 0
        appId = package.appId
        version = package.version
        self.descriptionMarkdown = description
        self.createdBy = createdBy
        type = TaskType.official.rawValue
        apply(kind)
    }

    /// Writes `kind` into the columns (creating, promoting).
    public mutating func apply(_ kind: ReleaseTask.Kind) {
        switch kind {
        case .official:
            type = TaskType.official.rawValue; mode = ""; whitelistIds = "[]"; endTime = nil; userCount = nil; percentage = nil; rules = "[]"
        case .gray(let m, let r):
            type = TaskType.gray.rawValue
            switch m {
            case .whitelist(let ids): mode = ModeName.whitelist.rawValue; whitelistIds = Self.json(ids)
            case .timeWindow(let end, let count): mode = ModeName.timeWindow.rawValue; endTime = end; userCount = count
            case .percentage(let p): mode = ModeName.percentage.rawValue; percentage = p
            }
            rules = Self.json(r.map { StoredRule(field: $0.field.rawValue, op: $0.op.rawValue, values: $0.values) })
        }
    }

    static func json<T: Encodable>(_ value: T) -> String {
        String(decoding: (try? JSONEncoder().encode(value)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// The whitelists named, for finding a list's users; empty when they cannot be read.
    public var whitelistIdList: [Int64] { (try? JSONDecoder().decode([Int64].self, from: Data(whitelistIds.utf8))) ?? [] }

    /// The rules that can be read, for showing; the decision reads `storedKind()`, which
    /// refuses the whole task when one cannot be.
    public var targetingRules: [TargetingRule] {
        let stored = (try? JSONDecoder().decode([StoredRule].self, from: Data(rules.utf8))) ?? []
        return stored.compactMap { r in
            guard let f = TargetingRule.Field(rawValue: r.field), let o = TargetingRule.Operator(rawValue: r.op) else { return nil }
            return try? TargetingRule(field: f, op: o, values: r.values)
        }
    }

    public var taskStatus: ReleaseTask.Status { ReleaseTask.Status(rawValue: status) ?? .finished }
    /// The stored strings, typed. A value this binary does not know makes the task unreadable
    /// (`storedKind()`); until then these read it as the narrowest thing it could be.
    public var taskType: TaskType { TaskType(rawValue: type) ?? .gray }
    public var isOfficial: Bool { taskType == .official }
    public var modeName: ModeName? { ModeName(rawValue: mode) }
    public var approvalState: ApprovalState { ApprovalState(rawValue: approval) ?? .none }
    public var approvalSubject: ApprovalSubject { ApprovalSubject(rawValue: approvalFor) ?? .none }

    /// Where the task stands in its life (`TaskState`), without its whitelists.
    public var state: TaskState {
        TaskState(type: taskType, mode: modeName, status: taskStatus, rolledBack: rolledBack, approval: approvalState,
                  approvalFor: approvalSubject, unreadable: unreadable)
    }

    /// The same, counting the whitelists it names, as a write must.
    func state(_ db: Database) throws -> TaskState {
        var s = state
        s.unreadable = try unreadable(db)
        return s
    }

    /// Writes a state the machine gave (after an operation or a decision) into the columns.
    mutating func apply(_ s: TaskState) {
        if s.type == .official, type != TaskType.official.rawValue { apply(.official) }
        status = s.status.rawValue
        rolledBack = s.rolledBack
        approval = s.approval.rawValue
        approvalFor = s.approvalFor.rawValue
    }

    /// Why this binary cannot read the stored task (SPEC: refuse what cannot be understood), or nil.
    public struct Unreadable: Error, Sendable, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The task as stored, read strictly: a status, type, mode, list or rule this binary does
    /// not know is refused rather than guessed or dropped (a dropped city rule, or an unknown
    /// type read as official, would release to everyone).
    public func storedKind() throws(Unreadable) -> ReleaseTask.Kind {
        guard ReleaseTask.Status(rawValue: status) != nil else { throw Unreadable("unknown status “\(status)”") }
        guard (try? PackageVersion(validating: version)) != nil else { throw Unreadable("version “\(version)” is not a package version") }
        guard ApprovalState(rawValue: approval) != nil, ApprovalSubject(rawValue: approvalFor) != nil else {
            throw Unreadable("unknown approval state “\(approval.prefix(20)) \(approvalFor.prefix(20))”")
        }
        switch TaskType(rawValue: type) {
        case .official:
            // An official task has no grayscale settings: one that does was written by something else.
            guard mode.isEmpty, rules == "[]" || rules.isEmpty, whitelistIds == "[]" || whitelistIds.isEmpty, percentage == nil, endTime == nil,
                  userCount == nil else {
                throw Unreadable("an official task with grayscale settings (mode “\(mode.prefix(20))”, rules, lists or a share)")
            }
            return .official
        case .gray: break
        case nil: throw Unreadable("unknown task type “\(type)”")
        }
        let m: ReleaseTask.Mode
        switch ModeName(rawValue: mode) {
        case .whitelist:
            guard let ids = try? JSONDecoder().decode([Int64].self, from: Data(whitelistIds.utf8)), !ids.isEmpty else {
                throw Unreadable("its whitelists “\(whitelistIds.prefix(100))” cannot be read")
            }
            m = .whitelist(ids)
        case .timeWindow:
            guard let endTime, let userCount, userCount > 0 else { throw Unreadable("its time window has no end time or device count") }
            // Counts above today's maximum (older tasks allowed 10 M) are held to it: narrower, never wider.
            m = .timeWindow(end: endTime, userCount: min(userCount, TaskDraft.maxWindowDevices))
        case .percentage:
            guard let percentage, percentage.isFinite, percentage > 0, percentage <= 100 else {
                throw Unreadable("its percentage \(percentage.map { String($0) } ?? "(none)") is not between 0.01 and 100")
            }
            m = .percentage(percentage)
        case nil: throw Unreadable("unknown grayscale mode “\(mode)”")
        }
        guard let stored = try? JSONDecoder().decode([StoredRule].self, from: Data(rules.utf8)) else {
            throw Unreadable("its rules “\(rules.prefix(100))” cannot be read")
        }
        var read: [TargetingRule] = []
        for r in stored {
            guard let f = TargetingRule.Field(rawValue: r.field), let o = TargetingRule.Operator(rawValue: r.op) else {
                throw Unreadable("a rule “\(r.field) \(r.op)” that this version of Courier does not know")
            }
            do { read.append(try TargetingRule(field: f, op: o, values: r.values)) } catch {
                throw Unreadable("its \(f.label) rule cannot be read: \(error.message)")
            }
        }
        return .gray(m, rules: read)
    }

    /// Why the task cannot be read, or nil.
    public var unreadable: String? {
        do { _ = try storedKind(); return nil } catch { return error.description }
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

    public var releaseTask: ReleaseTask {
        let v = PackageVersion(parts: version.split(separator: ".").compactMap { Int($0) })
        do {
            return ReleaseTask(id: id ?? 0, appId: appId, version: v, kind: try storedKind(), status: taskStatus, rolledBack: rolledBack)
        } catch {
            return ReleaseTask(id: id ?? 0, appId: appId, version: v, unreadable: error.description)
        }
    }

    /// The package status this task gives (SPEC §5).
    public var packageStatus: PackageStatus {
        switch taskStatus {
        case .paused: .paused
        case .finished: neverReleased ? .toBeReleased : .finished
        case .releasing: isOfficial ? .officialReleasing : .grayReleasing
        case .awaitingApproval: .awaitingApproval
        case .rejected: .rejected
        }
    }
}

extension Store {
    static func registerReleaseMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v3-releases") { db in
            try db.create(table: "whitelist") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("kind", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "whitelistValue") { t in
                t.column("whitelistId", .integer).notNull().references("whitelist", onDelete: .cascade)
                t.column("value", .text).notNull()
                t.primaryKey(["whitelistId", "value"])
            }
            try db.create(table: "task") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("packageId", .integer).notNull().references("package", onDelete: .restrict)
                t.column("appId", .text).notNull()
                t.column("version", .text).notNull()
                t.column("type", .text).notNull()
                t.column("mode", .text).notNull()
                t.column("whitelistIds", .text).notNull()
                t.column("endTime", .datetime)
                t.column("userCount", .integer)
                t.column("percentage", .double)
                t.column("rules", .text).notNull()
                t.column("descriptionMarkdown", .text).notNull()
                t.column("status", .text).notNull()
                t.column("rolledBack", .boolean).notNull()
                t.column("createdBy", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(index: "taskByApp", on: "task", columns: ["appId"])
            try db.create(table: "admission") { t in
                t.column("taskId", .integer).notNull().references("task", onDelete: .cascade)
                t.column("deviceId", .text).notNull()
                t.primaryKey(["taskId", "deviceId"])
            }
            try db.create(table: "taskEvent") { t in
                t.column("taskId", .integer).notNull().references("task", onDelete: .cascade)
                t.column("event", .text).notNull()
                t.column("count", .integer).notNull()
                t.primaryKey(["taskId", "event"])
            }
        }
        m.registerMigration("v4-whitelist-revision") { db in
            try db.alter(table: "whitelist") { t in t.add(column: "revision", .integer).notNull().defaults(to: 0) }
        }
    }

    // MARK: Whitelists

    /// Refuses expression lists that together would cost more to match than one request may
    /// (`Whitelist.maxTotalMatchCost`): `list` (its values `values`) counted with every other.
    static func checkMatchCost(_ db: Database, list id: Int64?, kind: Whitelist.Kind, values: Set<String>) throws {
        guard kind == .regex else { return }
        let mine = (try? Whitelist(id: id ?? 0, name: "", kind: .regex, values: values))?.matchCost ?? 0
        var others = 0
        for w in try WhitelistRecord.filter(Column("kind") == Whitelist.Kind.regex.rawValue).fetchAll(db) where w.id != id {
            let stored = Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [w.id]))
            others += (try? Whitelist(id: w.id ?? 0, name: w.name, kind: .regex, values: stored))?.matchCost ?? 0
        }
        guard mine + others <= Whitelist.maxTotalMatchCost else {
            throw FieldError("values", "These expressions are too costly to match: every expression whitelist together may compile to "
                             + "\(Whitelist.maxTotalMatchCost) steps per character, and with this one they would take \(mine + others) "
                             + "(this list \(mine)). Use simpler expressions (no large counted repeats like {0,100}) or fewer of them.")
        }
    }

    public func createWhitelist(name: String, kind: Whitelist.Kind, values: Set<String>, by actor: ActingUser) async throws -> WhitelistRecord {
        try await change(by: actor, "whitelist.create", subject: name) { db in
            if try WhitelistRecord.filter(WhitelistRecord.Columns.name == name).fetchOne(db) != nil {
                throw Conflict("A whitelist named \(name) already exists.", field: "name")
            }
            try Self.checkMatchCost(db, list: nil, kind: kind, values: values)
            var w = WhitelistRecord(id: nil, name: name, kind: kind.rawValue)
            try w.insert(db)
            for v in values { try db.execute(sql: "INSERT INTO whitelistValue (whitelistId, value) VALUES (?, ?)", arguments: [w.id, v]) }
            return (w, ["kind": kind.rawValue, "values": String(values.count)])
        }
    }

    /// Adds values (duplicates dropped); answers how many were new, and the approved tasks on
    /// the list that now wait for a reviewer again. `check` sees the resulting set first (a
    /// regex list compiles it) and may refuse.
    public func addWhitelistValues(_ id: Int64, _ values: Set<String>, by actor: ActingUser,
                                   check: @escaping @Sendable (WhitelistRecord, Set<String>) throws -> Void) async throws
        -> (added: Int, awaitingApproval: [Int64]) {
        try await change(by: actor, "whitelist.addValues", subject: String(id)) { db in
            guard let w = try WhitelistRecord.fetchOne(db, key: id) else { throw NotFound("There is no whitelist \(id).") }
            let existing = Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [id]))
            let added = values.subtracting(existing)
            try check(w, existing.union(values))
            if let kind = Whitelist.Kind(rawValue: w.kind) { try Self.checkMatchCost(db, list: id, kind: kind, values: existing.union(values)) }
            for v in added { try db.execute(sql: "INSERT INTO whitelistValue (whitelistId, value) VALUES (?, ?)", arguments: [id, v]) }
            var detail = ["added": String(added.count)]
            if !added.isEmpty {
                try db.execute(sql: "UPDATE whitelist SET revision = revision + 1 WHERE id = ?", arguments: [id])
                // Approved tasks on this list now reach people the reviewer did not see: they wait again.
                var waiting: [Int64] = []
                for var t in try TaskRecord.filter(!ReleaseTask.Status.ended.contains(TaskRecord.Columns.status)).fetchAll(db)
                where t.whitelistIdList.contains(id) {
                    guard t.state.wideningNeedsReviewer(try Store.approvalRules(db)) else { continue }
                    // While a reviewer looks at a task on this list (its release, a widening or a
                    // promotion), the list must not grow under their eyes: an approval given on a
                    // page read before would cover people the reviewer never saw.
                    if t.approvalState == .awaiting {
                        throw Conflict("Task \(t.id ?? 0) uses this whitelist and waits for a reviewer: add values after they decide.",
                                       field: "values")
                    }
                    t.requestApproval(for: .widening, by: actor)
                    try t.update(db)
                    try Store.refreshPackageStatus(db, t.packageId)
                    waiting.append(t.id ?? 0)
                }
                if !waiting.isEmpty { detail["awaitingApproval"] = waiting.map(String.init).joined(separator: ",") }
                return ((added.count, waiting), detail)
            }
            return ((added.count, []), detail)
        }
    }

    /// Removes values; answers how many were there.
    public func removeWhitelistValues(_ id: Int64, _ values: Set<String>, by actor: ActingUser) async throws -> Int {
        try await change(by: actor, "whitelist.removeValues", subject: String(id)) { db in
            guard try WhitelistRecord.fetchOne(db, key: id) != nil else { throw NotFound("There is no whitelist \(id).") }
            var removed = 0
            for v in values {
                try db.execute(sql: "DELETE FROM whitelistValue WHERE whitelistId = ? AND value = ?", arguments: [id, v])
                removed += db.changesCount
            }
            if removed > 0 { try db.execute(sql: "UPDATE whitelist SET revision = revision + 1 WHERE id = ?", arguments: [id]) }
            return (removed, ["removed": String(removed)])
        }
    }

    /// Deletes a whitelist no unfinished task uses; the refusal names the tasks.
    public func deleteWhitelist(_ id: Int64, by actor: ActingUser) async throws {
        try await change(by: actor, "whitelist.delete", subject: String(id)) { db in
            guard let w = try WhitelistRecord.fetchOne(db, key: id) else { throw NotFound("There is no whitelist \(id).") }
            let users = try TaskRecord.filter(!ReleaseTask.Status.ended.contains(TaskRecord.Columns.status)).fetchAll(db)
                .filter { $0.whitelistIdList.contains(id) }
            if !users.isEmpty {
                throw Conflict("Whitelist \(w.name) is used by unfinished task(s) \(users.compactMap(\.id).map(String.init).joined(separator: ", ")); finish them first.")
            }
            _ = try w.delete(db)
            return ((), ["name": w.name])
        }
    }

    /// Every whitelist with its number of values (without loading the values).
    public func whitelistSummaries() async throws -> [(WhitelistRecord, count: Int)] {
        try await db.read { db in
            let counts = Dictionary(try Row.fetchAll(db, sql: "SELECT whitelistId, COUNT(*) FROM whitelistValue GROUP BY whitelistId")
                .map { (($0[0] as Int64), ($0[1] as Int)) }, uniquingKeysWith: { a, _ in a })
            return try WhitelistRecord.order(WhitelistRecord.Columns.name).fetchAll(db).map { ($0, counts[$0.id ?? 0] ?? 0) }
        }
    }

    /// One whitelist with its values.
    public func whitelist(_ id: Int64) async throws -> (WhitelistRecord, Set<String>)? {
        try await db.read { db in
            guard let w = try WhitelistRecord.fetchOne(db, key: id) else { return nil }
            return (w, Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [id])))
        }
    }

    /// Every whitelist with its values (the delivery snapshot's input), except those `known` at the same revision (their
    /// values are nil: the caller still has them).
    public func whitelists(known: [Int64: Int]) async throws -> [(WhitelistRecord, Set<String>?)] {
        try await db.read { db in
            try WhitelistRecord.order(WhitelistRecord.Columns.name).fetchAll(db).map { w in
                if let id = w.id, known[id] == w.revision { return (w, nil) }
                return (w, Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [w.id])))
            }
        }
    }

    /// Every whitelist with all its values.
    public func whitelists() async throws -> [(WhitelistRecord, Set<String>)] {
        try await db.read { db in
            try WhitelistRecord.order(WhitelistRecord.Columns.name).fetchAll(db).map { w in
                (w, Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [w.id])))
            }
        }
    }

    // MARK: Tasks

    /// Creates a task for a package; at most one unfinished task per package.
    public func createTask(_ task: TaskRecord, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.create", subject: "\(task.appId) \(task.version)") { db in
            guard try PackageRecord.exists(db, key: task.packageId) else { throw NotFound("There is no such package.") }
            if let open = try TaskRecord.filter(TaskRecord.Columns.packageId == task.packageId)
                .filter(!ReleaseTask.Status.ended.contains(TaskRecord.Columns.status)).fetchOne(db) {
                throw Conflict("Package \(task.appId) \(task.version) already has an unfinished task (\(open.id ?? 0)); finish it first.")
            }
            var t = task
            let kind: ReleaseTask.Kind
            do throws(TaskRecord.Unreadable) { kind = try t.storedKind() } catch { throw Conflict("The task cannot be recorded: \(error.description).") }
            let waits = try Store.approvalRules(db).newTaskWaits(kind)
            if waits { t.requestApproval(for: .release, by: actor) }
            try t.insert(db)
            try Store.refreshPackageStatus(db, task.packageId)
            var detail = ["task": String(t.id ?? 0), "type": t.type, "mode": t.mode, "app": t.appId]
            if waits { detail["approval"] = ApprovalState.awaiting.rawValue }
            return (t, detail)
        }
    }

    /// Pause, resume, finish, promote to official, roll back (SPEC §5).
    public func operate(task id: Int64, _ op: TaskOperation, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.\(op.rawValue)", subject: String(id)) { db in
            // Decisions, deletion and percentages have writes of their own (with their own checks).
            guard TaskOperation.routed.contains(op) else { throw Conflict("\(op.rawValue) is not a task operation of its own.") }
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            let before = try t.state(db)
            if let refusal = before.refusal(op) {
                throw Conflict("Task \(id) is \(before.status.rawValue)\(before.rolledBack ? " (rolled back)" : ""): \(refusal)")
            }
            // Only a promotion reads the approval rules: settings that cannot be read must not
            // stop a task from being paused, finished or rolled back.
            let after = before.after(op, rules: op == .promote ? try Store.approvalRules(db) : nil)
            t.apply(after)
            var detail: [String: String] = [:]
            if before.approval == .awaiting, after.approval == .withdrawn {
                t.decidedBy = actor.name   // who withdrew it, and when: the latest decisions list it
                t.decidedAt = Date()
                detail["approval"] = ApprovalState.withdrawn.rawValue
            }
            if after.approval == .awaiting, before.approval != .awaiting {
                t.requestApproval(for: after.approvalFor, by: actor)
                detail["approval"] = ApprovalState.awaiting.rawValue
            }
            try Store.dropAdmissionsUnlessOpenWindow(db, &t)
            try t.update(db)
            try Store.refreshPackageStatus(db, t.packageId)
            return (t, detail.merging(["status": t.status, "type": t.type, "app": t.appId, "version": t.version]) { a, _ in a })
        }
    }

    /// A task that is no longer an open time window (it ended, or was promoted to official)
    /// admits nobody by its admissions: their count is kept on the task and the devices (up to a
    /// million rows) are dropped, so they are neither kept nor loaded at start.
    static func dropAdmissionsUnlessOpenWindow(_ db: Database, _ t: inout TaskRecord) throws {
        guard let id = t.id, !(t.modeName == .timeWindow && !t.taskStatus.hasEnded) else { return }
        let admitted = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM admission WHERE taskId = ?", arguments: [id]) ?? 0
        guard admitted > 0 || (t.modeName == .timeWindow && t.admittedCount == nil) else { return }
        t.admittedCount = (t.admittedCount ?? 0) + admitted
        try db.execute(sql: "DELETE FROM admission WHERE taskId = ?", arguments: [id])
    }

    /// Changes a percentage task's share (raising it keeps every admitted device admitted).
    public func setPercentage(task id: Int64, _ percentage: Double, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.percentage", subject: String(id)) { db in
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            let state = try t.state(db)
            if state.refusal(.changePercentage) != nil {
                throw Conflict(state.unreadable.map { "This task cannot be read by this version of Courier (\($0)); it can only be finished." }
                               ?? "Only an unfinished percentage task takes a new percentage.", field: "percentage")
            }
            let before = t.percentage ?? 0
            let rules = try Store.approvalRules(db)
            if percentage >= 100, rules.official {
                throw Conflict("100 % reaches every client, and official releases need a reviewer's approval: promote the task to official instead.",
                               field: "percentage")
            }
            t.percentage = percentage
            var detail = ["from": String(before), "to": String(percentage), "app": t.appId, "version": t.version]
            // An approval covers what the reviewer saw: a wider share goes back to them.
            if percentage > before, state.wideningNeedsReviewer(rules) {
                guard state.approval != .awaiting else {
                    throw Conflict("Task \(id) waits for a reviewer: raise the percentage after they decide, so that they decide on what clients get.",
                                   field: "percentage")
                }
                t.requestApproval(for: .widening, by: actor)
                detail["approval"] = ApprovalState.awaiting.rawValue
            }
            try t.update(db)
            try Store.refreshPackageStatus(db, t.packageId)
            return (t, detail)
        }
    }

    /// A package's status from its tasks (SPEC §5): the newest task's, passing over tasks that
    /// ended without ever releasing (rejected, withdrawn) when an earlier one did release.
    static func refreshPackageStatus(_ db: Database, _ packageId: Int64) throws {
        guard var p = try PackageRecord.fetchOne(db, key: packageId) else { return }
        let tasks = try TaskRecord.filter(TaskRecord.Columns.packageId == packageId).order(TaskRecord.Columns.id.desc).fetchAll(db)
        let status = AppReleases.shown(tasks)?.packageStatus ?? .toBeReleased
        guard p.status != status else { return }
        p.status = status
        try p.update(db)
    }

    /// Deletes a finished task.
    public func deleteTask(_ id: Int64, by actor: ActingUser) async throws {
        try await change(by: actor, "task.delete", subject: String(id)) { db in
            guard let t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            if t.state.refusal(.delete) != nil { throw Conflict("Only a finished or rejected task can be deleted; finish task \(id) first.") }
            _ = try t.delete(db)
            try Store.refreshPackageStatus(db, t.packageId)
            return ((), ["version": t.version, "app": t.appId])
        }
    }

    public func task(_ id: Int64) async throws -> TaskRecord? {
        try await db.read { db in try TaskRecord.fetchOne(db, key: id) }
    }

    public func tasks(of appId: String) async throws -> [TaskRecord] {
        try await db.read { db in try TaskRecord.filter(TaskRecord.Columns.appId == appId).order(TaskRecord.Columns.id.desc).fetchAll(db) }
    }

    public func tasks(ids: [Int64]) async throws -> [Int64: TaskRecord] {
        try await db.read { db in
            Dictionary(try TaskRecord.filter(ids.contains(TaskRecord.Columns.id)).fetchAll(db).compactMap { t in t.id.map { ($0, t) } },
                       uniquingKeysWith: { a, _ in a })
        }
    }

    public func allTasks() async throws -> [TaskRecord] {
        try await db.read { db in try TaskRecord.fetchAll(db) }
    }

    /// A stored row that does not even decode (a column of another type or an unknown value):
    /// what the delivery snapshot knows of it, to make it offer nothing rather than fail whole.
    public struct UndecodableTask: Sendable {
        public let id: Int64
        public let appId: String
        public let version: String
        public let packageId: Int64
        public let why: String
    }

    /// Every task, read row by row: one that does not decode is answered apart, never stopping
    /// the others (one bad row must not freeze or stop every app's delivery).
    public func allTasksStrictly() async throws -> (tasks: [TaskRecord], undecodable: [UndecodableTask]) {
        try await db.read { db in
            var tasks: [TaskRecord] = []
            var bad: [UndecodableTask] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM task")
            while let row = try rows.next() {
                do {
                    // A Bool stored as anything but 0 or 1 would read as false: "not rolled back".
                    guard case .int64(let rolledBack) = (row["rolledBack"] as DatabaseValue).storage, rolledBack == 0 || rolledBack == 1 else {
                        throw TaskRecord.Unreadable("rolledBack is not 0 or 1")
                    }
                    tasks.append(try TaskRecord(row: row))
                } catch {
                    bad.append(UndecodableTask(id: row["id"] ?? 0, appId: (row["appId"] as String?) ?? "", version: (row["version"] as String?) ?? "",
                                               packageId: row["packageId"] ?? 0, why: "the stored row cannot be read (\(String(describing: error).prefix(160)))"))
                }
            }
            return (tasks, bad)
        }
    }

    // MARK: Time-window admissions and client events

    /// Every recorded admission, by task: loaded into memory with each snapshot.
    public func admissions() async throws -> [Int64: Set<String>] {
        try await db.read { db in
            var all: [Int64: Set<String>] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT taskId, deviceId FROM admission")
            while let r = try rows.next() { all[r[0], default: []].insert(r[1]) }
            return all
        }
    }

    /// Makes admissions durable (before the client is told).
    public func recordAdmissions(_ pairs: [(task: Int64, device: String)]) async throws {
        guard !pairs.isEmpty else { return }
        try await db.write { db in
            // Only while the task is still an open window: one that ended or was promoted since
            // the snapshot named it has dropped its devices and must not collect more.
            for p in pairs {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO admission (taskId, deviceId) SELECT ?, ? WHERE EXISTS
                    (SELECT 1 FROM task WHERE id = ? AND mode = 'timeWindow' AND status NOT IN ('finished', 'rejected'))
                    """, arguments: [p.task, p.device, p.task])
            }
        }
    }

    /// A device ID as a fixed-size key (the first 8 bytes of its SHA-256): what a client sends
    /// may be long; what Courier remembers per device is not.
    public static func deviceKey(_ device: String) -> UInt64 {
        SHA256.hash(data: Data(device.utf8)).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Every device that gave up a task's version, by task (loaded into memory at start).
    public func gaveUpDevices() async throws -> [Int64: Set<UInt64>] {
        try await db.read { db in
            var all: [Int64: Set<UInt64>] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT taskId, deviceKey FROM gaveUp")
            while let r = try rows.next() { all[r[0], default: []].insert(UInt64(bitPattern: r[1])) }
            return all
        }
    }

    /// Remembers that these devices gave up these tasks' versions, and counts each once on its
    /// task (`failed`); tasks deleted since the snapshot named them are passed over. Answers the
    /// pairs recorded.
    @discardableResult
    public func recordGaveUp(_ pairs: [(task: Int64, device: UInt64)]) async throws -> [(task: Int64, device: UInt64)] {
        guard !pairs.isEmpty else { return [] }
        return try await db.write { db in
            var recorded: [(task: Int64, device: UInt64)] = []
            for p in pairs {
                try db.execute(sql: "INSERT OR IGNORE INTO gaveUp (taskId, deviceKey) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM task WHERE id = ?)",
                               arguments: [p.task, Int64(bitPattern: p.device), p.task])
                guard db.changesCount > 0 else { continue }
                recorded.append(p)
                try db.execute(sql: """
                    INSERT INTO taskEvent (taskId, event, count) VALUES (?, 'failed', 1)
                    ON CONFLICT (taskId, event) DO UPDATE SET count = count + 1
                    """, arguments: [p.task])
            }
            return recorded
        }
    }

    /// Counts a client's report, once per device, task, kind and hour (a device repeating itself,
    /// or one connection replaying it, adds nothing); false when the task is gone (deleted since
    /// the snapshot named it).
    @discardableResult
    public func countEvent(task: Int64, _ event: String, device: String, now: Date = Date()) async throws -> Bool {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        return try await db.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM task WHERE id = ?)", arguments: [task]) == true else { return false }
            // The device by 16 hex digits of its SHA-256: a fixed size whatever a client sends.
            let key = SHA256.hash(data: Data(device.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
            try db.execute(sql: "INSERT OR IGNORE INTO eventSeen (hour, taskId, event, deviceId) VALUES (?, ?, ?, ?)",
                           arguments: [hour, task, event, key])
            guard db.changesCount > 0 else { return true }
            try db.execute(sql: """
                INSERT INTO taskEvent (taskId, event, count) SELECT ?, ?, 1 WHERE EXISTS (SELECT 1 FROM task WHERE id = ?)
                ON CONFLICT (taskId, event) DO UPDATE SET count = count + 1
                """, arguments: [task, event, task])
            return db.changesCount > 0
        }
    }

    /// Forgets which devices reported in hours before `now`'s, a bounded batch per transaction
    /// (housekeeping calls it; a client's report never waits on a large delete). Answers how
    /// many rows went.
    @discardableResult
    public func pruneEventsSeen(now: Date = Date(), batch: Int = 5000) async throws -> Int {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        var removed = 0
        while true {
            let n = try await db.write { db in
                try db.execute(sql: "DELETE FROM eventSeen WHERE rowid IN (SELECT rowid FROM eventSeen WHERE hour < ? LIMIT ?)",
                               arguments: [hour, batch])
                return db.changesCount
            }
            removed += n
            if n < batch { return removed }
        }
    }

    public func eventCounts(task: Int64) async throws -> [String: Int] {
        try await db.read { db in
            var counts: [String: Int] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT event, count FROM taskEvent WHERE taskId = ?", arguments: [task]) {
                counts[r[0]] = r[1]
            }
            return counts
        }
    }
}
