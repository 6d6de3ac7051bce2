import Foundation

// Who gets what (SPEC §4, §5): the release model and the decision the client update API makes.
// Everything here is a value built once per catalogue change (the snapshot) and read by every
// request; the decision is a pure function of (request, snapshot, time), apart from the one
// write SPEC §5 asks for: a time window's first N devices, recorded through `admit`.

/// What a client says about itself in `POST /client/v1/update`.
public struct ClientRequest: Sendable {
    public var platform: Platform
    public var clientVersion: ClientVersion
    public var deviceId: String
    public var userId: String
    public var model: String
    public var osVersion: String
    public var network: String
    public var city: String
    /// The versions installed, by app ID; nil for "none".
    public var installed: [String: PackageVersion?]
    /// Asks for every app this client should have, not only the installed ones.
    public var all: Bool

    public init(platform: Platform, clientVersion: ClientVersion, deviceId: String = "", userId: String = "", model: String = "",
                osVersion: String = "", network: String = "", city: String = "", installed: [String: PackageVersion?] = [:],
                all: Bool = false) {
        self.platform = platform; self.clientVersion = clientVersion; self.deviceId = deviceId; self.userId = userId
        self.model = model; self.osVersion = osVersion; self.network = network; self.city = city
        self.installed = installed; self.all = all
    }
}

// MARK: - Rules

/// An advanced rule of a grayscale task; all of a task's rules must hold.
public struct TargetingRule: Sendable, Equatable {
    public enum Field: String, CaseIterable, Sendable { case city, model, network, osVersion }
    public enum Operator: String, CaseIterable, Sendable { case `in`, notIn, between, notBetween }

    public let field: Field
    public let op: Operator
    public let values: [String]
    /// Lowercased values for `in` / `notIn`; the two bounds for `between`.
    let folded: Set<String>
    let bounds: (low: ClientVersion, high: ClientVersion)?

    public static func == (a: TargetingRule, b: TargetingRule) -> Bool { a.field == b.field && a.op == b.op && a.values == b.values }

    /// Checks a rule as a form or the API sends it; the message names what to fix.
    public init(field: Field, op: Operator, values raw: [String], fieldName: String = "rules") throws(FieldError) {
        let values = raw.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        self.field = field
        self.op = op
        self.values = values
        switch op {
        case .in, .notIn:
            guard !values.isEmpty else { throw FieldError(fieldName, "Give at least one value for the \(field.label) rule.") }
            guard values.count <= 500 else { throw FieldError(fieldName, "A rule takes at most 500 values.") }
            folded = Set(values.map { $0.lowercased() })
            bounds = nil
        case .between, .notBetween:
            guard field == .osVersion else {
                throw FieldError(fieldName, "Only the OS version rule can use between or not between.")
            }
            guard values.count == 2,
                  let low = try? ClientVersion(validating: values[0], field: fieldName),
                  let high = try? ClientVersion(validating: values[1], field: fieldName) else {
                throw FieldError(fieldName, "Between takes two OS versions, like 10 and 14.1.")
            }
            guard !(high < low) else { throw FieldError(fieldName, "The first OS version must not be above the second.") }
            folded = []
            bounds = (low, high)
        }
    }

    func value(in request: ClientRequest) -> String {
        switch field {
        case .city: request.city
        case .model: request.model
        case .network: request.network
        case .osVersion: request.osVersion
        }
    }

    /// Does the rule hold for this client? A client that does not say its OS version is
    /// outside every OS-version range.
    public func holds(for request: ClientRequest) -> Bool {
        let v = value(in: request)
        switch op {
        case .in: return folded.contains(v.lowercased())
        case .notIn: return !folded.contains(v.lowercased())
        case .between, .notBetween:
            guard let (low, high) = bounds, let version = try? ClientVersion(validating: v, field: "") else { return op == .notBetween }
            let inside = !(version < low) && !(high < version)
            return op == .between ? inside : !inside
        }
    }

