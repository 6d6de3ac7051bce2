import CourierCore
import CourierStore
import Foundation

/// A link to a release task with what a person needs to recognise it: its kind, to whom, its
/// state, and for a decided or waiting approval who decided and why.
struct TaskLinkRow {
    let id: Int64
    let url: String
    let kind: String
    let statusLabel: String
    let statusKey: String
    let created: String
    /// "Rejected by rita on 2026-12-02 10:00 UTC", "Awaiting approval (asked by dev)", or nil.
    let approvalLine: String?
    let commentHtml: String?

    init(_ t: TaskRecord, whitelistNames: [Int64: String] = [:]) {
        id = t.id ?? 0
        url = Route.task.path(String(t.id ?? 0))
        kind = Self.kind(t, whitelistNames: whitelistNames)
        statusLabel = t.statusLabel
        statusKey = t.statusKey
        created = "\(displayDate.string(from: t.createdAt)) UTC by \(t.createdBy)"
        approvalLine = Self.approvalLine(t)
        commentHtml = t.decisionComment.isEmpty ? nil : Markdown.html(t.decisionComment)
    }

    /// "Grayscale · 10 % of devices", "Official".
    static func kind(_ t: TaskRecord, whitelistNames: [Int64: String] = [:]) -> String {
        guard let kind = try? t.storedKind() else { return "Cannot be read" }
        switch kind {
        case .official: return "Official"
        case .gray(let mode, _):
            switch mode {
            case .percentage(let p): return String(format: "Grayscale · %g %% of devices", p)
            case .timeWindow(let end, let count): return "Grayscale · first \(count) devices until \(displayDate.string(from: end)) UTC"
            case .whitelist(let ids):
                return "Grayscale · whitelist " + ids.map { whitelistNames[$0] ?? "#\($0)" }.joined(separator: ", ")
            }
        }
    }

    static func approvalLine(_ t: TaskRecord) -> String? {
        let what = t.approvalFor == "promotion" ? "Promotion to official" : t.approvalFor == "widening" ? "Wider share" : "Release"
        func on(_ d: Date?) -> String { d.map { " on \(displayDate.string(from: $0)) UTC" } ?? "" }
        switch t.approval {
        case "awaiting": return "\(what) awaiting approval (asked by \(t.requestedBy ?? t.createdBy)\(on(t.requestedAt)))"
        case "rejected": return "\(what) rejected by \(t.decidedBy ?? "?")\(on(t.decidedAt))"
        case "approved": return "\(what) approved by \(t.decidedBy ?? "?")\(on(t.decidedAt))"
        case "withdrawn": return "\(what) withdrawn before a reviewer decided"
        default: return nil
        }
    }
}

/// A label and its value (a package's settings, in a list of facts).
struct Fact {
    let label: String
    let value: String
}

/// What a reviewer needs beside a request: the package's settings, what the app offers now,
/// other requests that compete with this one, and the package's main page.
struct ReviewFacts {
    struct Live {
        let label: String
        let url: String
    }

    let settings: [Fact]
    let mainPageURL: String?
    let liveOfficial: Live?
    let runningGray: [Live]
    let warnings: [String]
    let hasWarnings: Bool
    /// What approving (or, once decided, this task) does for clients, in a sentence.
    let effect: String

    init(_ t: TaskRecord, package p: PackageRecord, releases: AppReleases, services: Services) {
        settings = Self.settings(of: p)
        let share = TaskLinkRow.kind(t).replacingOccurrences(of: "Grayscale · ", with: "")
        let verb = t.approval == "awaiting" ? "Approving" : "This task"
        let earlier = releases.tasks.filter { $0.offersOfficially && $0.packageVersion < t.packageVersion }.max { $0.packageVersion < $1.packageVersion }
        effect = switch (t.approvalFor, t.type) {
        case ("promotion", _) where t.approval == "awaiting":
            "Approving makes \(t.version) an official release: every client in the package's range gets it, not only the \(share) it reaches now."
        case ("widening", _) where t.approval == "awaiting": "Approving offers \(t.version) to the wider share: \(share)."
        case _ where t.rolledBack:
            "Rolled back: \(t.version) is offered to no client; " + (earlier.map { "clients that have it are told to go back to \($0.version)." }
                ?? "no earlier official version exists, so clients that have it keep it.")
        case _ where t.neverReleased && t.approval != "awaiting": "Never released: no client was offered \(t.version) by this task."
        case _ where t.taskStatus == .paused: "Paused: \(t.version) is offered to no further client until the task is resumed."
        case (_, "gray") where t.taskStatus == .finished: "Finished: \(t.version) is no longer offered as a grayscale release."
        case (_, "official"): "\(verb) offers \(t.version) to every client in the package's range."
        default: "\(verb) offers \(t.version) as a grayscale release to \(share)."
        }
        mainPageURL = p.mainUrl.map { services.contentLink(Route.fallback.path(p.appId, p.version, String($0.dropFirst()))) }
        let official = releases.liveOfficial
        liveOfficial = official.map { Live(label: "\($0.version) (task \($0.id ?? 0))", url: Route.task.path(String($0.id ?? 0))) }
        runningGray = releases.runningGray.filter { $0.id != t.id }.map {
            Live(label: "\($0.version): \(TaskLinkRow.kind($0).lowercased()), \($0.statusLabel.lowercased()) (task \($0.id ?? 0))",
                 url: Route.task.path(String($0.id ?? 0)))
        }
        var warnings: [String] = []
        if t.approval == "awaiting" {
            let official = t.type == "official" || t.approvalFor == "promotion"
            for other in releases.awaitingReviewer where other.id != t.id {
                warnings.append("Task \(other.id ?? 0) (\(Self.request(other))) also waits for a reviewer.")
                let otherOfficial = other.type == "official" || other.approvalFor == "promotion"
                if official, otherOfficial {
                    let higher = other.packageVersion > t.packageVersion ? other : t
                    warnings.append("If both are approved, clients in range get \(higher.version), the higher version.")
                }
            }
            if official, let live = releases.liveOfficial, live.id != t.id, live.packageVersion > t.packageVersion {
                warnings.append("\(t.version) is below \(live.version), the official version clients get now: approving it changes nothing "
                                + "for clients that have \(live.version) and offers \(t.version) only to clients below it.")
            }
        }
        self.warnings = warnings
        hasWarnings = !warnings.isEmpty
    }

    /// "promotion to official of 1.0.0.1", "official release of 1.0.0.4".
    static func request(_ t: TaskRecord) -> String {
        switch t.approvalFor {
        case "promotion": "promotion to official of \(t.version)"
        case "widening": "wider grayscale release of \(t.version)"
        default: "\(t.type == "official" ? "official" : "grayscale") release of \(t.version)"
        }
    }

    /// A package's settings as a reviewer reads them.
    static func settings(of p: PackageRecord) -> [Fact] {
        func range(_ min: String?, _ max: String?) -> String { min.map { "\($0) – \(max ?? "any later version")" } ?? "not targeted" }
        return [
            Fact(label: "Android", value: range(p.androidMin, p.androidMax)),
            Fact(label: "iOS", value: range(p.iosMin, p.iosMax)),
            Fact(label: "Main entrance", value: p.mainUrl ?? "—"),
            Fact(label: "Download policy", value: p.downloadPolicy == .all ? "Any network" : "Wi-Fi only"),
            Fact(label: "Install policy", value: p.installPolicy == .preload ? "Preload (install when downloaded)" : "Lazy (install when first opened)"),
            Fact(label: "Extended info", value: p.extendInfo == "{}" ? "—" : p.extendInfo),
        ]
    }
}
