import CourierCore
import CourierStore
import Crypto
import Foundation
import PostgresNIO

/// Whitelists, release tasks, admissions and device events on PostgreSQL, with the same rules
/// as SQLite's (`TaskState`, `UnfinishedTaskRule`, approval). Each write locks the rows its rule
/// reads: the task it changes, the package a new task is for, the list values are added to.
extension PostgresStore: ReleaseStore {
    // MARK: Rows

    static let taskColumns = """
        id, package_id, app_id, version, type, mode, whitelist_ids, end_time, user_count, percentage, rules, description_markdown,
        status, rolled_back, created_by, created_at, approval, approval_for, requested_by, requested_at, decided_by, decided_at,
        decision_comment, admitted_count, ramp
        """
    typealias TaskRow = (Int64, Int64, String, String, String, String, String, Date?, Int32?, Double?, String, String,
                         String, Bool, String, Date, String, String, String?, Date?, String?, Date?, String, Int32?, String)

    static func task(_ r: TaskRow) -> TaskRecord {
        var t = TaskRecord(stored: r.0, packageId: r.1, appId: r.2, version: r.3, type: r.4, createdBy: r.14)
        t.mode = r.5; t.whitelistIds = r.6; t.endTime = r.7; t.userCount = r.8.map(Int.init); t.percentage = r.9; t.rules = r.10
        t.descriptionMarkdown = r.11; t.status = r.12; t.rolledBack = r.13; t.createdAt = r.15; t.approval = r.16; t.approvalFor = r.17
        t.requestedBy = r.18; t.requestedAt = r.19; t.decidedBy = r.20; t.decidedAt = r.21; t.decisionComment = r.22
        t.admittedCount = r.23.map(Int.init); t.ramp = r.24
        return t
    }

    func tasks(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [TaskRecord] {
        try await rows(query, as: TaskRow.self, on: c).map(Self.task)
    }

    /// The task `id`, its row locked until the transaction ends.
    func lockedTask(_ id: Int64, on c: PostgresConnection) async throws -> TaskRecord {
        guard let t = try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE id = \(id) FOR UPDATE", on: c).first else {
            throw NotFound("There is no task \(id).")
        }
        return t
    }

    func insert(_ t: inout TaskRecord, on c: PostgresConnection) async throws {
        t.id = try await all("""
            INSERT INTO task (package_id, app_id, version, type, mode, whitelist_ids, end_time, user_count, percentage, rules,
                description_markdown, status, rolled_back, created_by, created_at, approval, approval_for, requested_by, requested_at,
                decided_by, decided_at, decision_comment, admitted_count, ramp)
            VALUES (\(t.packageId), \(t.appId), \(t.version), \(t.type), \(t.mode), \(t.whitelistIds), \(t.endTime), \(t.userCount.map(Int32.init)),
                \(t.percentage), \(t.rules), \(t.descriptionMarkdown), \(t.status), \(t.rolledBack), \(t.createdBy), \(t.createdAt),
                \(t.approval), \(t.approvalFor), \(t.requestedBy), \(t.requestedAt), \(t.decidedBy), \(t.decidedAt), \(t.decisionComment),
                \(t.admittedCount.map(Int32.init)), \(t.ramp))
            RETURNING id
            """, as: Int64.self, on: c).first
    }

    func update(_ t: TaskRecord, on c: PostgresConnection) async throws {
        try await c.query("""
            UPDATE task SET type = \(t.type), mode = \(t.mode), whitelist_ids = \(t.whitelistIds), end_time = \(t.endTime),
                user_count = \(t.userCount.map(Int32.init)), percentage = \(t.percentage), rules = \(t.rules), status = \(t.status),
                rolled_back = \(t.rolledBack), approval = \(t.approval), approval_for = \(t.approvalFor), requested_by = \(t.requestedBy),
                requested_at = \(t.requestedAt), decided_by = \(t.decidedBy), decided_at = \(t.decidedAt),
                decision_comment = \(t.decisionComment), admitted_count = \(t.admittedCount.map(Int32.init)),
                ramp = \(t.ramp)
            WHERE id = \(t.id ?? 0)
            """, logger: logger)
    }

    /// Where the task stands, counting the whitelists it names, as a write must.
    func state(_ t: TaskRecord, on c: PostgresConnection) async throws -> TaskState {
        var s = t.state
        s.unreadable = try await unreadable(t, on: c)
        return s
    }

