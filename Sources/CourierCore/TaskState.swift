/// A release task's life (SPEC §5, §7) as one pure state machine: which operations a task
/// allows, for whom, why not, and what each one leaves behind. The store enforces it inside
/// the write's transaction; the task page draws its buttons from it.

/// `official` or `gray`, as stored.
public enum TaskType: String, CaseIterable, Sendable {
    case official, gray
}

/// How a grayscale task chooses its clients, by name (`ReleaseTask.Mode` carries the values).
public enum ModeName: String, CaseIterable, Sendable {
    case whitelist, timeWindow, percentage
}

/// The reviewer's part (SPEC §7); `none` when no approval was asked for.
public enum ApprovalState: String, CaseIterable, Sendable {
    case none = "", awaiting, approved, rejected, withdrawn
    /// A decision was made (or the request withdrawn): the latest decisions list it.
    public static let decided: [ApprovalState] = [.approved, .rejected, .withdrawn]
}

/// What awaits (or awaited) a reviewer: the task's own release, a wider share of an approved
/// grayscale task, or its promotion to official.
public enum ApprovalSubject: String, CaseIterable, Sendable {
    case none = "", release, widening, promotion
}

/// Everything that can happen to a task after it is created.
public enum TaskOperation: String, CaseIterable, Sendable {
    case pause, resume, finish, promote, rollback, delete, approve, reject, changePercentage

    /// The operations a task's `/operation` route takes by name (SPEC §8).
    public static let routed: [TaskOperation] = [.pause, .resume, .finish, .promote, .rollback]
    public init?(routed name: String) {
        guard let op = TaskOperation(rawValue: name), Self.routed.contains(op) else { return nil }
        self = op
    }

    /// The permission it needs (SPEC §7).
    public var permission: Permission { self == .approve || self == .reject ? .approveReleases : .editReleases }
}

/// Which releases wait for a reviewer (the settings' approval rules).
public struct ApprovalRules: Sendable, Equatable {
    public var official: Bool
    public var gray: Bool
    public init(official: Bool, gray: Bool) { self.official = official; self.gray = gray }

    /// Does a new task wait? Official ones when official releases need a reviewer; grayscale
    /// ones when grayscale releases do, and a grayscale release to 100 % of devices (it reaches
    /// everyone an official one would) whenever official ones do.
    public func newTaskWaits(_ kind: ReleaseTask.Kind) -> Bool {
        switch kind {
        case .official: return official
        case .gray(let mode, _):
            if case .percentage(let p) = mode, p >= 100 { return gray || official }
            return gray
        }
    }
}

/// Why an operation is refused.
public enum TaskRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The task's state does not allow it (a conflict: 409).
    case state(String)
    /// The person may not (their role, or their own request): 403.
    case person(String)
    public var description: String { switch self { case .state(let s), .person(let s): s } }
}

/// The parts of a task its life depends on.
public struct TaskState: Sendable, Equatable {
    public var type: TaskType
    public var mode: ModeName?
    public var status: ReleaseTask.Status
    public var rolledBack: Bool
    public var approval: ApprovalState
    public var approvalFor: ApprovalSubject
    /// Why the stored task cannot be read, or nil: such a task can only be ended (promoting it
    /// would drop what cannot be read and release to everyone).
    public var unreadable: String?

    public init(type: TaskType, mode: ModeName? = nil, status: ReleaseTask.Status = .releasing, rolledBack: Bool = false,
                approval: ApprovalState = .none, approvalFor: ApprovalSubject = .none, unreadable: String? = nil) {
        self.type = type; self.mode = mode; self.status = status; self.rolledBack = rolledBack
        self.approval = approval; self.approvalFor = approvalFor; self.unreadable = unreadable
    }

    /// It asked for approval of its own release and did not get it (waiting, rejected or
    /// withdrawn): it never reached a client.
    public var neverReleased: Bool { approvalFor == .release && approval != .approved }
    /// A wider share waits for a reviewer.
    public var wideningWaits: Bool { approval == .awaiting && approvalFor == .widening }
    public var promotionWaits: Bool { approval == .awaiting && approvalFor == .promotion }

