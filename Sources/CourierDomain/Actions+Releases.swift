import CourierCore
import CourierStore
import Foundation

/// Whitelists and release tasks (SPEC §5): the same actions for the console and the API.
extension Actions {
    /// Values pasted or uploaded: comma or newline separated, trimmed, empties and duplicates dropped.
    /// Values as pasted: one per line, or comma-separated too except for expressions (a comma
    /// belongs to `{1,3}`).
    public static func parseValues(_ text: String, kind: String) -> Set<String> { Set(parseValueList(text, kind: kind)) }

    /// The values as pasted, duplicates included (to say how many were dropped).
    public static func parseValueList(_ text: String, kind: String) -> [String] {
        let commas = kind != Whitelist.Kind.regex.rawValue
        // isNewline: a browser sends "\r\n", which Swift reads as one Character.
        return text.split(whereSeparator: { (commas && $0 == ",") || $0.isNewline }).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    public static let maxWhitelistValues = 100_000

    static func checkValues(_ kind: Whitelist.Kind, _ values: Set<String>) throws {
        guard values.count <= maxWhitelistValues else {
            throw FieldError("values", "A whitelist holds at most \(maxWhitelistValues) values; this one would hold \(values.count).")
        }
        if let long = values.first(where: { $0.utf8.count > 256 }) {
            throw FieldError("values", "“\(long.prefix(40))…” is longer than 256 characters.")
        }
        _ = try Whitelist(id: 0, name: "", kind: kind, values: values)   // compiles a regex list
    }

    public func createWhitelist(by actor: ActingUser, name: String, kind: String, values: Set<String>) async throws -> WhitelistRecord {
        try actor.require(.editReleases)
        var errors = FieldErrors()
        let name = name.trimmingCharacters(in: .whitespaces)
        if name.isEmpty || name.count > 64 { errors.append(FieldError("name", "The whitelist name must be 1–64 characters.")) }
        guard let kind = Whitelist.Kind(rawValue: kind) else {
            errors.append(FieldError("kind", "Choose what the whitelist lists: user IDs, device IDs or user-ID regular expressions."))
            throw errors
        }
        do { try Self.checkValues(kind, values) } catch let e as FieldError { errors.append(e) }
        guard errors.isEmpty else { throw errors }
        return try await store.createWhitelist(name: name, kind: kind, values: values, by: actor)
    }

    /// Adds values; answers how many were new and which approved tasks wait for a reviewer again.
    public func addWhitelistValues(by actor: ActingUser, id: Int64, values: Set<String>) async throws -> (added: Int, awaitingApproval: [Int64]) {
        try actor.require(.editReleases)
        guard !values.isEmpty else { throw FieldError("values", "Paste or upload at least one value.") }
        let added = try await store.addWhitelistValues(id, values, by: actor) { record, all in
            try Self.checkValues(Whitelist.Kind(rawValue: record.kind) ?? .user, all)
        }
        for task in try await store.tasks(ids: added.awaitingApproval).values.sorted(by: { ($0.id ?? 0) < ($1.id ?? 0) }) { notifyIfAwaiting(task) }
        return added
    }

    public func removeWhitelistValues(by actor: ActingUser, id: Int64, values: Set<String>) async throws -> Int {
        try actor.require(.editReleases)
        guard !values.isEmpty else { throw FieldError("remove", "List the values to remove.") }
        return try await store.removeWhitelistValues(id, values, by: actor)
    }

    public func deleteWhitelist(by actor: ActingUser, id: Int64) async throws {
        try actor.require(.editReleases)
        try await store.deleteWhitelist(id, by: actor)
    }

    /// Creates a task for a package version (SPEC §5).
    public func createTask(by actor: ActingUser, appId: String, version: String, draft: TaskDraft, now: Date = Date()) async throws -> TaskRecord {
        try actor.require(.editReleases)
        guard let package = try await store.package(appId, version) else {
            throw NotFound.package(appId, version)
        }
        let known = Set(try await store.whitelistSummaries().compactMap { $0.0.id })
        var errors = FieldErrors()
        var kind: ReleaseTask.Kind?
        do { kind = try draft.validate(now: now, whitelists: known) } catch { for e in error.errors { errors.append(e) } }
        var ramp: RampPlan?
        do { ramp = try draft.validateRamp(kind, now: now) } catch { for e in error.errors { errors.append(e) } }
        guard errors.isEmpty, let kind else { throw errors }
        var record = TaskRecord(package: package, kind: kind, description: draft.description, createdBy: actor.name)
        record.ramp = ramp?.json ?? ""
        let created = try await store.createTask(record, by: actor)
        notifyIfAwaiting(created)
        return created
    }

    /// What the batch release did for one app.
    public struct BatchOutcome: Sendable {
        public let appId: String
        public let version: String?
        public let task: TaskRecord?
        public let error: String?
    }

    /// At most this many apps in one batch release.
    public static let maxBatch = 200

    /// The same task for the newest version of each app (SPEC §5, batch release). The task's
    /// settings are checked once first (their errors belong to the form); then each app is
    /// tried on its own, and one failing does not stop the others.
    public func batchRelease(by actor: ActingUser, appIds: [String], draft: TaskDraft, now: Date = Date()) async throws -> [BatchOutcome] {
        try actor.require(.editReleases)
        var errors = FieldErrors()
        let ids = Array(Set(appIds.filter { !$0.isEmpty })).sorted()
        if ids.isEmpty { errors.append(FieldError("apps", "Choose at least one app.")) }
        if ids.count > Self.maxBatch { errors.append(FieldError("apps", "Choose at most \(Self.maxBatch) apps at once.")) }
        let known = Set(try await store.whitelistSummaries().compactMap { $0.0.id })
        var kind: ReleaseTask.Kind?
        do { kind = try draft.validate(now: now, whitelists: known) } catch { for e in error.errors { errors.append(e) } }
        do { _ = try draft.validateRamp(kind, now: now) } catch { for e in error.errors { errors.append(e) } }
        guard errors.isEmpty else { throw errors }
        var outcomes: [BatchOutcome] = []
        for id in ids {
            var version: String?
            do {
                guard let newest = try await store.packages(of: id).first else {
                    throw (try? AppID(validating: id)) != nil ? NotFound("App \(id) does not exist or has no packages.") : NotFound("There is no such app.")
                }
                version = newest.version
                guard [.toBeReleased, .finished, .rejected].contains(newest.status) else {
                    outcomes.append(BatchOutcome(appId: id, version: newest.version, task: nil,
                                                 error: "Its newest version is \(newest.status.label.lowercased()), not to be released or release finished."))
                    continue
                }
                let task = try await createTask(by: actor, appId: id, version: newest.version, draft: draft, now: now)
                outcomes.append(BatchOutcome(appId: id, version: newest.version, task: task, error: nil))
            } catch {
                outcomes.append(BatchOutcome(appId: id, version: version, task: nil,
                                             error: refusalMessage(error) ?? "It could not be created."))
            }
        }
        return outcomes
    }

    public func operate(by actor: ActingUser, task: Int64, _ op: TaskOperation) async throws -> TaskRecord {
        try actor.require(.editReleases)
        let before = try await store.task(task)?.approvalState ?? .none
        let t = try await store.operate(task: task, op, by: actor)
        if op == .rollback { notify(.rolledBack(task: task, appId: t.appId, version: t.version, by: actor.name)) }
        notifyIfAwaiting(t, before: before)
        return t
    }

    public func setPercentage(by actor: ActingUser, task: Int64, _ text: String) async throws -> TaskRecord {
        try actor.require(.editReleases)
        guard let p = TaskDraft.parsePercentage(text) else {
            throw FieldError("percentage", "Enter a percentage from 0.01 to 100, with at most two decimals.")
        }
        let before = try await store.task(task)?.approvalState ?? .none
        let t = try await store.setPercentage(task: task, p, by: actor)
        notifyIfAwaiting(t, before: before)
        return t
    }

    /// Finishes the time-window tasks whose end time has passed (SPEC §5: "at the end time the
    /// task finishes by itself"); answers how many.
    @discardableResult
    public func finishEndedWindows(now: Date = Date()) async throws -> Int {
        var finished = 0
        // Read row by row: one task row that does not decode (it offers nothing anyway) must not
        // stop the others' windows from ending, nor be reported every ten seconds.
        for t in try await store.allTasksStrictly().tasks
        where t.modeName == .timeWindow && !t.taskStatus.hasEnded && (t.endTime ?? .distantFuture) <= now {
            _ = try await store.operate(task: t.id ?? 0, .finish, by: .scheduler)
            finished += 1
        }
        return finished
    }

    /// Runs every ramp (SPEC §5): a releasing task whose failure rate's lower bound is above its
    /// threshold is paused, with the numbers; else its next step is taken when due. Each move is
    /// one write conditional on the steps taken so far, so a step due while the server was down
    /// runs once, whichever node or round gets to it. Answers what was done, in words.
    @discardableResult
    public func runRamps(now: Date = Date()) async throws -> [String] {
        var done: [String] = []
        var failed: [String] = []
        for t in try await store.allTasksStrictly().tasks where !t.ramp.isEmpty && t.taskStatus == .releasing && !t.isOfficial {
            guard let id = t.id, var plan = try? t.rampPlan() else { continue }
            // One task's step that cannot be taken must not stop the others' steps and gates.
            do {
                let health = ReleaseHealth(hours: try await store.healthHours(task: id))
                if plan.baselinePending == true {
                    // Resumed by a person: what was seen until now is accepted; the gate judges what comes after.
                    guard let written = try await store.rampStep(task: id, expecting: plan.done, pause: nil,
                                                                 baseline: RampPlan.Baseline(installs: health.installs, failures: health.failures),
                                                                 now: now),
                          let updated = try? written.rampPlan() else { continue }
                    plan = updated
                }
                let reason: String?
                if case .pause(let why) = HealthGate.verdict(health.since(plan.gateBaseline), threshold: plan.threshold) { reason = why } else { reason = nil }
                guard reason != nil || (plan.isDue(now: now) && t.approvalState != .awaiting) else { continue }
                if let moved = try await store.rampStep(task: id, expecting: plan.done, pause: reason, baseline: nil, now: now) {
                    if let reason { notify(.pausedByGate(task: id, appId: t.appId, version: t.version, reason: reason)) }
                    notifyIfAwaiting(moved, before: t.approvalState)   // a pause while a promotion waits is not a new wait
                    done.append("task \(id): " + (reason.map { "paused (\($0))" }
                                                  ?? "step \(plan.done + 1) of \(plan.steps.count), now \(moved.taskStatus.rawValue) at \(moved.percentage.map { RampPlan.percent($0) } ?? "-") %"))
                }
            } catch {
                failed.append("task \(id): \(error)")
            }
        }
        if !failed.isEmpty { throw RampFailures(lines: failed, done: done) }
        return done
    }

    /// Revokes a released version (SPEC §5): it is never offered again and its devices are sent
    /// back; the reason is required (it is shown on the package page and in the audit log).
    public func revoke(by actor: ActingUser, appId: String, version: String, reason: String) async throws -> Revocation {
        try actor.require(.editReleases)
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        if reason.isEmpty { throw FieldError("reason", "Say why the version is revoked: it is shown on the package page and in the audit log.") }
        if reason.count > Revocation.maxReason { throw FieldError("reason", "The reason is longer than \(Revocation.maxReason) characters.") }
        let r = try await store.revoke(appId, version, reason: reason, by: actor)
        notify(.versionRevoked(appId: appId, version: version, reason: reason, by: actor.name))
        return r
    }

    /// Sets the webhook's address (SPEC §5) with a new secret, answered once; empty removes it.
    public func setWebhook(by actor: ActingUser, url text: String) async throws -> Webhook? {
        try actor.require(.editSettings)
        let url = text.trimmingCharacters(in: .whitespaces)
        if url.isEmpty { return try await store.setWebhook(url: nil, secret: "", by: actor) }
        guard url.utf8.count <= 2048, !url.contains(where: { $0.isWhitespace || $0.isNewline }),
              let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = parsed.host, !host.isEmpty, parsed.user == nil, parsed.password == nil else {
            throw FieldError("webhookUrl", "Enter an http:// or https:// address, like https://chat.example.com/hooks/courier (no user or password in it).")
        }
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        return try await store.setWebhook(url: url, secret: secret, by: actor)
    }

    /// Ramps whose move could not be made this round (the others were made: `done`).
    public struct RampFailures: Error, CustomStringConvertible {
        public let lines: [String]
        public let done: [String]
        public var description: String { lines.joined(separator: "; ") }
    }

    /// Longest reviewer comment, in characters.
    public static let maxComment = 10_000

    /// A reviewer approves or rejects what a task waits for (SPEC §7). A rejection says why.
    public func decideTask(by actor: ActingUser, task: Int64, approve: Bool, comment: String) async throws -> TaskRecord {
        try actor.require(.approveReleases)
        let comment = comment.trimmingCharacters(in: .whitespacesAndNewlines)
        if !approve && comment.isEmpty { throw FieldError("comment", "Say why the release is rejected: the comment is shown on the task page.") }
        if comment.count > Self.maxComment { throw FieldError("comment", "The comment is longer than \(Self.maxComment) characters.") }
        return try await store.decide(task: task, approve: approve, comment: comment, by: actor)
    }

    /// Which releases wait for a reviewer's approval.
    /// `text` seconds between a device's update checks, 0–86400.
    public func setUpdateReqRate(by actor: ActingUser, _ text: String) async throws -> SettingsRecord {
        try actor.require(.editSettings)
        let range = SettingsRecord.updateReqRateRange
        guard let seconds = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(seconds) else {
            throw FieldError("updateReqRate", "Enter a whole number of seconds from \(range.lowerBound) to \(range.upperBound) (1800 is half an hour).")
        }
        return try await store.setUpdateReqRate(seconds, by: actor)
    }

    public func setApprovalRules(by actor: ActingUser, official: Bool, gray: Bool) async throws -> SettingsRecord {
        try actor.require(.editSettings)
        return try await store.setApprovalRules(official: official, gray: gray, by: actor)
    }

    public func deleteTask(by actor: ActingUser, task: Int64) async throws {
        try actor.require(.editReleases)
        try await store.deleteTask(task, by: actor)
    }
}