    /// The rule in plain words: "city in Hangzhou, Shanghai".
    public var description: String {
        switch op {
        case .in: "\(field.label) in \(values.joined(separator: ", "))"
        case .notIn: "\(field.label) not in \(values.joined(separator: ", "))"
        case .between: "\(field.label) between \(values[0]) and \(values[1])"
        case .notBetween: "\(field.label) not between \(values[0]) and \(values[1])"
        }
    }
}

extension TargetingRule.Field {
    public var label: String {
        switch self {
        case .city: "city"
        case .model: "model"
        case .network: "network"
        case .osVersion: "OS version"
        }
    }
}

// MARK: - Whitelists

/// A named list of user IDs, device IDs, or user-ID regular expressions.
public struct Whitelist: Sendable {
    public enum Kind: String, CaseIterable, Sendable { case user, device, regex }

    public let id: Int64
    public let name: String
    public let kind: Kind
    public let values: Set<String>
    let patterns: [Pattern]

    /// At most this many expressions in a regex whitelist (SPEC §5).
    public static let maxExpressions = 20

    /// Builds a whitelist, compiling each expression of a regex list; refuses the bad one by name.
    public init(id: Int64, name: String, kind: Kind, values: Set<String>) throws(FieldError) {
        self.id = id
        self.name = name
        self.kind = kind
        self.values = values
        if kind == .regex {
            guard values.count <= Self.maxExpressions else {
                throw FieldError("values", "A regular-expression whitelist holds at most \(Self.maxExpressions) expressions; this one has \(values.count).")
            }
            var compiled: [Pattern] = []
            for v in values.sorted() {
                guard let p = Pattern(v) else {
                    throw FieldError("values", "“\(v)” is not a valid regular expression.")
                }
                compiled.append(p)
            }
            patterns = compiled
        } else {
            patterns = []
        }
    }

    /// Is this client on the list? User lists look at the user ID, device lists at the device ID,
    /// regex lists match the whole user ID.
    public func admits(_ request: ClientRequest) -> Bool {
        switch kind {
        case .user: !request.userId.isEmpty && values.contains(request.userId)
        case .device: !request.deviceId.isEmpty && values.contains(request.deviceId)
        case .regex: !request.userId.isEmpty && patterns.contains { $0.matchesWhole(request.userId) }
        }
    }

    /// A compiled expression; NSRegularExpression is safe to use from several threads.
    final class Pattern: @unchecked Sendable {
        let regex: NSRegularExpression
        init?(_ text: String) {
            guard !text.isEmpty, text.utf8.count <= 1000, let r = try? NSRegularExpression(pattern: text) else { return nil }
            regex = r
        }
        func matchesWhole(_ s: String) -> Bool {
            let range = NSRange(s.startIndex..., in: s)
            guard let m = regex.firstMatch(in: s, options: [.anchored], range: range) else { return false }
            return m.range == range
        }
    }
}

// MARK: - Tasks

/// A release task (SPEC §5).
public struct ReleaseTask: Sendable {
    public enum Status: String, CaseIterable, Sendable { case releasing, paused, finished }

    /// How a grayscale task chooses its clients.
    public enum Mode: Sendable, Equatable {
        case whitelist([Int64])
        /// The first `userCount` distinct devices that ask before `end`.
        case timeWindow(end: Date, userCount: Int)
        /// 0.01–100 % of devices, chosen by a stable hash of (task, device).
        case percentage(Double)
    }

    public enum Kind: Sendable, Equatable {
        case official
        case gray(Mode, rules: [TargetingRule])
    }

    public let id: Int64
    public let appId: String
    public let version: PackageVersion
    public let kind: Kind
    public let status: Status
    /// An official release that was rolled back: its clients are sent to the previous official.
    public let rolledBack: Bool

    public init(id: Int64, appId: String, version: PackageVersion, kind: Kind, status: Status, rolledBack: Bool = false) {
        self.id = id; self.appId = appId; self.version = version; self.kind = kind; self.status = status
        self.rolledBack = rolledBack
    }

    public var isOfficial: Bool { if case .official = kind { true } else { false } }
}

