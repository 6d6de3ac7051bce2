import CourierCore
import CourierStore
import Foundation

/// A release task: what it releases to whom, in plain words, what clients reported, and the
/// operations its state allows.
struct TaskPage {
    /// What the task's version changes for clients on the live official one (issue 18).
    var changes: VersionChanges?
    /// Release health by the hour, with its charts, and the ramp (SPEC §5).
    var health: HealthView?
    /// The last devices that reported a failure, each linked to the simulator, prefilled.
    var failingDevices: [FailingDevice] = [] { didSet { hasFailingDevices = !failingDevices.isEmpty } }
    var hasFailingDevices = false
    struct FailingDevice {
        let deviceId: String
        let what: String
        let at: String
        let url: String
    }
    struct Operation {
        let name: String
        let label: String
        let confirm: String
        let action: String
        let id: String
    }
    struct Count {
        let event: String
        let count: Int
        /// What a device meant by it (SPEC §4, §10), for someone who has not read the spec.
        let words: String

        init(event: String, count: Int) {
            self.event = event
            self.count = count
            words = Self.words(event)
        }

        static func words(_ event: String) -> String {
            switch event {
            case "download_ok": "Downloaded"
            case "download_failed": "Download failed"
            case "verify_failed": "Refused: the signature or a file did not verify"
            case "install_ok": "Installed"
            case "install_failed": "Install failed (a full disk, a file that could not be written)"
            case "rollback": "Rolled back to this version"
            case "patch_failed": "The patch did not apply; the full package was downloaded"
            case "trial_failed": "Given up on the device: reported broken, or opened without loading"
            case "failed": "Devices that gave this version up (never offered it again)"
            default: "Reported"
            }
        }
    }
    struct Step {
        let when: String
        let who: String
        let what: String
    }

    let chrome: Chrome
    let id: Int64
    let appId: String
    let appName: String
    let version: String
    let typeLabel: String
    let statusLabel: String
    let statusKey: String
    let targeting: String
    /// Why the task cannot be read and so offers nothing, or nil.
    let unreadable: String?
    let descriptionHtml: String
    let admitted: String?
    let events: [Count]
    let history: [Step]
    let operations: [Operation]
    let percentage: String?
    let percentageAction: String
    let errors: [String: String]
    let formError: String?
    let createdBy: String
    let createdAt: String
    let appsURL = Route.apps.path()
    let appURL: String
    let packageURL: String
    let approval: ApprovalBox?
    let comment: String
    let notice: Notice.Shown?
    /// The package's settings, what the app offers now, competing requests, its main page.
    let review: ReviewFacts

    /// The reviewer's part: what waits, who asked, who decided, when and why.
    struct ApprovalBox {
        let state: String
        let awaiting: Bool
        let headline: String
        let decidedLine: String?
        let commentHtml: String?
        /// The approve and reject form, for a reviewer who may decide.
        let canDecide: Bool
        /// Why this reviewer may not decide, when they could otherwise.
        let ownRequest: Bool
        let approveAction: String
        let rejectAction: String
        /// What rejecting does, said in its confirmation.
        let rejectEffect: String
        /// What clients get while it waits.
        let waitingLine: String
        /// The Approve button's question.
        let approveConfirm: String
    }