    /// Why the task cannot be read, counting its whitelists (missing, of an unknown kind, or
    /// holding an expression this binary refuses), or nil.
    func unreadable(_ t: TaskRecord, on c: PostgresConnection) async throws -> String? {
        if let why = t.unreadable { return why }
        guard t.taskType == .gray, t.modeName == .whitelist else { return nil }
        for id in t.whitelistIdList {
            guard let w = try await whitelistRecord(id, on: c) else { return "whitelist \(id) is missing" }
            guard let kind = Whitelist.Kind(rawValue: w.kind) else { return "whitelist \(id): unknown kind “\(w.kind)”" }
            guard kind == .regex else { continue }   // ID lists: the kind is all there is to read
            let values = try await values(of: id, on: c)
            do { _ = try Whitelist(id: id, name: w.name, kind: kind, values: values) } catch { return "whitelist \(id): \(error.message)" }
        }
        return nil
    }

    /// The settings' approval rules, read strictly (a settings row that cannot be read refuses the write).
    func approvalRules(on c: PostgresConnection) async throws -> ApprovalRules {
        let s = try await settings(on: c)
        return ApprovalRules(official: s.officialNeedsApproval, gray: s.grayNeedsApproval)
    }

    /// A package's status from its tasks (SPEC §5), as on SQLite.
    func refreshPackageStatus(_ packageId: Int64, on c: PostgresConnection) async throws {
        let mine = try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE package_id = \(packageId) ORDER BY id DESC", on: c)
        let status = AppReleases.shown(mine)?.packageStatus ?? .toBeReleased
        try await c.query("UPDATE package SET status = \(status.rawValue) WHERE id = \(packageId) AND status != \(status.rawValue)", logger: logger)
    }

    /// A task that is no longer an open time window keeps its count of admitted devices and
    /// drops the devices (as on SQLite).
    func dropAdmissionsUnlessOpenWindow(_ t: inout TaskRecord, on c: PostgresConnection) async throws {
        guard let id = t.id, !(t.modeName == .timeWindow && !t.taskStatus.hasEnded) else { return }
        let admitted = Int(try await all("SELECT n FROM admission_count WHERE task_id = \(id)", as: Int64.self, on: c).first ?? 0)
        guard admitted > 0 || (t.modeName == .timeWindow && t.admittedCount == nil) else { return }
        t.admittedCount = (t.admittedCount ?? 0) + admitted
        try await c.query("DELETE FROM admission WHERE task_id = \(id)", logger: logger)
    }

    // MARK: Whitelists