/// Where a device falls for a percentage task: a stable number in [0, 1) from (task, device),
/// the same on every server and after every restart (FNV-1a, not Swift's seeded Hasher).
public func percentagePoint(task: Int64, device: String) -> Double {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ b: UInt8) { h ^= UInt64(b); h = h &* 0x0000_0100_0000_01B3 }
    for b in String(task).utf8 { mix(b) }
    mix(0x3A)
    for b in device.utf8 { mix(b) }
    // Finalize (splitmix64) so that similar device IDs spread evenly.
    h ^= h >> 30; h = h &* 0xbf58_476d_1ce4_e5b9
    h ^= h >> 27; h = h &* 0x94d0_49bb_1331_11eb
    h ^= h >> 31
    return Double(h >> 11) / Double(1 << 53)
}

// MARK: - Snapshot and decision

/// One app as the decision sees it: each released version's client range and its tasks.
public struct AppTargets: Sendable {
    public struct Range: Sendable {
        let android: (low: ClientVersion, high: ClientVersion?)?
        let ios: (low: ClientVersion, high: ClientVersion?)?

        public init(_ r: ClientRange) {
            func parse(_ b: ClientRange.Bounds?) -> (ClientVersion, ClientVersion?)? {
                guard let b, let low = try? ClientVersion(validating: b.min, field: "") else { return nil }
                return (low, b.max.flatMap { try? ClientVersion(validating: $0, field: "") })
            }
            android = parse(r.android)
            ios = parse(r.ios)
        }

        func admits(_ platform: Platform, _ v: ClientVersion) -> Bool {
            guard let (low, high) = platform == .android ? android : ios else { return false }
            return !(v < low) && !(high.map { $0 < v } ?? false)
        }
    }

    public let appId: String
    /// Tasks, highest version first.
    public let tasks: [ReleaseTask]
    let ranges: [PackageVersion: Range]

    public init(appId: String, tasks: [ReleaseTask], ranges: [PackageVersion: ClientRange]) {
        self.appId = appId
        self.tasks = tasks.sorted { $0.version > $1.version }
        self.ranges = ranges.mapValues(Range.init)
    }
}

/// What the decision reads: built from the database after each change, never changed after.
public struct TargetingSnapshot: Sendable {
    public let apps: [String: AppTargets]
    public let whitelists: [Int64: Whitelist]

    public init(apps: [AppTargets], whitelists: [Whitelist]) {
        self.apps = Dictionary(apps.map { ($0.appId, $0) }, uniquingKeysWith: { a, _ in a })
        self.whitelists = Dictionary(whitelists.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }
}

/// Why a task admitted or refused a client, for people reading the decision later.
public struct TaskVerdict: Sendable, Equatable {
    public let taskId: Int64
    public let version: PackageVersion
    public let admitted: Bool
    public let reason: String
}

/// What a client is told about one app, and why.
public struct Decision: Sendable, Equatable {
    public enum Answer: Sendable, Equatable {
        /// Download this version (higher than the installed one).
        case update(PackageVersion, task: Int64)
        /// Go back to this version: the installed one was rolled back.
        case rollback(PackageVersion, task: Int64)
        /// Nothing to do.
        case none
    }
    public let appId: String
    public let answer: Answer
    /// Every task looked at, highest version first, with its verdict.
    public let verdicts: [TaskVerdict]
    /// The answer in one sentence.
    public let summary: String
}

/// Records a time-window admission: true when `device` is (or now becomes) one of the task's
/// first devices. Must be atomic and durable; the decision calls it only when it matters.
public typealias AdmitDevice = @Sendable (_ task: Int64, _ userCount: Int, _ device: String) -> Bool

public enum Targeting {
    /// The decision for every app the request concerns (SPEC §4).
    public static func decide(_ request: ClientRequest, _ snapshot: TargetingSnapshot, now: Date,
                              admit: AdmitDevice) -> [Decision] {
        var ids = Array(request.installed.keys)
        if request.all { ids += snapshot.apps.keys.filter { request.installed[$0] == nil } }
        return ids.sorted().compactMap { id in
            guard let app = snapshot.apps[id] else { return nil }
            return decide(request, app: app, installed: request.installed[id] ?? nil, snapshot: snapshot, now: now, admit: admit)
        }
    }