    init(_ t: TaskRecord, app: AppRecord, package p: PackageRecord, whitelistNames: [Int64: String], events: [String: Int], admitted: Int,
         history: [AuditRecord], user: UserRecord, failure: FormFailure, typedComment: String = "", typedPercentage: String? = nil,
         unreadable: String? = nil, releases: AppReleases, settings: SettingsRecord, services: Services, notice: Notice.Shown? = nil,
         chrome: Chrome) {
        self.chrome = chrome
        self.notice = notice
        review = ReviewFacts(t, package: p, releases: releases, whitelistNames: whitelistNames, services: services)
        let id = t.id ?? 0
        self.id = id
        appId = t.appId
        appName = app.name
        version = t.version
        typeLabel = t.isOfficial ? "Official release" : "Grayscale release"
        // The task's own state (an old task of the package is not the package's current one).
        statusLabel = unreadable != nil ? "Cannot be read"
            : t.statusLabel + (t.state.promotionWaits ? " · promotion awaiting approval" : "")
        statusKey = unreadable != nil ? "rejected" : t.statusKey
        targeting = Self.plainWords(t, range: p.range, whitelistNames: whitelistNames)
        self.unreadable = unreadable
        descriptionHtml = Markdown.html(t.descriptionMarkdown)   // cmark's safe mode: no raw HTML, no javascript: links
        self.admitted = t.modeName == .timeWindow ? "\(t.admittedCount ?? admitted) of \(t.userCount ?? 0) devices admitted" : nil
        self.events = events.sorted { $0.key < $1.key }.map { Count(event: $0.key, count: $0.value) }
        approval = Self.approvalBox(t, user: user, readable: unreadable == nil)
        comment = typedComment
        self.history = [Step(when: displayDate.string(from: t.createdAt), who: t.createdBy, what: "created")]
            + history.map { Step(when: String($0.at.prefix(16)).replacingOccurrences(of: "T", with: " "), who: $0.user,
                                  what: AuditWords.sentence($0)) }
        let status = t.taskStatus
        // The buttons are the operations the task's state machine allows this person now.
        var state = t.state
        state.unreadable = unreadable ?? state.unreadable
        func allowed(_ op: TaskOperation) -> Bool { state.refusal(op, role: user.role) == nil }
        var ops: [(String, String, String)] = []
        if allowed(.pause) { ops.append(("pause", "Pause", "Pause task \(id)? Clients that have not updated stop getting \(t.version).")) }
        if allowed(.resume) { ops.append(("resume", "Resume", "Resume task \(id)?")) }
        if allowed(.promote) {
            ops.append(settings.officialNeedsApproval
                ? ("promote", "Promote to official (will wait for a reviewer)",
                   "Ask for \(t.version) to become an official release? It will wait for a reviewer; "
                    + (status == .paused ? "the task stays paused meanwhile, and is released officially once resumed after the approval."
                                         : "the grayscale release goes on meanwhile."))
                : ("promote", "Promote to official", "Release \(t.version) to every client in range?"))
        }
        if allowed(.finish) {
            if state.unreadable == nil, status == .awaitingApproval, state.approvalFor == .release {
                ops.append(("finish", "Withdraw", "Withdraw task \(id)? It will never be released."))
            } else if state.unreadable == nil, state.wideningWaits {
                ops.append(("finish", "Finish", "Finish task \(id)? The request to widen it is withdrawn and the release ends; it cannot be resumed."))
            } else {
                ops.append(("finish", "Finish", "Finish task \(id)? It cannot be resumed."))
            }
        }
        if allowed(.rollback) {
            let question: String
            if let above = releases.officialAbove(t) {
                question = "Roll back \(t.version)? Clients that have it are offered \(above.version), the official version above it."
            } else if let earlier = releases.officialBelow(t) {
                question = "Roll back \(t.version)? Clients that have it are told to go back to \(earlier.version), the previous official version."
            } else {
                question = "Roll back \(t.version)? No earlier official version exists: devices that have \(t.version) keep it, "
                    + "and devices without it get no official version until another release."
            }
            ops.append(("rollback", "Roll back", question))
        }
        if allowed(.delete) {
            ops.append(("delete", "Delete", t.rolledBack
                ? "Delete task \(id)? Its rollback ends with it: clients that have \(t.version) are no longer told to go back."
                : "Delete task \(id)?"))
        }
        operations = ops.map { Operation(name: $0.0, label: $0.1, confirm: $0.2, action: Route.taskOperation.path(String(id), $0.0), id: "op-\($0.0)") }
        percentage = allowed(.changePercentage) ? typedPercentage ?? String(format: "%g", t.percentage ?? 0) : nil
        percentageAction = Route.taskOperation.path(String(id), "percentage")
        errors = failure.fields
        formError = failure.formError
        createdBy = t.createdBy
        createdAt = displayDate.string(from: t.createdAt)
        appURL = Route.app.path(t.appId)
        packageURL = Route.package.path(t.appId, t.version)
    }

    static func approvalBox(_ t: TaskRecord, user: UserRecord, readable: Bool = true) -> ApprovalBox? {
        guard t.approvalState != .none else { return nil }
        let what = switch t.approvalSubject {
        case .promotion: "promotion to an official release"
        case .widening: "grayscale release, widened after it was approved (a higher percentage or values added to its whitelist)"
        case .release, .none: "\(t.isOfficial ? "official" : "grayscale") release"
        }
        let asked = "\(t.requestedBy ?? t.createdBy) asked for approval of this \(what)"
            + (t.requestedAt.map { " on \(displayDate.string(from: $0)) UTC" } ?? "") + "."
        let decided: String? = switch t.approvalState {
        case .approved, .rejected:
            "\(t.approvalState == .approved ? "Approved" : "Rejected") by \(t.decidedBy ?? "?")" + (t.decidedAt.map { " on \(displayDate.string(from: $0)) UTC" } ?? "") + "."
        case .withdrawn: "The request was withdrawn: the task was finished before a reviewer decided."
        case .awaiting, .none: nil
        }
        let awaiting = t.approvalState == .awaiting
        let reviewer = user.role.may(.approveReleases)
        let own = t.isOwnRequest(of: user.name)
        var state = t.state
        if !readable { state.unreadable = state.unreadable ?? "it cannot be read" }
        let id = String(t.id ?? 0)
        return ApprovalBox(state: t.approval, awaiting: awaiting, headline: asked, decidedLine: decided,
                           commentHtml: t.decisionComment.isEmpty ? nil : Markdown.html(t.decisionComment),
                           canDecide: state.refusal(.approve, role: user.role, ownRequest: own) == nil, ownRequest: awaiting && reviewer && own,
                           approveAction: Route.taskApprove.path(id), rejectAction: Route.taskReject.path(id),
                           rejectEffect: t.approvalSubject == .promotion ? "It is not promoted; the grayscale release goes on as it is."
                               : t.approvalSubject == .widening ? "The wider share is refused and the task ends." : "It will never be released.",
                           waitingLine: t.approvalSubject == .promotion
                               ? "The grayscale release goes on as it is; clients are not offered \(t.version) officially until a reviewer approves it."
                               : "Clients are not offered this until a reviewer approves it.",
                           approveConfirm: t.taskStatus == .paused
                               ? "Approve task \(id)? The task is paused: clients get it once it is resumed."
                               : "Approve task \(id)? Clients start getting it at once.")
    }