    func whitelistRecords(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [WhitelistRecord] {
        try await rows(query, as: (Int64, String, String, Date, Int32).self, on: c).map {
            var w = WhitelistRecord(id: $0.0, name: $0.1, kind: $0.2)
            w.createdAt = $0.3; w.revision = Int($0.4)
            return w
        }
    }

    func whitelistRecord(_ id: Int64, on c: PostgresConnection? = nil, lock: Bool = false) async throws -> WhitelistRecord? {
        try await whitelistRecords("""
            SELECT id, name, kind, created_at, revision FROM whitelist WHERE id = \(id)\(unescaped: lock ? " FOR UPDATE" : "")
            """, on: c).first
    }

    func values(of id: Int64, on c: PostgresConnection? = nil) async throws -> Set<String> {
        Set(try await all("SELECT value FROM whitelist_value WHERE whitelist_id = \(id)", as: String.self, on: c))
    }

    /// Refuses expression lists that together would cost more to match than one request may
    /// (`Whitelist.maxTotalMatchCost`). Changes to expression lists queue on an advisory lock,
    /// so two nodes cannot each add half of what is too much.
    func checkMatchCost(list id: Int64?, kind: Whitelist.Kind, values: Set<String>, on c: PostgresConnection) async throws {
        guard kind == .regex else { return }
        try await c.query("SELECT pg_advisory_xact_lock(\(Self.regexLockKey))", logger: logger)
        let mine = (try? Whitelist(id: id ?? 0, name: "", kind: .regex, values: values))?.matchCost ?? 0
        var others = 0
        for w in try await whitelistRecords("SELECT id, name, kind, created_at, revision FROM whitelist WHERE kind = 'regex'", on: c)
        where w.id != id {
            let stored = try await self.values(of: w.id ?? 0, on: c)
            others += (try? Whitelist(id: w.id ?? 0, name: w.name, kind: .regex, values: stored))?.matchCost ?? 0
        }
        guard mine + others <= Whitelist.maxTotalMatchCost else {
            throw FieldError("values", "These expressions are too costly to match: every expression whitelist together may compile to "
                             + "\(Whitelist.maxTotalMatchCost) steps per character, and with this one they would take \(mine + others) "
                             + "(this list \(mine)). Use simpler expressions (no large counted repeats like {0,100}) or fewer of them.")
        }
    }

    static let regexLockKey: Int64 = 0x436F_7572_7265_6765   // "Courrege"

    func insertValues(_ values: some Sequence<String>, list id: Int64, on c: PostgresConnection) async throws {
        let all = Array(values)
        guard !all.isEmpty else { return }
        try await c.query("INSERT INTO whitelist_value (whitelist_id, value) SELECT \(id), unnest(\(all)::text[]) ON CONFLICT DO NOTHING",
                          logger: logger)
    }

    public func createWhitelist(name: String, kind: Whitelist.Kind, values: Set<String>, by actor: ActingUser) async throws -> WhitelistRecord {
        try await change(by: actor, "whitelist.create", subject: name) { c in
            if !(try await all("SELECT id FROM whitelist WHERE name = \(name)", as: Int64.self, on: c)).isEmpty {
                throw Conflict("A whitelist named \(name) already exists.", field: "name")
            }
            try await checkMatchCost(list: nil, kind: kind, values: values, on: c)
            var w = WhitelistRecord(id: nil, name: name, kind: kind.rawValue)
            w.id = try await all("""
                INSERT INTO whitelist (name, kind, created_at, revision) VALUES (\(name), \(kind.rawValue), \(w.createdAt), 0)
                ON CONFLICT (name) DO NOTHING RETURNING id
                """, as: Int64.self, on: c).first
            guard let id = w.id else { throw Conflict("A whitelist named \(name) already exists.", field: "name") }
            try await insertValues(values, list: id, on: c)
            return (w, ["kind": kind.rawValue, "values": String(values.count)])
        }
    }

    public func addWhitelistValues(_ id: Int64, _ values: Set<String>, by actor: ActingUser,
                                   check: @escaping @Sendable (WhitelistRecord, Set<String>) throws -> Void) async throws
        -> (added: Int, awaitingApproval: [Int64]) {
        try await change(by: actor, "whitelist.addValues", subject: String(id)) { c in
            guard let w = try await whitelistRecord(id, on: c, lock: true) else { throw NotFound("There is no whitelist \(id).") }
            let existing = try await self.values(of: id, on: c)
            let added = values.subtracting(existing)
            try check(w, existing.union(values))
            if let kind = Whitelist.Kind(rawValue: w.kind) { try await checkMatchCost(list: id, kind: kind, values: existing.union(values), on: c) }
            try await insertValues(added, list: id, on: c)
            var detail = ["added": String(added.count)]
            guard !added.isEmpty else { return ((0, []), detail) }
            try await c.query("UPDATE whitelist SET revision = revision + 1 WHERE id = \(id)", logger: logger)
            // Approved tasks on this list now reach people the reviewer did not see: they wait again.
            var waiting: [Int64] = []
            let rules = try await approvalRules(on: c)
            for var t in try await tasks("""
                SELECT \(unescaped: Self.taskColumns) FROM task WHERE status NOT IN ('finished', 'rejected') ORDER BY id FOR UPDATE
                """, on: c) where t.whitelistIdList.contains(id) {
                guard t.state.wideningNeedsReviewer(rules) else { continue }
                if t.approvalState == .awaiting {
                    throw Conflict("Task \(t.id ?? 0) uses this whitelist and waits for a reviewer: add values after they decide.", field: "values")
                }
                t.requestApproval(for: .widening, by: actor)
                try await update(t, on: c)
                try await refreshPackageStatus(t.packageId, on: c)
                waiting.append(t.id ?? 0)
            }
            if !waiting.isEmpty { detail["awaitingApproval"] = waiting.map(String.init).joined(separator: ",") }
            return ((added.count, waiting), detail)
        }
    }

    public func removeWhitelistValues(_ id: Int64, _ values: Set<String>, by actor: ActingUser) async throws -> Int {
        try await change(by: actor, "whitelist.removeValues", subject: String(id)) { c in
            guard try await whitelistRecord(id, on: c, lock: true) != nil else { throw NotFound("There is no whitelist \(id).") }
            let removed = try await all("""
                DELETE FROM whitelist_value WHERE whitelist_id = \(id) AND value = ANY(\(Array(values))::text[]) RETURNING value
                """, as: String.self, on: c).count
            if removed > 0 { try await c.query("UPDATE whitelist SET revision = revision + 1 WHERE id = \(id)", logger: logger) }
            return (removed, ["removed": String(removed)])
        }
    }

    public func deleteWhitelist(_ id: Int64, by actor: ActingUser) async throws {
        try await change(by: actor, "whitelist.delete", subject: String(id)) { c in
            guard let w = try await whitelistRecord(id, on: c, lock: true) else { throw NotFound("There is no whitelist \(id).") }
            let users = try await tasks("""
                SELECT \(unescaped: Self.taskColumns) FROM task WHERE status NOT IN ('finished', 'rejected') FOR SHARE
                """, on: c).filter { $0.whitelistIdList.contains(id) }
            if !users.isEmpty {
                throw Conflict("Whitelist \(w.name) is used by unfinished task(s) \(users.compactMap(\.id).map(String.init).joined(separator: ", ")); finish them first.")
            }
            try await c.query("DELETE FROM whitelist WHERE id = \(id)", logger: logger)
            return ((), ["name": w.name])
        }
    }

    public func whitelistSummaries() async throws -> [(WhitelistRecord, count: Int)] {
        let counts = Dictionary(try await rows("SELECT whitelist_id, COUNT(*) FROM whitelist_value GROUP BY whitelist_id", as: (Int64, Int64).self)
            .map { ($0.0, Int($0.1)) }, uniquingKeysWith: { a, _ in a })
        return try await whitelistRecords("SELECT id, name, kind, created_at, revision FROM whitelist ORDER BY name")
            .map { ($0, count: counts[$0.id ?? 0] ?? 0) }
    }

    public func whitelist(_ id: Int64) async throws -> (WhitelistRecord, Set<String>)? {
        guard let w = try await whitelistRecord(id) else { return nil }
        return (w, try await values(of: id))
    }

    public func whitelists(known: [Int64: Int]) async throws -> [(WhitelistRecord, Set<String>?)] {
        var out: [(WhitelistRecord, Set<String>?)] = []
        for w in try await whitelistRecords("SELECT id, name, kind, created_at, revision FROM whitelist ORDER BY name") {
            if let id = w.id, known[id] == w.revision { out.append((w, nil)) } else { out.append((w, try await values(of: w.id ?? 0))) }
        }
        return out
    }

    public func whitelists() async throws -> [(WhitelistRecord, Set<String>)] {
        try await whitelists(known: [:]).map { ($0.0, $0.1 ?? []) }
    }

    // MARK: Tasks

    public func createTask(_ task: TaskRecord, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.create", subject: "\(task.appId) \(task.version)") { c in
            // The package's row is locked: two nodes creating its task at once queue here.
            guard !(try await all("SELECT id FROM package WHERE id = \(task.packageId) FOR UPDATE", as: Int64.self, on: c)).isEmpty else {
                throw NotFound("There is no such package.")
            }
            if !(try await all("SELECT package_id FROM revocation WHERE package_id = \(task.packageId)", as: Int64.self, on: c)).isEmpty {
                throw Conflict(RevokedVersionRule.refusal(app: task.appId, version: task.version))
            }
            let open = try await all("""
                SELECT id FROM task WHERE package_id = \(task.packageId) AND status NOT IN ('finished', 'rejected') LIMIT 1
                """, as: Int64.self, on: c).first
            try UnfinishedTaskRule.check(app: task.appId, version: task.version, unfinished: open)
            // The lists it names stay while it is recorded: a delete on another node waits, or
            // went first and the task is refused.
            if task.modeName == .whitelist {
                let ids = task.whitelistIdList
                let held = try await all("SELECT id FROM whitelist WHERE id = ANY(\(ids)::bigint[]) FOR SHARE", as: Int64.self, on: c)
                if let missing = ids.first(where: { !held.contains($0) }) { throw NotFound("There is no whitelist \(missing).") }
            }
            var t = task
            let kind: ReleaseTask.Kind
            do throws(TaskRecord.Unreadable) { kind = try t.storedKind() } catch { throw Conflict("The task cannot be recorded: \(error.description).") }
            let waits = try await approvalRules(on: c).newTaskWaits(kind)
            if waits { t.requestApproval(for: .release, by: actor) }
            try await insert(&t, on: c)
            try await refreshPackageStatus(task.packageId, on: c)
            var detail = ["task": String(t.id ?? 0), "type": t.type, "mode": t.mode, "app": t.appId]
            if waits { detail["approval"] = ApprovalState.awaiting.rawValue }
            return (t, detail)
        }
    }