    /// The highest version whose task admits this client, if higher than the installed one;
    /// the previous official version when the installed one was rolled back; else nothing.
    public static func decide(_ request: ClientRequest, app: AppTargets, installed: PackageVersion?, snapshot: TargetingSnapshot,
                              now: Date, admit: AdmitDevice) -> Decision {
        let rolledBack = installedRolledBack(app, installed)
        var verdicts: [TaskVerdict] = []
        var best: ReleaseTask?
        for task in app.tasks {
            if let installed, task.version <= installed {
                // At or below what is installed nothing changes the answer, unless the installed
                // version was rolled back: then the previous official release is looked for.
                guard rolledBack else { break }
                if task.version == installed || !task.isOfficial { continue }
            }
            let (ok, why) = evaluate(task, request, app: app, snapshot: snapshot, now: now, admit: admit)
            verdicts.append(TaskVerdict(taskId: task.id, version: task.version, admitted: ok, reason: why))
            if ok { best = task; break }
        }
        let answer: Decision.Answer
        let summary: String
        switch (best, installed) {
        case (let best?, nil):
            answer = .update(best.version, task: best.id)
            summary = "Send \(best.version) (task \(best.id)): \(verdicts.last?.reason ?? "")."
        case (let best?, let installed?) where best.version > installed:
            answer = .update(best.version, task: best.id)
            summary = "Send \(best.version) over \(installed) (task \(best.id)): \(verdicts.last?.reason ?? "")."
        case (let best?, let installed?):
            answer = .rollback(best.version, task: best.id)
            summary = "Roll back from \(installed), which was rolled back, to \(best.version) (task \(best.id))."
        case (nil, let installed?):
            answer = .none
            summary = verdicts.isEmpty ? "Up to date: \(installed) is installed and no higher version is released."
                                       : "Nothing higher than \(installed) admits this client; it is left alone."
        case (nil, nil):
            answer = .none
            summary = "Nothing released admits this client."
        }
        return Decision(appId: app.appId, answer: answer, verdicts: verdicts, summary: summary)
    }

    static func installedRolledBack(_ app: AppTargets, _ installed: PackageVersion?) -> Bool {
        guard let installed else { return false }
        return app.tasks.contains { $0.version == installed && $0.rolledBack }
    }

    /// Does `task` admit the client, and why (or why not)?
    static func evaluate(_ task: ReleaseTask, _ r: ClientRequest, app: AppTargets, snapshot: TargetingSnapshot, now: Date,
                         admit: AdmitDevice) -> (Bool, String) {
        if task.rolledBack { return (false, "rolled back") }
        switch (task.kind, task.status) {
        case (_, .paused): return (false, "paused")
        case (.gray, .finished): return (false, "grayscale release finished")
        default: break
        }
        guard let range = app.ranges[task.version], range.admits(r.platform, r.clientVersion) else {
            return (false, "\(r.platform.rawValue) \(r.clientVersion) is outside the package's client range")
        }
        guard case .gray(let mode, let rules) = task.kind else { return (true, "official release") }
        if let failed = rules.first(where: { !$0.holds(for: r) }) {
            return (false, "rule not met: \(failed.description)")
        }
        switch mode {
        case .whitelist(let ids):
            let lists = ids.compactMap { snapshot.whitelists[$0] }
            if let hit = lists.first(where: { $0.admits(r) }) { return (true, "on whitelist \(hit.name)") }
            return (false, "on none of the whitelists \(lists.map(\.name).joined(separator: ", "))")
        case .percentage(let pct):
            guard !r.deviceId.isEmpty else { return (false, "no device ID for a percentage release") }
            let point = percentagePoint(task: task.id, device: r.deviceId)
            return point * 100 < pct ? (true, "device within \(pct) %") : (false, "device outside \(pct) %")
        case .timeWindow(let end, let count):
            guard now < end else { return (false, "time window ended") }
            guard !r.deviceId.isEmpty else { return (false, "no device ID for a time-window release") }
            return admit(task.id, count, r.deviceId) ? (true, "among the first \(count) devices") : (false, "the first \(count) devices are already admitted")
        }
    }
}