    /// "Android 10.0 and up, users on whitelist beta, city in Hangzhou".
    static func plainWords(_ t: TaskRecord, range: ClientRange, whitelistNames: [Int64: String]) -> String {
        func bounds(_ name: String, _ b: ClientRange.Bounds?) -> String? {
            guard let b else { return nil }
            return b.max.map { "\(name) \(b.min) to \($0)" } ?? "\(name) \(b.min) and up"
        }
        var parts = [bounds("Android", range.android), bounds("iOS", range.ios)].compactMap { $0 }
        guard let kind = try? t.storedKind() else { return "nobody: this task cannot be read" }
        switch kind {
        case .official: parts.append("every client")
        case .gray(let mode, let rules):
            switch mode {
            case .whitelist(let ids):
                let names = ids.map { whitelistNames[$0] ?? "#\($0)" }
                parts.append("users on whitelist\(names.count > 1 ? "s" : "") \(names.joined(separator: " or "))")
            case .timeWindow(let end, let count):
                parts.append("the first \(count) devices that ask before \(displayDate.string(from: end)) UTC")
            case .percentage(let p): parts.append(String(format: "%g %% of devices", p))
            }
            parts += rules.map(\.description)
        }
        return parts.joined(separator: ", ")
    }
}

/// Release tasks waiting for a reviewer, oldest request first, each with what it would change;
/// then the latest decisions.
struct ApprovalsPage {
    struct Row {
        let id: Int64
        let url: String
        let appId: String
        let appURL: String
        let version: String
        let what: String
        let requestedBy: String
        let requestedAt: String
        /// The signed-in reviewer may decide on it (they did not ask for it).
        let yours: Bool
        let review: ReviewFacts?
        /// What it changes for clients on the live official version (issue 18).
        var changes: VersionChanges? = nil
    }
    let chrome: Chrome
    let rows: [Row]
    let reviewer: Bool
    let decided: [Row]
    let hasDecided: Bool

    init(_ tasks: [TaskRecord], decided: [TaskRecord], packages: [Int64: PackageRecord], releases: [String: AppReleases],
         whitelistNames: [Int64: String] = [:], changes: [Int64: VersionChanges] = [:], services: Services, user: UserRecord, chrome: Chrome) {
        self.chrome = chrome
        reviewer = user.role.may(.approveReleases)
        func row(_ t: TaskRecord, review: Bool) -> Row {
            let decidedAt = t.decidedAt ?? t.requestedAt
            return Row(id: t.id ?? 0, url: Route.task.path(String(t.id ?? 0)), appId: t.appId, appURL: Route.app.path(t.appId),
                       version: t.version,
                       what: t.approvalSubject == .promotion ? "Promotion to official"
                           : t.approvalSubject == .widening ? "Widened grayscale release" : (t.isOfficial ? "Official release" : "Grayscale release"),
                       requestedBy: review ? t.requestedBy ?? t.createdBy : Self.decision(t),
                       requestedAt: (review ? t.requestedAt : decidedAt).map { displayDate.string(from: $0) } ?? "",
                       yours: review && user.role.may(.approveReleases) && !t.isOwnRequest(of: user.name),
                       review: review ? packages[t.packageId].map {
                           ReviewFacts(t, package: $0, releases: releases[t.appId] ?? AppReleases([]), whitelistNames: whitelistNames, services: services)
                       } : nil)
        }
        rows = tasks.map { t in
            var r = row(t, review: true)
            r.changes = t.id.flatMap { changes[$0] }
            return r
        }
        self.decided = decided.map { row($0, review: false) }
        hasDecided = !decided.isEmpty
    }

    /// "Approved by rita", "Rejected by rita: comment", "Withdrawn by dev".
    static func decision(_ t: TaskRecord) -> String {
        let who = t.decidedBy ?? "?"
        switch t.approvalState {
        case .approved: return "Approved by \(who)" + (t.decisionComment.isEmpty ? "" : ": \(t.decisionComment)")
        case .rejected: return "Rejected by \(who): \(t.decisionComment)"
        case .withdrawn, .awaiting, .none: return "Withdrawn by \(who) before a decision"
        }
    }
}
