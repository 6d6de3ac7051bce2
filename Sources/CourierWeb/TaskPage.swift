import CourierCore
import CourierStore
import Foundation

/// A release task: what it releases to whom, in plain words, what clients reported, and the
/// operations its state allows.
struct TaskPage {
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

    init(_ t: TaskRecord, app: AppRecord, package p: PackageRecord, whitelistNames: [Int64: String], events: [String: Int], admitted: Int,
         history: [AuditRecord], user: UserRecord, failure: FormFailure, chrome: Chrome) {
        self.chrome = chrome
        let id = t.id ?? 0
        self.id = id
        appId = t.appId
        appName = app.name
        version = t.version
        typeLabel = t.type == "official" ? "Official release" : "Grayscale release"
        statusLabel = t.rolledBack ? "Rolled back" : p.status.label
        statusKey = p.status.rawValue
        targeting = Self.plainWords(t, range: p.range, whitelistNames: whitelistNames)
        descriptionHtml = Markdown.html(t.descriptionMarkdown)   // cmark's safe mode: no raw HTML, no javascript: links
        self.admitted = t.mode == "timeWindow" ? "\(admitted) of \(t.userCount ?? 0) devices admitted" : nil
        self.events = events.sorted { $0.key < $1.key }.map { Count(event: $0.key, count: $0.value) }
        self.history = [Step(when: displayDate.string(from: t.createdAt), who: t.createdBy, what: "created")]
            + history.map { Step(when: String($0.at.prefix(16)).replacingOccurrences(of: "T", with: " "), who: $0.user,
                                  what: String($0.action.dropFirst(5))) }
        let status = t.taskStatus
        var ops: [(String, String, String)] = []
        if user.role.may(.editReleases) {
            if status == .releasing { ops.append(("pause", "Pause", "Pause task \(id)? Clients that have not updated stop getting \(t.version).")) }
            if status == .paused { ops.append(("resume", "Resume", "Resume task \(id)?")) }
            if t.type == "gray", status != .finished { ops.append(("promote", "Promote to official", "Release \(t.version) to every client in range?")) }
            if status != .finished { ops.append(("finish", "Finish", "Finish task \(id)? It cannot be resumed.")) }
            if t.type == "official", !t.rolledBack {
                ops.append(("rollback", "Roll back", "Roll back \(t.version)? Clients that have it are told to go back to the previous official version."))
            }
            if status == .finished { ops.append(("delete", "Delete", "Delete task \(id)?")) }
        }
        operations = ops.map { Operation(name: $0.0, label: $0.1, confirm: $0.2, action: Route.taskOperation.path(String(id), $0.0), id: "op-\($0.0)") }
        percentage = t.mode == "percentage" && status != .finished && user.role.may(.editReleases) ? String(format: "%g", t.percentage ?? 0) : nil
        percentageAction = Route.taskOperation.path(String(id), "percentage")
        errors = failure.fields
        formError = failure.formError
        createdBy = t.createdBy
        createdAt = displayDate.string(from: t.createdAt)
        appURL = Route.app.path(t.appId)
        packageURL = Route.package.path(t.appId, t.version)
    }

    /// "Android 10.0 and up, users on whitelist beta, city in Hangzhou".
    static func plainWords(_ t: TaskRecord, range: ClientRange, whitelistNames: [Int64: String]) -> String {
        func bounds(_ name: String, _ b: ClientRange.Bounds?) -> String? {
            guard let b else { return nil }
            return b.max.map { "\(name) \(b.min) to \($0)" } ?? "\(name) \(b.min) and up"
        }
        var parts = [bounds("Android", range.android), bounds("iOS", range.ios)].compactMap { $0 }
        switch t.kind {
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