    public func operate(task id: Int64, _ op: TaskOperation, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.\(op.rawValue)", subject: String(id)) { c in
            var t = try await lockedTask(id, on: c)
            // Only a promotion reads the approval rules (as on SQLite).
            let detail = try t.operate(op, from: try await state(t, on: c), rules: op == .promote ? try await approvalRules(on: c) : nil, by: actor)
            try await dropAdmissionsUnlessOpenWindow(&t, on: c)
            try await update(t, on: c)
            try await refreshPackageStatus(t.packageId, on: c)
            return (t, detail)
        }
    }

    public func setPercentage(task id: Int64, _ percentage: Double, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, "task.percentage", subject: String(id)) { c in
            var t = try await lockedTask(id, on: c)
            let state = try await state(t, on: c)
            try t.refusePercentageChange(state)
            let detail = try t.setPercentage(percentage, from: state, rules: try await approvalRules(on: c), by: actor)
            try await update(t, on: c)
            try await refreshPackageStatus(t.packageId, on: c)
            return (t, detail)
        }
    }

    public func deleteTask(_ id: Int64, by actor: ActingUser) async throws {
        try await change(by: actor, "task.delete", subject: String(id)) { c in
            let t = try await lockedTask(id, on: c)
            if t.state.refusal(.delete) != nil { throw Conflict("Only a finished or rejected task can be deleted; finish task \(id) first.") }
            try await c.query("DELETE FROM task WHERE id = \(id)", logger: logger)
            try await refreshPackageStatus(t.packageId, on: c)
            return ((), ["version": t.version, "app": t.appId])
        }
    }

    public func task(_ id: Int64) async throws -> TaskRecord? {
        try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE id = \(id)").first
    }

    public func tasks(of appId: String) async throws -> [TaskRecord] {
        try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE app_id = \(appId) ORDER BY id DESC")
    }

    public func tasks(ids: [Int64]) async throws -> [Int64: TaskRecord] {
        guard !ids.isEmpty else { return [:] }
        return Dictionary(try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE id = ANY(\(ids)::bigint[])")
            .compactMap { t in t.id.map { ($0, t) } }, uniquingKeysWith: { a, _ in a })
    }

    public func allTasks() async throws -> [TaskRecord] {
        try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task")
    }

    /// The schema holds every column to its type, so a row always decodes; what cannot be read
    /// (an unknown status, type, mode or rule) is the snapshot's to refuse (`storedKind`).
    public func allTasksStrictly() async throws -> (tasks: [TaskRecord], undecodable: [UndecodableTask]) {
        (try await allTasks(), [])
    }

    // MARK: Time-window admissions and client events

    public func admissions() async throws -> [Int64: Set<String>] {
        var all: [Int64: Set<String>] = [:]
        for (task, device) in try await rows("SELECT task_id, device_id FROM admission", as: (Int64, String).self) {
            all[task, default: []].insert(device)
        }
        return all
    }

    public func recordAdmissions(_ pairs: [(task: Int64, device: String)]) async throws {
        guard !pairs.isEmpty else { return }
        try await transaction { c in
            for p in pairs {
                try await c.query("""
                    INSERT INTO admission (task_id, device_id) SELECT \(p.task), \(p.device) WHERE EXISTS
                    (SELECT 1 FROM task WHERE id = \(p.task) AND mode = 'timeWindow' AND status NOT IN ('finished', 'rejected'))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
        }
    }

    public func gaveUpDevices() async throws -> [Int64: Set<UInt64>] {
        var all: [Int64: Set<UInt64>] = [:]
        for (task, key) in try await rows("SELECT task_id, device_key FROM gave_up", as: (Int64, Int64).self) {
            all[task, default: []].insert(UInt64(bitPattern: key))
        }
        return all
    }

    @discardableResult
    public func recordGaveUp(_ pairs: [(task: Int64, device: UInt64)]) async throws -> [(task: Int64, device: UInt64)] {
        guard !pairs.isEmpty else { return [] }
        let hour = Int64(Date().timeIntervalSince1970 / 3600)
        return try await transaction { c in
            var recorded: [(task: Int64, device: UInt64)] = []
            for p in pairs {
                let inserted = try await all("""
                    INSERT INTO gave_up (task_id, device_key) SELECT \(p.task), \(Int64(bitPattern: p.device))
                    WHERE EXISTS (SELECT 1 FROM task WHERE id = \(p.task)) ON CONFLICT DO NOTHING RETURNING task_id
                    """, as: Int64.self, on: c)
                guard !inserted.isEmpty else { continue }
                recorded.append(p)
                try await c.query("""
                    INSERT INTO task_event (task_id, event, count) VALUES (\(p.task), 'failed', 1)
                    ON CONFLICT (task_id, event) DO UPDATE SET count = task_event.count + 1
                    """, logger: logger)
                // By the hour, a failed trial, counted once with the device's own trial_failed report.
                let seen = try await all("""
                    INSERT INTO event_seen (hour, task_id, event, device_id) VALUES (\(hour), \(p.task), 'trial_failed', \(EventKey.of(p.device)))
                    ON CONFLICT DO NOTHING RETURNING hour
                    """, as: Int64.self, on: c)
                if !seen.isEmpty { try await countHour(task: p.task, hour: hour, event: "trial_failed", on: c) }
            }
            return recorded
        }
    }

    @discardableResult
    public func countEvent(task: Int64, _ event: String, device: String, now: Date) async throws -> Bool {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        let key = EventKey.of(device)
        return try await transaction { c in
            guard !(try await all("SELECT id FROM task WHERE id = \(task)", as: Int64.self, on: c)).isEmpty else { return false }
            let seen = try await all("""
                INSERT INTO event_seen (hour, task_id, event, device_id) VALUES (\(hour), \(task), \(event), \(key))
                ON CONFLICT DO NOTHING RETURNING hour
                """, as: Int64.self, on: c)
            guard !seen.isEmpty else { return true }
            let counted = try await all("""
                INSERT INTO task_event (task_id, event, count) SELECT \(task), \(event), 1 WHERE EXISTS (SELECT 1 FROM task WHERE id = \(task))
                ON CONFLICT (task_id, event) DO UPDATE SET count = task_event.count + 1 RETURNING count
                """, as: Int64.self, on: c)
            guard !counted.isEmpty else { return false }
            if HealthHour.events.contains(event) { try await countHour(task: task, hour: hour, event: event, on: c) }
            return true
        }
    }

    func countHour(task: Int64, hour: Int64, event: String, on c: PostgresConnection) async throws {
        try await c.query("""
            INSERT INTO task_hour (task_id, hour, event, count) SELECT \(task), \(hour), \(event), 1 WHERE EXISTS (SELECT 1 FROM task WHERE id = \(task))
            ON CONFLICT (task_id, hour, event) DO UPDATE SET count = task_hour.count + 1
            """, logger: logger)
    }

    // MARK: Release health (SPEC §5)

    public func healthHours(task: Int64) async throws -> [HealthHour] {
        var hours: [Int64: HealthHour] = [:]
        for (hour, event, count) in try await rows("SELECT hour, event, count FROM task_hour WHERE task_id = \(task)", as: (Int64, String, Int64).self) {
            hours[hour, default: HealthHour(hour: hour)].add(event, Int(count))
        }
        return hours.values.sorted { $0.hour < $1.hour }
    }

    public func mergeSketches(hour: Int64, checks: [Int64: HyperLogLog], adoption: [AdoptionKey: HyperLogLog]) async throws {
        guard !checks.isEmpty || !adoption.isEmpty else { return }
        try await transaction { c in
            // Each row locked while merged: two nodes flushing the same hour keep both's devices.
            func merge(_ kind: String, _ subject: String, _ sketch: HyperLogLog) async throws -> HyperLogLog {
                try await c.query("""
                    INSERT INTO sketch (kind, subject, hour, registers) VALUES (\(kind), \(subject), \(hour), \(HyperLogLog().base64))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                var merged = sketch
                let stored = try await all("""
                    SELECT registers FROM sketch WHERE kind = \(kind) AND subject = \(subject) AND hour = \(hour) FOR UPDATE
                    """, as: String.self, on: c)
                if let text = stored.first, let s = HyperLogLog(base64: text) { merged.merge(s) }
                try await c.query("""
                    UPDATE sketch SET registers = \(merged.base64) WHERE kind = \(kind) AND subject = \(subject) AND hour = \(hour)
                    """, logger: logger)
                return merged
            }
            for (task, sketch) in checks.sorted(by: { $0.key < $1.key }) {
                guard !(try await all("SELECT id FROM task WHERE id = \(task) FOR SHARE", as: Int64.self, on: c)).isEmpty else { continue }
                let merged = try await merge("checks", String(task), sketch)
                try await c.query("""
                    INSERT INTO task_hour (task_id, hour, event, count) VALUES (\(task), \(hour), 'checked', \(Int64(merged.estimate)))
                    ON CONFLICT (task_id, hour, event) DO UPDATE SET count = excluded.count
                    """, logger: logger)
            }
            for (key, sketch) in adoption.sorted(by: { $0.key.subject < $1.key.subject }) {
                _ = try await merge("adoption", key.subject, sketch)
            }
        }
    }

    public func adoption(app: String, sinceHour: Int64) async throws -> [String: HyperLogLog] {
        var out: [String: HyperLogLog] = [:]
        let prefix = LikePattern.prefix(app + "/")
        for (subject, registers) in try await rows("""
            SELECT subject, registers FROM sketch WHERE kind = 'adoption' AND subject LIKE \(prefix) AND hour >= \(sinceHour)
            """, as: (String, String).self) {
            guard subject.hasPrefix(app + "/"), let sketch = HyperLogLog(base64: registers) else { continue }
            out[String(subject.dropFirst(app.count + 1)), default: HyperLogLog()].merge(sketch)
        }
        return out
    }

    @discardableResult
    public func pruneHealth(now: Date) async throws -> Int {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        let sketches = try await all("""
            DELETE FROM sketch WHERE (kind = 'adoption' AND hour < \(hour - AdoptionKey.hoursKept)) OR (kind = 'checks' AND hour < \(hour - 2))
            RETURNING hour
            """, as: Int64.self).count
        let hours = try await all("DELETE FROM task_hour WHERE hour < \(hour - Int64(ReleaseHealth.maxHours)) RETURNING hour", as: Int64.self).count
        return sketches + hours
    }

    public func rampStep(task id: Int64, expecting done: Int, pause reason: String?, baseline: RampPlan.Baseline?, now: Date) async throws -> TaskRecord? {
        do {
            return try await change(by: .courier, "task.ramp", subject: String(id)) { c in
                var t = try await lockedTask(id, on: c)
                guard let detail = try t.rampMove(expecting: done, pause: reason, baseline: baseline, from: try await state(t, on: c),
                                                  rules: try await approvalRules(on: c), now: now) else { throw RampStepNotDue() }
                try await dropAdmissionsUnlessOpenWindow(&t, on: c)
                try await update(t, on: c)
                try await refreshPackageStatus(t.packageId, on: c)
                return (t, detail)
            }
        } catch is RampStepNotDue { return nil }
    }

    // MARK: Revoked versions and the webhook (SPEC §5)

    public func revoke(_ appId: String, _ version: String, reason: String, by actor: ActingUser) async throws -> Revocation {
        try await change(by: actor, "package.revoke", subject: "\(version) of \(appId)") { c in
            guard let pid = try await all("SELECT id FROM package WHERE app_id = \(appId) AND version = \(version) FOR UPDATE", as: Int64.self, on: c).first else {
                throw NotFound.package(appId, version)
            }
            if !(try await all("SELECT package_id FROM revocation WHERE package_id = \(pid)", as: Int64.self, on: c)).isEmpty {
                throw Conflict("\(appId) \(version) is already revoked.")
            }
            let tasks = try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE package_id = \(pid) ORDER BY id FOR UPDATE", on: c)
            guard tasks.contains(where: { !$0.neverReleased }) else {
                throw Conflict("\(appId) \(version) was never released: there is nothing to revoke (delete nothing; it is offered to nobody).")
            }
            var detail = ["app": appId, "version": version, "reason": reason]
            for var t in tasks where !t.taskStatus.hasEnded {
                _ = try t.operate(.finish, from: try await state(t, on: c), rules: nil, by: actor)
                try await dropAdmissionsUnlessOpenWindow(&t, on: c)
                try await update(t, on: c)
                detail["finished"] = String(t.id ?? 0)
            }
            try await refreshPackageStatus(pid, on: c)
            let r = Revocation(packageId: pid, appId: appId, version: version, reason: reason, revokedBy: actor.name, revokedAt: Date())
            try await c.query("""
                INSERT INTO revocation (package_id, app_id, version, reason, revoked_by, revoked_at)
                VALUES (\(pid), \(appId), \(version), \(reason), \(actor.name), \(r.revokedAt))
                """, logger: logger)
            return (r, detail)
        }
    }

    public func revocations() async throws -> [Int64: Revocation] {
        var out: [Int64: Revocation] = [:]
        for (pid, app, version, reason, by, at) in try await rows("SELECT package_id, app_id, version, reason, revoked_by, revoked_at FROM revocation",
                                                                 as: (Int64, String, String, String, String, Date).self) {
            out[pid] = Revocation(packageId: pid, appId: app, version: version, reason: reason, revokedBy: by, revokedAt: at)
        }
        return out
    }

    public func webhook() async throws -> Webhook? {
        try await rows("SELECT url, secret, set_by, set_at FROM webhook WHERE id = 1", as: (String, String, String, Date).self)
            .first.map { Webhook(url: $0.0, secret: $0.1, setBy: $0.2, setAt: $0.3) }
    }

    public func setWebhook(url: String?, secret: String, by actor: ActingUser) async throws -> Webhook? {
        try await change(by: actor, "settings.webhook", subject: "settings", catalogue: false) { c in
            try await c.query("DELETE FROM webhook", logger: logger)
            guard let url else { return (nil, Webhook.audited(nil)) }
            let w = Webhook(url: url, secret: secret, setBy: actor.name, setAt: Date())
            try await c.query("INSERT INTO webhook (id, url, secret, set_by, set_at) VALUES (1, \(url), \(secret), \(actor.name), \(w.setAt))",
                              logger: logger)
            return (w, Webhook.audited(url))
        }
    }

    @discardableResult
    public func pruneEventsSeen(now: Date, batch: Int) async throws -> Int {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        var removed = 0
        while true {
            let n = try await all("""
                DELETE FROM event_seen WHERE ctid IN (SELECT ctid FROM event_seen WHERE hour < \(hour) LIMIT \(Int64(batch))) RETURNING hour
                """, as: Int64.self).count
            removed += n
            if n < batch { return removed }
        }
    }

    public func eventCounts(task: Int64) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for (event, count) in try await rows("SELECT event, count FROM task_event WHERE task_id = \(task)", as: (String, Int64).self) {
            counts[event] = Int(count)
        }
        return counts
    }
}

