import CourierCore
import Crypto
import Foundation


/// A whitelist's name and kind; its values are rows of `whitelistValue`.
public struct WhitelistRecord: Codable, Sendable {
    public init(id: Int64?, name: String, kind: String) { self.id = id; self.name = name; self.kind = kind }
    public var id: Int64?
    public var name: String
    public var kind: String
    public var createdAt = Date()
    /// Raised whenever values are added or removed: the delivery snapshot reloads only the
    /// lists whose revision moved (a list may hold 100,000 values).
    public var revision = 0
}

/// A release task as stored; `releaseTask` gives the value the decision reads.
public struct TaskRecord: Codable, Sendable {
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
    /// A percentage task's scheduled ramp (`RampPlan` as JSON), or empty.
    public var ramp = ""


    package struct StoredRule: Codable { let field: String; let op: String; let values: [String] }

    /// A task as a store reads it back (its other fields set after).
    package init(stored id: Int64?, packageId: Int64, appId: String, version: String, type: String, createdBy: String) {
        self.id = id; self.packageId = packageId; self.appId = appId; self.version = version; self.type = type; self.createdBy = createdBy
    }

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

    package static func json<T: Encodable>(_ value: T) -> String {
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

    /// Writes a state the machine gave (after an operation or a decision) into the columns.
    package mutating func apply(_ s: TaskState) {
        if s.type == .official, type != TaskType.official.rawValue { apply(.official) }
        status = s.status.rawValue
        rolledBack = s.rolledBack
        approval = s.approval.rawValue
        approvalFor = s.approvalFor.rawValue
    }

    /// Why this binary cannot read the stored task (SPEC: refuse what cannot be understood), or nil.
    public struct Unreadable: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ d: String) { description = d }
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

/// Reviewer approval (SPEC §7): settings say which releases wait; a reviewer who did not ask
/// for a release approves or rejects it, with a comment.
extension TaskRecord {
    /// Marks the task as waiting for a reviewer: the task itself (`release`: it is not offered
    /// to clients until approved), a wider share of an approved task (`widening`: not offered
    /// either until approved; rejected, it ends) or its promotion to official (the grayscale
    /// release goes on).
    package mutating func requestApproval(for subject: ApprovalSubject, by actor: ActingUser) {
        var s = state
        s.requestApproval(subject)
        apply(s)
        requestedBy = actor.name
        requestedAt = Date()
        decidedBy = nil
        decidedAt = nil
        decisionComment = ""
    }

    /// Applies a routed operation to the task, whose state as a write reads it is `before`
    /// (counting its whitelists); `rules` only for a promotion. Refuses what the state machine
    /// refuses; answers the audit detail of an approval withdrawn or asked for.
    package mutating func operate(_ op: TaskOperation, from before: TaskState, rules: ApprovalRules?, by actor: ActingUser) throws -> [String: String] {
        guard TaskOperation.routed.contains(op) else { throw Conflict("\(op.rawValue) is not a task operation of its own.") }
        if let refusal = before.refusal(op) {
            throw Conflict("Task \(id ?? 0) is \(before.status.rawValue)\(before.rolledBack ? " (rolled back)" : ""): \(refusal)")
        }
        let after = before.after(op, rules: rules)
        apply(after)
        if op == .resume, !ramp.isEmpty { restartRampClock(now: Date(), gate: true) }
        var detail: [String: String] = [:]
        if before.approval == .awaiting, after.approval == .withdrawn {
            decidedBy = actor.name   // who withdrew it, and when: the latest decisions list it
            decidedAt = Date()
            detail["approval"] = ApprovalState.withdrawn.rawValue
        }
        if after.approval == .awaiting, before.approval != .awaiting {
            requestApproval(for: after.approvalFor, by: actor)
            detail["approval"] = ApprovalState.awaiting.rawValue
        }
        return detail.merging(["status": status, "type": type, "app": appId, "version": version]) { a, _ in a }
    }

