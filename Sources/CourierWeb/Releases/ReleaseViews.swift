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

    /// To whom: "10 % of devices", "whitelist beta", "every client in range".
    static func share(_ t: TaskRecord, whitelistNames: [Int64: String]) -> String {
        let k = kind(t, whitelistNames: whitelistNames)
        return k.hasPrefix("Grayscale · ") ? String(k.dropFirst("Grayscale · ".count)) : k == "Official" ? "every client in range" : k
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
        let what = t.approvalSubject == .promotion ? "Promotion to official" : t.approvalSubject == .widening ? "Wider share" : "Release"
        func on(_ d: Date?) -> String { d.map { " on \(displayDate.string(from: $0)) UTC" } ?? "" }
        switch t.approvalState {
        case .awaiting: return "\(what) awaiting approval (asked by \(t.requestedBy ?? t.createdBy)\(on(t.requestedAt)))"
        case .rejected: return "\(what) rejected by \(t.decidedBy ?? "?")\(on(t.decidedAt))"
        case .approved: return "\(what) approved by \(t.decidedBy ?? "?")\(on(t.decidedAt))"
        case .withdrawn: return "\(what) withdrawn before a reviewer decided"
        case .none: return nil
        }
    }
}

/// A label and its value (a package's settings, in a list of facts).
struct Fact {
    let label: String
    let value: String
    /// Shown as code (a path, JSON).
    var code = false

    /// The settings drawn from `PackageField.all` (all but the version, type and client range).
    static func settings(of p: PackageRecord) -> [Fact] {
        let values = p.settingValues
        return PackageField.described.map { f in
            let value = f.fact(values[f.key] ?? f.defaultValue)
            return Fact(label: f.label, value: value, code: f.choices.isEmpty && value != "—")
        }
    }
}

/// What a reviewer needs beside a request: the package's settings, what the app offers now,
/// other requests that compete with this one, and the package's main page; and for everyone,
/// what the task does for clients, in a sentence that follows `Targeting.decide` (the highest
/// version that admits a client wins; a rolled-back version sends its clients to the official
/// version above it, else below it, else nowhere).
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

    init(_ t: TaskRecord, package p: PackageRecord, releases: AppReleases, whitelistNames: [Int64: String] = [:], services: Services) {
        settings = Self.settings(of: p)
        mainPageURL = p.mainUrl.map { services.contentLink(Route.fallback.path(p.appId, p.version, String($0.dropFirst()))) }
        let official = releases.liveOfficial
        liveOfficial = official.map { Live(label: "\($0.version) (task \($0.id ?? 0))", url: Route.task.path(String($0.id ?? 0))) }
        runningGray = releases.runningGray.filter { $0.id != t.id }.map { Self.live($0, whitelistNames: whitelistNames) }
        effect = Self.effect(t, releases: releases, whitelistNames: whitelistNames)

        var warnings: [String] = []
        if t.approvalState == .awaiting {
            let official = t.isOfficial || t.approvalSubject == .promotion
            for other in releases.awaitingReviewer where other.id != t.id {
                warnings.append("Task \(other.id ?? 0) (\(Self.request(other))) also waits for a reviewer.")
                let otherOfficial = other.isOfficial || other.approvalSubject == .promotion
                if official, otherOfficial {
                    let higher = other.packageVersion > t.packageVersion ? other : t
                    warnings.append("If both are approved, clients in range get \(higher.version), the higher version.")
                }
            }
            if let above = releases.officialAbove(t) {
                warnings.append("\(t.version) is below \(above.version), the official version clients get now: clients in \(above.version)'s range "
                                + "get \(above.version), the higher version, whatever this task admits.")
            }
        }
        self.warnings = warnings
        hasWarnings = !warnings.isEmpty
    }

    /// "1.0.0.2: grayscale, 10 % of devices, grayscale releasing (task 3)".
    static func live(_ t: TaskRecord, whitelistNames: [Int64: String]) -> Live {
        Live(label: "\(t.version): \(t.taskType == .gray ? "grayscale, " : "")\(TaskLinkRow.share(t, whitelistNames: whitelistNames)), "
                + "\(t.statusLabel.lowercased()) (task \(t.id ?? 0))",
             url: Route.task.path(String(t.id ?? 0)))
    }

    static func effect(_ t: TaskRecord, releases: AppReleases, whitelistNames: [Int64: String]) -> String {
        let v = t.version
        let share = TaskLinkRow.share(t, whitelistNames: whitelistNames)
        let above = releases.officialAbove(t)
        let paused = t.taskStatus == .paused
        let higher = above.map { " Clients in \($0.version)'s range get \($0.version) instead, the higher official version." } ?? ""
        if t.approvalState == .awaiting {
            switch t.approvalSubject {
            case .promotion:
                if let above {
                    return "Approving makes \(v) official, but clients in range already get \(above.version), a higher official version: "
                        + "it changes nothing for them; \(v) is offered only where \(above.version)'s range does not reach, or as a version to go back to."
                }
                return "Approving makes \(v) an official release: every client in the package's range gets it, not only the \(share) it reaches now"
                    + (paused ? ", once the task is resumed (it is paused)." : ".")
            case .widening:
                return "Approving offers \(v) to the wider share: \(share)" + (paused ? ", once the task is resumed (it is paused)." : ".")
                    + " Meanwhile this task offers \(v) to no client." + higher
            case .release, .none:
                if t.isOfficial {
                    return above.map { "Approving changes nothing for clients in range: they get \($0.version), a higher official version; "
                        + "\(v) is offered only where \($0.version)'s range does not reach, or as a version to go back to." }
                        ?? "Approving offers \(v) to every client in the package's range."
                }
                return "Approving offers \(v) as a grayscale release to \(share)." + higher
            }
        }
        if t.rolledBack {
            if let above { return "Rolled back: \(v) is offered to no client; clients that have it are offered \(above.version), the official version above it." }
            return "Rolled back: \(v) is offered to no client; " + (releases.officialBelow(t).map { "clients that have it are told to go back to \($0.version)." }
                ?? "no earlier official version exists, so clients that have it keep it.")
        }
        if t.neverReleased { return "Never released: no client was offered \(v) by this task." }
        switch (t.taskStatus, t.taskType) {
        case (.rejected, _): return "Ended: the wider share was rejected, and this task offers \(v) to no client."
        case (.paused, _): return "Paused: \(v) is offered to no further client until the task is resumed."
        case (.finished, .gray): return "Finished: \(v) is no longer offered as a grayscale release."
        case (_, .official):
            return above.map { "\(v) was released officially; clients in range now get \($0.version), a higher official version." }
                ?? "This task offers \(v) to every client in the package's range."
        default: return "This task offers \(v) as a grayscale release to \(share)." + higher
        }
    }

    /// "promotion to official of 1.0.0.1", "official release of 1.0.0.4".
    static func request(_ t: TaskRecord) -> String {
        switch t.approvalSubject {
        case .promotion: "promotion to official of \(t.version)"
        case .widening: "wider grayscale release of \(t.version)"
        case .release, .none: "\(t.isOfficial ? "official" : "grayscale") release of \(t.version)"
        }
    }

    /// A package's settings as a reviewer reads them.
    static func settings(of p: PackageRecord) -> [Fact] {
        func range(_ min: String?, _ max: String?) -> String { min.map { "\($0) – \(max ?? "any later version")" } ?? "not targeted" }
        return [
            Fact(label: "Android", value: range(p.androidMin, p.androidMax)),
            Fact(label: "iOS", value: range(p.iosMin, p.iosMax)),
        ] + Fact.settings(of: p)
    }
}
