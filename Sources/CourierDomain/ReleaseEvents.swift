import CourierCore
import CourierStore
import Foundation

/// What the webhook is told (SPEC §5): a task paused by its health gate, a task that waits for
/// a reviewer, a release rolled back, a version revoked.
public enum ReleaseEvent: Sendable, Equatable {
    case pausedByGate(task: Int64, appId: String, version: String, reason: String)
    case awaitingApproval(task: Int64, appId: String, version: String, what: String)
    case rolledBack(task: Int64, appId: String, version: String, by: String)
    case versionRevoked(appId: String, version: String, reason: String, by: String)

    public var name: String {
        switch self {
        case .pausedByGate: "task.pausedByHealthGate"
        case .awaitingApproval: "task.awaitingApproval"
        case .rolledBack: "task.rolledBack"
        case .versionRevoked: "version.revoked"
        }
    }

    /// The JSON body's fields besides `event` and `at`.
    public var fields: [String: String] {
        switch self {
        case .pausedByGate(let t, let app, let v, let reason): ["task": String(t), "app": app, "version": v, "reason": reason, "by": "courier"]
        case .awaitingApproval(let t, let app, let v, let what): ["task": String(t), "app": app, "version": v, "awaits": what]
        case .rolledBack(let t, let app, let v, let by): ["task": String(t), "app": app, "version": v, "by": by]
        case .versionRevoked(let app, let v, let reason, let by): ["app": app, "version": v, "reason": reason, "by": by]
        }
    }

    static func awaiting(_ t: TaskRecord) -> ReleaseEvent {
        .awaitingApproval(task: t.id ?? 0, appId: t.appId, version: t.version, what: t.approvalFor)
    }
}

/// Takes release events without waiting (the webhook sender queues them).
public protocol ReleaseEventSink: Sendable {
    func send(_ event: ReleaseEvent)
}

extension Actions {
    func notify(_ event: ReleaseEvent) { events?.send(event) }

    /// Tells the webhook when a change left the task waiting for a reviewer that was not before.
    func notifyIfAwaiting(_ after: TaskRecord, before: ApprovalState = .none) {
        if after.approvalState == .awaiting, before != .awaiting { notify(ReleaseEvent.awaiting(after)) }
    }
}