    /// A reviewer's decision on the task, whose state as a write reads it is `before`: refused
    /// to whoever asked for it (Refused) and in a state that awaits nothing (Conflict); the
    /// audit detail.
    package mutating func decide(approve: Bool, comment: String, from before: TaskState, by actor: ActingUser) throws -> [String: String] {
        let op: TaskOperation = approve ? .approve : .reject
        switch before.refusal(op, ownRequest: isOwnRequest(of: actor.name)) {
        case nil: break
        case .person(let why)?: throw Refused("Task \(id ?? 0): \(why)")
        case .state(let why)?: throw Conflict("Task \(id ?? 0): \(why)")
        }
        apply(before.after(op))
        decidedBy = actor.name
        decidedAt = Date()
        decisionComment = comment
        // What a reviewer lets out (the release, a wider share, more list values) is live from
        // now: the ramp's next step waits its whole delay from here. A promotion ends the ramp.
        if approve, !ramp.isEmpty, approvalSubject != .promotion { restartRampClock(now: Date(), gate: false) }
        return ["for": approvalFor, "requestedBy": requestedBy ?? "", "comment": comment, "status": status, "app": appId, "version": version]
    }

    /// The ramp's plan (SPEC §5); nil for none; throws when it cannot be read (it then never moves).
    public func rampPlan() throws -> RampPlan? { try RampPlan.stored(ramp) }

    /// A ramp's move on a task whose state as a write reads it is `before`: pause it by its
    /// health gate (`pause` says why, with the numbers), or take the next step that is due (a
    /// share, or the promotion, each asking a reviewer when the rules say so). Nil when there is
    /// nothing to do: another run or node took the step (`done` moved on), the task is not
    /// releasing, the step is not due, or the plan cannot be read. The audit detail.
    package mutating func rampMove(expecting done: Int, pause reason: String?, baseline: RampPlan.Baseline? = nil, from before: TaskState,
                                   rules: ApprovalRules, now: Date) throws -> [String: String]? {
        // Only a releasing grayscale percentage task ramps: one promoted or changed by hand
        // since (or unreadable) is left alone.
        guard var plan = try? rampPlan(), plan.done == done, before.status == .releasing, before.type == .gray,
              before.mode == .percentage, before.unreadable == nil else { return nil }
        let actor = ActingUser.courier
        if let baseline {
            guard plan.baselinePending == true else { return nil }
            plan.gateBaseline = baseline
            plan.baselinePending = nil
            ramp = plan.json
            return ["gateBaseline": "\(ReleaseHealth.failuresWords(baseline.failures, of: baseline.installs + baseline.failures)), accepted when the task was resumed",
                    "app": appId, "version": version]
        }
        if let reason {
            // A resume since the gate read its numbers (it asks for a new baseline): those
            // numbers include the failures the person accepted, so they pause nothing.
            guard plan.baselinePending != true else { return nil }
            // The gate runs while a reviewer is awaited too: the release goes on meanwhile.
            var detail = try operate(.pause, from: before, rules: nil, by: actor)
            detail["gate"] = reason
            return detail
        }
        guard before.approval != .awaiting, plan.isDue(now: now), let step = plan.next else { return nil }
        var detail: [String: String]
        if step.promote || ((step.percentage ?? 0) >= 100 && rules.official) {
            detail = try operate(.promote, from: before, rules: rules, by: actor)
        } else if let p = step.percentage, p > (percentage ?? 0) {
            try refusePercentageChange(before)
            detail = try setPercentage(p, from: before, rules: rules, by: actor)
        } else {
            // Raised by hand past this step already: a ramp never lowers the share.
            detail = ["skipped": "the share is already \(RampPlan.percent(percentage ?? 0)) %", "app": appId, "version": version]
        }
        plan.done += 1
        plan.since = now
        ramp = plan.json
        detail["step"] = "\(plan.done) of \(plan.steps.count): \(step.description)"
        return detail
    }

    /// A resumed or newly approved ramp counts its next step's delay from now; a resumed one's
    /// gate then judges only what comes after (a person who resumed a task the gate paused has
    /// accepted what was seen until then: the next round writes that baseline).
    package mutating func restartRampClock(now: Date, gate: Bool) {
        guard var plan = try? rampPlan() else { return }
        plan.since = now
        if gate { plan.baselinePending = true }
        ramp = plan.json
    }