    /// Why `op` is refused now, or nil when it is allowed. With `role`, the person's permission
    /// is checked too; `ownRequest` says they created the task or asked for its approval (they
    /// may not decide on it).
    public func refusal(_ op: TaskOperation, role: Role? = nil, ownRequest: Bool = false) -> TaskRefusal? {
        if let role, !role.may(op.permission) {
            return .person(op.permission == .approveReleases ? "Only a reviewer or an administrator may decide on a release."
                                                             : "Your role may not change release tasks.")
        }
        if let unreadable, !(op == .finish || op == .delete || op == .reject) {
            return .state("it cannot be read by this version of Courier (\(unreadable)); it can only be "
                          + (op == .approve ? "rejected or finished." : "finished."))
        }
        switch op {
        case .pause:
            return status == .releasing ? nil : .state("only a releasing task can be paused.")
        case .resume:
            guard status == .paused else { return .state("only a paused task can be resumed.") }
            return wideningWaits ? .state("it was widened and waits for a reviewer; it can be resumed once they approve.") : nil
        case .finish:
            return status.hasEnded ? .state("it has already ended.") : nil
        case .promote:
            guard type == .gray, !status.hasEnded else { return .state("only an unfinished grayscale task can be promoted.") }
            guard status != .awaitingApproval else { return .state("it can be promoted once a reviewer approves it.") }
            return approval == .awaiting ? .state("its promotion already awaits a reviewer.") : nil
        case .rollback:
            guard type == .official, !rolledBack, !neverReleased, [.releasing, .paused, .finished].contains(status) else {
                return .state("only an official release can be rolled back, once.")
            }
            return nil
        case .delete:
            return status.hasEnded ? nil : .state("only a finished or rejected task can be deleted; finish it first.")
        case .approve, .reject:
            guard approval == .awaiting else {
                return .state("it is not awaiting approval" + (approval == .none ? "." : " (it was \(approval.rawValue))."))
            }
            return ownRequest ? .person("you created it or asked for its approval: another reviewer must decide.") : nil
        case .changePercentage:
            guard mode == .percentage, [.releasing, .paused].contains(status) || (status == .awaitingApproval && approvalFor == .widening) else {
                return .state("only an unfinished percentage task takes a new percentage.")
            }
            return nil
        }
    }

    /// Marks the task as waiting for a reviewer: its own release (not offered until approved),
    /// a wider share (not offered either; a paused task stays paused) or its promotion (the
    /// grayscale release goes on).
    public mutating func requestApproval(_ subject: ApprovalSubject) {
        approval = .awaiting
        approvalFor = subject
        switch subject {
        case .promotion, .none: break
        case .widening where status == .paused: break
        case .widening, .release: status = .awaitingApproval
        }
    }

    /// The state after `op`, which `refusal(op)` allowed. `rules` decide whether a promotion
    /// waits for a reviewer; no other operation needs them (without them, a promotion waits).
    public func after(_ op: TaskOperation, rules: ApprovalRules? = nil) -> TaskState {
        var s = self
        switch op {
        case .pause: s.status = .paused
        case .resume: s.status = .releasing
        case .finish:
            s.status = .finished
            if approval == .awaiting { s.approval = .withdrawn }
        case .promote:
            if rules?.official ?? true { s.requestApproval(.promotion) } else { s.type = .official; s.mode = nil; s.status = .releasing }
        case .rollback:
            s.status = .finished
            s.rolledBack = true
        case .delete, .changePercentage: break
        case .approve:
            s.approval = .approved
            // A promotion leaves a paused task paused (resuming is its owner's step); a widening
            // asked for while paused leaves it paused too.
            if approvalFor == .promotion { s.type = .official; s.mode = nil } else if status == .awaitingApproval { s.status = .releasing }
        case .reject:
            s.approval = .rejected
            if approvalFor != .promotion { s.status = .rejected }   // a refused promotion: the grayscale goes on
        }
        return s
    }

    /// Does widening it (a higher percentage, values added to its lists) go back to a reviewer?
    /// For an unfinished grayscale task while grayscale releases need approval, whatever its
    /// history: an approval is of what the reviewer saw, not a licence for more.
    public func wideningNeedsReviewer(_ rules: ApprovalRules) -> Bool {
        type == .gray && !status.hasEnded && rules.gray
    }
}

/// A package has one unfinished task at a time (its status comes from it; a second would race
/// the first for the same clients).
public enum UnfinishedTaskRule {
    /// Refuses a new task for `app` `version` while task `unfinished` has not ended.
    public static func check(app: String, version: String, unfinished: Int64?) throws(Conflict) {
        if let unfinished {
            throw Conflict("Package \(app) \(version) already has an unfinished task (\(unfinished)); finish it first.")
        }
    }

    /// The same, when a stored constraint caught it (the task is not known by then).
    public static let breached = Conflict("This package already has an unfinished task; finish it first.")
}
