import CourierCore
import CourierStore
import Crypto
import Foundation
import GRDB

extension SQLiteStore {
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
                    guard t.state.wideningNeedsReviewer(try SQLiteStore.approvalRules(db)) else { continue }
                    // While a reviewer looks at a task on this list (its release, a widening or a
                    // promotion), the list must not grow under their eyes: an approval given on a
                    // page read before would cover people the reviewer never saw.
                    if t.approvalState == .awaiting {
                        throw Conflict("Task \(t.id ?? 0) uses this whitelist and waits for a reviewer: add values after they decide.",
                                       field: "values")
                    }
                    t.requestApproval(for: .widening, by: actor)
                    try t.update(db)
                    try SQLiteStore.refreshPackageStatus(db, t.packageId)
                    waiting.append(t.id ?? 0)
                }
                if !waiting.isEmpty { detail["awaitingApproval"] = waiting.map(String.init).joined(separator: ",") }
                return ((added.count, waiting), detail)
            }
            return ((added.count, []), detail)
        }
    }

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

    public func whitelistSummaries() async throws -> [(WhitelistRecord, count: Int)] {
        try await db.read { db in
            let counts = Dictionary(try Row.fetchAll(db, sql: "SELECT whitelistId, COUNT(*) FROM whitelistValue GROUP BY whitelistId")
                .map { (($0[0] as Int64), ($0[1] as Int)) }, uniquingKeysWith: { a, _ in a })
            return try WhitelistRecord.order(WhitelistRecord.Columns.name).fetchAll(db).map { ($0, counts[$0.id ?? 0] ?? 0) }
        }
    }

    public func whitelist(_ id: Int64) async throws -> (WhitelistRecord, Set<String>)? {
        try await db.read { db in
            guard let w = try WhitelistRecord.fetchOne(db, key: id) else { return nil }
            return (w, Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [id])))
        }
    }

    public func whitelists(known: [Int64: Int]) async throws -> [(WhitelistRecord, Set<String>?)] {
        try await db.read { db in
            try WhitelistRecord.order(WhitelistRecord.Columns.name).fetchAll(db).map { w in
                if let id = w.id, known[id] == w.revision { return (w, nil) }
                return (w, Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [w.id])))
            }
        }
    }

    public func whitelists() async throws -> [(WhitelistRecord, Set<String>)] {
        try await db.read { db in
            try WhitelistRecord.order(WhitelistRecord.Columns.name).fetchAll(db).map { w in
                (w, Set(try String.fetchAll(db, sql: "SELECT value FROM whitelistValue WHERE whitelistId = ?", arguments: [w.id])))
            }
        }
    }

    // MARK: Tasks

    public func createTask(_ task: TaskRecord, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.create", subject: "\(task.appId) \(task.version)") { db in
            guard try PackageRecord.exists(db, key: task.packageId) else { throw NotFound("There is no such package.") }
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM revocation WHERE packageId = ?)", arguments: [task.packageId]) == true {
                throw Conflict(RevokedVersionRule.refusal(app: task.appId, version: task.version))
            }
            let open = try TaskRecord.filter(TaskRecord.Columns.packageId == task.packageId)
                .filter(!ReleaseTask.Status.ended.contains(TaskRecord.Columns.status)).fetchOne(db)
            try UnfinishedTaskRule.check(app: task.appId, version: task.version, unfinished: open.map { $0.id ?? 0 })
            // The lists it names exist now (one deleted since the form was checked is refused).
            if task.modeName == .whitelist, let missing = try task.whitelistIdList.first(where: { try !WhitelistRecord.exists(db, key: $0) }) {
                throw NotFound("There is no whitelist \(missing).")
            }
            var t = task
            let kind: ReleaseTask.Kind
            do throws(TaskRecord.Unreadable) { kind = try t.storedKind() } catch { throw Conflict("The task cannot be recorded: \(error.description).") }
            let waits = try SQLiteStore.approvalRules(db).newTaskWaits(kind)
            if waits { t.requestApproval(for: .release, by: actor) }
            try t.insert(db)
            try SQLiteStore.refreshPackageStatus(db, task.packageId)
            var detail = ["task": String(t.id ?? 0), "type": t.type, "mode": t.mode, "app": t.appId]
            if waits { detail["approval"] = ApprovalState.awaiting.rawValue }
            return (t, detail)
        }
    }

    public func operate(task id: Int64, _ op: TaskOperation, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.\(op.rawValue)", subject: String(id)) { db in
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            // Only a promotion reads the approval rules: settings that cannot be read must not
            // stop a task from being paused, finished or rolled back.
            let detail = try t.operate(op, from: try t.state(db), rules: op == .promote ? try SQLiteStore.approvalRules(db) : nil, by: actor)
            try SQLiteStore.dropAdmissionsUnlessOpenWindow(db, &t)
            try t.update(db)
            try SQLiteStore.refreshPackageStatus(db, t.packageId)
            return (t, detail)
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

    public func setPercentage(task id: Int64, _ percentage: Double, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.percentage", subject: String(id)) { db in
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            let state = try t.state(db)
            try t.refusePercentageChange(state)
            let detail = try t.setPercentage(percentage, from: state, rules: try SQLiteStore.approvalRules(db), by: actor)
            try t.update(db)
            try SQLiteStore.refreshPackageStatus(db, t.packageId)
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

    public func deleteTask(_ id: Int64, by actor: ActingUser) async throws {
        try await change(by: actor, "task.delete", subject: String(id)) { db in
            guard let t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            if t.state.refusal(.delete) != nil { throw Conflict("Only a finished or rejected task can be deleted; finish task \(id) first.") }
            _ = try t.delete(db)
            try SQLiteStore.refreshPackageStatus(db, t.packageId)
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

    public func admissions() async throws -> [Int64: Set<String>] {
        try await db.read { db in
            var all: [Int64: Set<String>] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT taskId, deviceId FROM admission")
            while let r = try rows.next() { all[r[0], default: []].insert(r[1]) }
            return all
        }
    }

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

    public func gaveUpDevices() async throws -> [Int64: Set<UInt64>] {
        try await db.read { db in
            var all: [Int64: Set<UInt64>] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT taskId, deviceKey FROM gaveUp")
            while let r = try rows.next() { all[r[0], default: []].insert(UInt64(bitPattern: r[1])) }
            return all
        }
    }

    @discardableResult
    public func recordGaveUp(_ pairs: [(task: Int64, device: UInt64)]) async throws -> [(task: Int64, device: UInt64)] {
        guard !pairs.isEmpty else { return [] }
        let hour = Int64(Date().timeIntervalSince1970 / 3600)
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
                // By the hour, a failed trial, counted once with the device's own trial_failed report.
                try db.execute(sql: "INSERT OR IGNORE INTO eventSeen (hour, taskId, event, deviceId) VALUES (?, ?, 'trial_failed', ?)",
                               arguments: [hour, p.task, EventKey.of(p.device)])
                if db.changesCount > 0 { try Self.countHour(db, task: p.task, hour: hour, event: "trial_failed") }
            }
            return recorded
        }
    }

    @discardableResult
    public func countEvent(task: Int64, _ event: String, device: String, now: Date) async throws -> Bool {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        return try await db.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM task WHERE id = ?)", arguments: [task]) == true else { return false }
            try db.execute(sql: "INSERT OR IGNORE INTO eventSeen (hour, taskId, event, deviceId) VALUES (?, ?, ?, ?)",
                           arguments: [hour, task, event, EventKey.of(device)])
            guard db.changesCount > 0 else { return true }
            try db.execute(sql: """
                INSERT INTO taskEvent (taskId, event, count) SELECT ?, ?, 1 WHERE EXISTS (SELECT 1 FROM task WHERE id = ?)
                ON CONFLICT (taskId, event) DO UPDATE SET count = count + 1
                """, arguments: [task, event, task])
            guard db.changesCount > 0 else { return false }
            if HealthHour.events.contains(event) { try Self.countHour(db, task: task, hour: hour, event: event) }
            return true
        }
    }

    @discardableResult
    public func pruneEventsSeen(now: Date, batch: Int) async throws -> Int {
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

    static func countHour(_ db: Database, task: Int64, hour: Int64, event: String) throws {
        try db.execute(sql: """
            INSERT INTO taskHour (taskId, hour, event, count) VALUES (?, ?, ?, 1)
            ON CONFLICT (taskId, hour, event) DO UPDATE SET count = count + 1
            """, arguments: [task, hour, event])
    }

    // MARK: Release health (SPEC §5)

    public func healthHours(task: Int64) async throws -> [HealthHour] {
        try await db.read { db in
            var hours: [Int64: HealthHour] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT hour, event, count FROM taskHour WHERE taskId = ?", arguments: [task]) {
                let hour: Int64 = r[0]
                hours[hour, default: HealthHour(hour: hour)].add(r[1], r[2])
            }
            return hours.values.sorted { $0.hour < $1.hour }
        }
    }

    public func mergeSketches(hour: Int64, checks: [Int64: HyperLogLog], adoption: [AdoptionKey: HyperLogLog]) async throws {
        guard !checks.isEmpty || !adoption.isEmpty else { return }
        try await db.write { db in
            func merge(_ kind: String, _ subject: String, _ sketch: HyperLogLog) throws -> HyperLogLog {
                var merged = sketch
                if let text = try String.fetchOne(db, sql: "SELECT registers FROM sketch WHERE kind = ? AND subject = ? AND hour = ?",
                                                  arguments: [kind, subject, hour]),
                   let stored = HyperLogLog(base64: text) {
                    merged.merge(stored)
                }
                try db.execute(sql: "INSERT OR REPLACE INTO sketch (kind, subject, hour, registers) VALUES (?, ?, ?, ?)",
                               arguments: [kind, subject, hour, merged.base64])
                return merged
            }
            for (task, sketch) in checks.sorted(by: { $0.key < $1.key }) {
                guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM task WHERE id = ?)", arguments: [task]) == true else { continue }
                let merged = try merge("checks", String(task), sketch)
                try db.execute(sql: """
                    INSERT INTO taskHour (taskId, hour, event, count) VALUES (?, ?, 'checked', ?)
                    ON CONFLICT (taskId, hour, event) DO UPDATE SET count = excluded.count
                    """, arguments: [task, hour, merged.estimate])
            }
            for (key, sketch) in adoption.sorted(by: { $0.key.subject < $1.key.subject }) {
                _ = try merge("adoption", key.subject, sketch)
            }
        }
    }

    public func adoption(app: String, sinceHour: Int64) async throws -> [String: HyperLogLog] {
        try await db.read { db in
            var out: [String: HyperLogLog] = [:]
            let rows = try Row.fetchAll(db, sql: "SELECT subject, registers FROM sketch WHERE kind = 'adoption' AND subject LIKE ? ESCAPE '\\' AND hour >= ?",
                                        arguments: [LikePattern.prefix(app + "/"), sinceHour])
            for r in rows {
                let subject: String = r[0]
                guard subject.hasPrefix(app + "/"), let sketch = HyperLogLog(base64: r[1]) else { continue }
                out[String(subject.dropFirst(app.count + 1)), default: HyperLogLog()].merge(sketch)
            }
            return out
        }
    }

    @discardableResult
    public func pruneHealth(now: Date) async throws -> Int {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        return try await db.write { db in
            try db.execute(sql: "DELETE FROM sketch WHERE (kind = 'adoption' AND hour < ?) OR (kind = 'checks' AND hour < ?)",
                           arguments: [hour - AdoptionKey.hoursKept, hour - 2])
            var n = db.changesCount
            try db.execute(sql: "DELETE FROM taskHour WHERE hour < ?", arguments: [hour - Int64(ReleaseHealth.maxHours)])
            n += db.changesCount
            return n
        }
    }

    public func rampStep(task id: Int64, expecting done: Int, pause reason: String?, baseline: RampPlan.Baseline?, now: Date) async throws -> TaskRecord? {
        do { return try await change(by: .courier, "task.ramp", subject: String(id)) { db in
            guard var t = try TaskRecord.fetchOne(db, key: id) else { throw NotFound("There is no task \(id).") }
            guard let detail = try t.rampMove(expecting: done, pause: reason, baseline: baseline, from: try t.state(db),
                                                rules: try SQLiteStore.approvalRules(db), now: now) else {
                throw RampStepNotDue()
            }
            try SQLiteStore.dropAdmissionsUnlessOpenWindow(db, &t)
            try t.update(db)
            try SQLiteStore.refreshPackageStatus(db, t.packageId)
            return (t, detail)
        } } catch is RampStepNotDue { return nil }
    }

    // MARK: Revoked versions and the webhook (SPEC §5)

    public func revoke(_ appId: String, _ version: String, reason: String, by actor: ActingUser) async throws -> Revocation {
        try await change(by: actor, "package.revoke", subject: "\(version) of \(appId)") { db in
            guard let p = try PackageRecord.filter(Column("appId") == appId && Column("version") == version).fetchOne(db), let pid = p.id else {
                throw NotFound.package(appId, version)
            }
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM revocation WHERE packageId = ?)", arguments: [pid]) == true {
                throw Conflict("\(appId) \(version) is already revoked.")
            }
            let tasks = try TaskRecord.filter(TaskRecord.Columns.packageId == pid).fetchAll(db)
            guard tasks.contains(where: { !$0.neverReleased }) else {
                throw Conflict("\(appId) \(version) was never released: there is nothing to revoke (delete nothing; it is offered to nobody).")
            }
            var detail = ["app": appId, "version": version, "reason": reason]
            for var t in tasks where !t.taskStatus.hasEnded {
                _ = try t.operate(.finish, from: try t.state(db), rules: nil, by: actor)
                try SQLiteStore.dropAdmissionsUnlessOpenWindow(db, &t)
                try t.update(db)
                detail["finished"] = String(t.id ?? 0)
            }
            try SQLiteStore.refreshPackageStatus(db, pid)
            let r = Revocation(packageId: pid, appId: appId, version: version, reason: reason, revokedBy: actor.name, revokedAt: Date())
            try db.execute(sql: "INSERT INTO revocation (packageId, appId, version, reason, revokedBy, revokedAt) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [pid, appId, version, reason, actor.name, r.revokedAt])
            return (r, detail)
        }
    }

    public func revocations() async throws -> [Int64: Revocation] {
        try await db.read { db in
            var out: [Int64: Revocation] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT packageId, appId, version, reason, revokedBy, revokedAt FROM revocation") {
                out[r[0]] = Revocation(packageId: r[0], appId: r[1], version: r[2], reason: r[3], revokedBy: r[4], revokedAt: r[5])
            }
            return out
        }
    }

    public func webhook() async throws -> Webhook? {
        try await db.read { db in
            try Row.fetchOne(db, sql: "SELECT url, secret, setBy, setAt FROM webhook WHERE id = 1").map {
                Webhook(url: $0[0], secret: $0[1], setBy: $0[2], setAt: $0[3])
            }
        }
    }

    public func setWebhook(url: String?, secret: String, by actor: ActingUser) async throws -> Webhook? {
        try await change(by: actor, "settings.webhook", subject: "settings", catalogue: false) { db in
            try db.execute(sql: "DELETE FROM webhook")
            guard let url else { return (nil, Webhook.audited(nil)) }
            let w = Webhook(url: url, secret: secret, setBy: actor.name, setAt: Date())
            try db.execute(sql: "INSERT INTO webhook (id, url, secret, setBy, setAt) VALUES (1, ?, ?, ?, ?)", arguments: [url, secret, actor.name, w.setAt])
            return (w, Webhook.audited(url))
        }
    }
}