/// Reviewer approval on PostgreSQL: the settings row and the task row are locked by the
/// writes that change them.
extension PostgresStore: ApprovalStore {
    public func setUpdateReqRate(_ seconds: Int, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.updateReqRate", subject: "settings") { c in
            var s = try await settings(on: c, lock: true)
            let before = s.updateReqRate
            s.updateReqRate = seconds
            try await save(s, on: c)
            return (s, ["before": String(before), "after": String(seconds)])
        }
    }

    public func setApprovalRules(official: Bool, gray: Bool, by actor: ActingUser) async throws -> SettingsRecord {
        try await change(by: actor, "settings.approval", subject: "settings") { c in
            var s = try await settings(on: c, lock: true)
            let before = "official=\(s.officialNeedsApproval) gray=\(s.grayNeedsApproval)"
            s.officialNeedsApproval = official
            s.grayNeedsApproval = gray
            try await save(s, on: c)
            return (s, ["before": before, "after": "official=\(official) gray=\(gray)"])
        }
    }

    public func decide(task id: Int64, approve: Bool, comment: String, by actor: ActingUser) async throws -> TaskRecord {
        try await change(by: actor, approve ? "task.approve" : "task.reject", subject: String(id)) { c in
            var t = try await lockedTask(id, on: c)
            let detail = try t.decide(approve: approve, comment: comment, from: try await state(t, on: c), by: actor)
            try await dropAdmissionsUnlessOpenWindow(&t, on: c)
            try await update(t, on: c)
            try await refreshPackageStatus(t.packageId, on: c)
            return (t, detail)
        }
    }

    public func countAwaitingApproval() async throws -> Int {
        Int(try await all("SELECT COUNT(*) FROM task WHERE approval = 'awaiting'", as: Int64.self).first ?? 0)
    }

    public func recentlyDecided(limit: Int) async throws -> [TaskRecord] {
        try await tasks("""
            SELECT \(unescaped: Self.taskColumns) FROM task WHERE approval IN ('approved', 'rejected', 'withdrawn')
            ORDER BY COALESCE(decided_at, requested_at) DESC NULLS LAST, id DESC LIMIT \(Int64(limit))
            """)
    }

    public func tasksAwaitingApproval() async throws -> [TaskRecord] {
        try await tasks("SELECT \(unescaped: Self.taskColumns) FROM task WHERE approval = 'awaiting' ORDER BY requested_at NULLS FIRST, id")
    }
}