    /// Refuses a new percentage for a task in `state` (not an unfinished percentage task, or one
    /// this binary cannot read).
    package func refusePercentageChange(_ state: TaskState) throws {
        if state.refusal(.changePercentage) != nil {
            throw Conflict(state.unreadable.map { "This task cannot be read by this version of Courier (\($0)); it can only be finished." }
                           ?? "Only an unfinished percentage task takes a new percentage.", field: "percentage")
        }
    }

    /// Sets a new percentage on a task in `state`: 100 % is an official release in all but name
    /// (refused while official releases need a reviewer), and an approval covers what the
    /// reviewer saw, so a wider share goes back to them. The audit detail.
    package mutating func setPercentage(_ percentage: Double, from state: TaskState, rules: ApprovalRules, by actor: ActingUser) throws -> [String: String] {
        let before = self.percentage ?? 0
        if percentage >= 100, rules.official {
            throw Conflict("100 % reaches every client, and official releases need a reviewer's approval: promote the task to official instead.",
                           field: "percentage")
        }
        self.percentage = percentage
        var detail = ["from": String(before), "to": String(percentage), "app": appId, "version": version]
        if percentage > before, state.wideningNeedsReviewer(rules) {
            guard state.approval != .awaiting else {
                throw Conflict("Task \(id ?? 0) waits for a reviewer: raise the percentage after they decide, so that they decide on what clients get.",
                               field: "percentage")
            }
            requestApproval(for: .widening, by: actor)
            detail["approval"] = ApprovalState.awaiting.rawValue
        }
        return detail
    }

    /// A task that asked for approval of its own release and did not get it (waiting, rejected,
    /// or withdrawn): it never reached a client, and clients never see it.
    public var neverReleased: Bool { approvalSubject == .release && approvalState != .approved }

    /// Who may not decide on this task: whoever created it and whoever asked for the approval.
    public func isOwnRequest(of name: String) -> Bool { name == createdBy || name == requestedBy }
}

/// A stored task that does not even decode (a column of another type or an unknown value):
/// what the delivery snapshot knows of it, to make it offer nothing rather than fail whole.
public struct UndecodableTask: Sendable {
    public let id: Int64
    public let appId: String
    public let version: String
    public let packageId: Int64
    public let why: String
    public init(id: Int64, appId: String, version: String, packageId: Int64, why: String) {
        self.id = id; self.appId = appId; self.version = version; self.packageId = packageId; self.why = why
    }
}


/// A revoked version takes no new task (it would never be offered).
package enum RevokedVersionRule {
    package static func refusal(app: String, version: String) -> String {
        "\(app) \(version) was revoked: it is never offered again. Upload it as a new version to release it."
    }
}

/// A revoked version (SPEC §5): never offered again; devices on it are sent back.
public struct Revocation: Sendable, Equatable {
    public let packageId: Int64
    public let appId: String
    public let version: String
    public let reason: String
    public let revokedBy: String
    public let revokedAt: Date
    public init(packageId: Int64, appId: String, version: String, reason: String, revokedBy: String, revokedAt: Date) {
        self.packageId = packageId; self.appId = appId; self.version = version; self.reason = reason
        self.revokedBy = revokedBy; self.revokedAt = revokedAt
    }

    public static let maxReason = 2_000
}

/// The webhook's address and signing secret (SPEC §5).
public struct Webhook: Sendable, Equatable {
    public let url: String
    public let secret: String
    public let setBy: String
    public let setAt: Date
    public init(url: String, secret: String, setBy: String, setAt: Date) { self.url = url; self.secret = secret; self.setBy = setBy; self.setAt = setAt }

    /// What the audit log says of an address: its scheme, host and port only. The path and query
    /// often carry the receiver's token, and the audit log is read by everyone who can read.
    package static func audited(_ url: String?) -> [String: String] {
        guard let url else { return ["url": ""] }
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host else { return ["url": "(set)"] }
        return ["url": "\(scheme)://\(host)\(c.port.map { ":\($0)" } ?? "")/…"]
    }
}
