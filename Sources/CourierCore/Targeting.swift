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
    public var model: String { didSet { folded = Folded(self) } }
    public var osVersion: String { didSet { parsedOSVersion = try? ClientVersion(validating: osVersion, field: "") } }
    /// `osVersion` read as a version once, for the OS-version rules of every task.
    private(set) var parsedOSVersion: ClientVersion?
    public var network: String { didSet { folded = Folded(self) } }
    public var city: String { didSet { folded = Folded(self) } }
    /// City, model and network lowercased once, for the rules of every task.
    private(set) var folded = Folded()

    struct Folded: Sendable {
        var city = "", model = "", network = ""
        init() {}
        init(_ r: ClientRequest) { city = r.city.lowercased(); model = r.model.lowercased(); network = r.network.lowercased() }
    }
    /// The versions installed, by app ID; nil for "none".
    public var installed: [String: PackageVersion?]
    /// Asks for every app this client should have, not only the installed ones.
    public var all: Bool
    /// Versions this device installed and then gave up (its trial failed, SPEC §10), by app ID:
    /// the tasks releasing them are not offered to it again.
    public var failed: [String: Set<PackageVersion>]

    public init(platform: Platform, clientVersion: ClientVersion, deviceId: String = "", userId: String = "", model: String = "",
                osVersion: String = "", network: String = "", city: String = "", installed: [String: PackageVersion?] = [:],
                all: Bool = false, failed: [String: Set<PackageVersion>] = [:]) {
        self.platform = platform; self.clientVersion = clientVersion; self.deviceId = deviceId; self.userId = userId
        self.model = model; self.osVersion = osVersion; self.network = network; self.city = city
        self.installed = installed; self.all = all; self.failed = failed
        self.parsedOSVersion = try? ClientVersion(validating: osVersion, field: "")
        self.folded = Folded(self)
    }
}

// MARK: - Rules

/// An advanced rule of a grayscale task; all of a task's rules must hold.
/// A class: the decision looks at rules on every request, and a reference is cheaper to pass
/// around than a value holding several arrays.
public final class TargetingRule: Sendable, Equatable {
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

    func foldedValue(in request: ClientRequest) -> String {
        switch field {
        case .city: request.folded.city
        case .model: request.folded.model
        case .network: request.folded.network
        case .osVersion: request.osVersion.lowercased()
        }
    }

    public func holds(for request: ClientRequest) -> Bool {
        switch op {
        case .in: return folded.contains(foldedValue(in: request))
        case .notIn: return !folded.contains(foldedValue(in: request))
        case .between, .notBetween:
            guard let (low, high) = bounds, let version = request.parsedOSVersion else { return op == .notBetween }
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
public final class Whitelist: Sendable {
    public enum Kind: String, CaseIterable, Sendable { case user, device, regex }

    public let id: Int64
    public let name: String
    public let kind: Kind
    public let values: Set<String>
    let patterns: [SafePattern]

    /// At most this many expressions in a regex whitelist (SPEC §5).
    public static let maxExpressions = 20
    /// A user ID longer than this matches no expression: it bounds the work one request can ask
    /// for (every expression is linear in the ID, but the ID comes from anyone).
    public static let maxMatchedScalars = 128

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
            var compiled: [SafePattern] = []
            for v in values.sorted() { compiled.append(try SafePattern(v, field: "values")) }
            patterns = compiled
        } else {
            patterns = []
        }
    }

    /// Is this client on the list? User lists look at the user ID, device lists at the device ID,
    /// regex lists match the whole user ID (in linear time: `SafePattern`).
    /// The most steps matching this list can take per character of a user ID (0 for ID lists).
    public var matchCost: Int { patterns.reduce(0) { $0 + $1.cost } }

    /// The most `matchCost` all regular-expression whitelists may have together: each list is
    /// asked at most once per request, so one request's matching is bounded by this times the
    /// longest ID matched (`maxMatchedScalars`), whatever tasks and apps it concerns.
    public static let maxTotalMatchCost = 7_500

    public func admits(_ request: ClientRequest) -> Bool {
        var steps = 0
        return admits(request, steps: &steps, budget: .max) ?? false
    }

    /// The same, adding the expression matcher's steps to `steps`; nil when `steps` reached
    /// `budget` before an answer (no expression is started past it).
    public func admits(_ request: ClientRequest, steps: inout Int, budget: Int) -> Bool? {
        switch kind {
        case .user: return !request.userId.isEmpty && values.contains(request.userId)
        case .device: return !request.deviceId.isEmpty && values.contains(request.deviceId)
        case .regex:
            guard !request.userId.isEmpty, request.userId.unicodeScalars.count <= Self.maxMatchedScalars else { return false }
            for p in patterns {
                guard steps < budget else { return nil }
                if p.matchesWhole(request.userId, steps: &steps) { return true }
            }
            return false
        }
    }
}

// MARK: - Tasks

/// A release task (SPEC §5).
public final class ReleaseTask: Sendable {
    public enum Status: String, CaseIterable, Sendable {
        case releasing, paused, finished
        /// Waits for a reviewer (SPEC §7); clients are not offered it.
        case awaitingApproval
        /// A reviewer refused it; it never releases.
        case rejected

        /// Finished or rejected: nothing more happens to it but deletion.
        public var hasEnded: Bool { self == .finished || self == .rejected }
        /// Statuses that have ended, as stored.
        public static let ended = [Status.finished.rawValue, Status.rejected.rawValue]
    }

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

    /// Why the stored task could not be read (a type, rule or list this binary does not know),
    /// or nil. Such a task admits nobody: guessing, or dropping what cannot be read, would
    /// widen the release.
    public let unreadable: String?

    /// `kind` taken apart once, for the decision: nil mode for an official release.
    let grayMode: Mode?
    let rules: [TargetingRule]
    public let isOfficial: Bool

    public init(id: Int64, appId: String, version: PackageVersion, kind: Kind, status: Status, rolledBack: Bool = false) {
        self.id = id; self.appId = appId; self.version = version; self.kind = kind; self.status = status
        self.rolledBack = rolledBack
        unreadable = nil
        switch kind {
        case .official: grayMode = nil; rules = []; isOfficial = true
        case .gray(let mode, let r): grayMode = mode; rules = r; isOfficial = false
        }
    }

    /// A task that cannot be read: it offers nothing.
    public init(id: Int64, appId: String, version: PackageVersion, unreadable reason: String) {
        self.id = id; self.appId = appId; self.version = version
        kind = .gray(.whitelist([]), rules: []); status = .paused; rolledBack = false
        unreadable = reason
        grayMode = .whitelist([]); rules = []; isOfficial = false
    }
}

/// Where a device falls for a percentage task: a stable number in [0, 1) from (task, device),
/// the same on every server and after every restart (FNV-1a, not Swift's seeded Hasher).
public func percentagePoint(task: Int64, device: String) -> Double {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ b: UInt8) { h ^= UInt64(b); h = h &* 0x0000_0100_0000_01B3 }
    // The task's decimal digits, as `String(task).utf8` gives them, without making the string.
    if task < 0 { mix(UInt8(ascii: "-")) }
    var magnitude = task.magnitude, scale: UInt64 = 1
    while magnitude / scale >= 10 { scale *= 10 }
    while scale > 0 { mix(UInt8(ascii: "0") + UInt8(magnitude / scale)); magnitude %= scale; scale /= 10 }
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
public final class AppTargets: Sendable {
    public final class Range: Sendable {
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
    /// The client range of each task's package, in the order of `tasks`.
    let ranges: [Range?]
    /// Versions that were rolled back (an official release's clients go back to the one before).
    let rolledBack: Set<PackageVersion>
    /// Versions revoked (SPEC §5): never offered; their devices go back to the newest version
    /// below that admits them.
    public let revoked: Set<PackageVersion>

    public init(appId: String, tasks: [ReleaseTask], ranges: [PackageVersion: ClientRange], revoked: Set<PackageVersion> = []) {
        self.appId = appId
        self.tasks = tasks.sorted { $0.version > $1.version }
        let parsed = ranges.mapValues(Range.init)
        self.ranges = self.tasks.map { parsed[$0.version] }
        rolledBack = Set(tasks.filter(\.rolledBack).map(\.version))
        self.revoked = revoked
    }
}

/// What the decision reads: built from the database after each change, never changed after.
public struct TargetingSnapshot: Sendable {
    public let apps: [String: AppTargets]
    public let whitelists: [Int64: Whitelist]
    /// Whitelists that exist but cannot be read (a kind or an expression this binary refuses),
    /// with why: the tasks that use them admit nobody.
    public let unreadableWhitelists: [Int64: String]

    public init(apps: [AppTargets], whitelists: [Whitelist], unreadableWhitelists: [Int64: String] = [:]) {
        self.apps = Dictionary(apps.map { ($0.appId, $0) }, uniquingKeysWith: { a, _ in a })
        self.whitelists = Dictionary(whitelists.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.unreadableWhitelists = unreadableWhitelists
    }

    /// Why a task with these whitelists offers nothing (one is missing or cannot be read), or nil.
    func unreadableList(_ ids: [Int64]) -> String? {
        for id in ids where whitelists[id] == nil {
            return unreadableWhitelists[id].map { "whitelist \(id): \($0)" } ?? "whitelist \(id) is missing"
        }
        return nil
    }

    /// Why `task` offers nothing because it, or a list it uses, cannot be read; nil when it can be.
    public func unreadable(_ task: ReleaseTask) -> String? {
        if let why = task.unreadable { return why }
        guard case .whitelist(let ids)? = task.grayMode else { return nil }
        return unreadableList(ids)
    }
}

/// Why a task admitted or refused a client, for people reading the decision later. Kept as
/// values and put into words only when read: the update API decides on every request.
public struct TaskVerdict: Sendable, Equatable {
    public enum Why: Sendable, Equatable {
        case rolledBack, paused, grayFinished, official, notApproved
        case outsideRange(Platform, ClientVersion)
        case ruleNotMet(TargetingRule)
        case onWhitelist(String)
        case onNoWhitelist([String])
        case noDeviceForPercentage, noDeviceForWindow, windowEnded
        case withinPercentage(Double), outsidePercentage(Double)
        case amongFirst(Int), firstTaken(Int)
        /// The task, or a whitelist it uses, cannot be read: it offers nothing.
        case unreadable(String)
        /// This device installed the task's version and gave it up (its trial failed).
        case gaveUp
        /// The version was revoked: it is never offered.
        case revoked
    }

    public let taskId: Int64
    public let version: PackageVersion
    public let admitted: Bool
    public let why: Why

    public var reason: String {
        switch why {
        case .rolledBack: "rolled back"
        case .revoked: "the version was revoked: it is never offered"
        case .gaveUp: "this device gave the version up (its trial failed); it is not offered again"
        case .paused: "paused"
        case .grayFinished: "grayscale release finished"
        case .notApproved: "not approved by a reviewer"
        case .official: "official release"
        case .outsideRange(let p, let v): "\(p.rawValue) \(v) is outside the package's client range"
        case .ruleNotMet(let rule): "rule not met: \(rule.description)"
        case .onWhitelist(let name): "on whitelist \(name)"
        case .onNoWhitelist(let names): "on none of the whitelists \(names.joined(separator: ", "))"
        case .noDeviceForPercentage: "no device ID for a percentage release"
        case .noDeviceForWindow: "no device ID for a time-window release"
        case .windowEnded: "time window ended"
        case .withinPercentage(let p): "device within \(p) %"
        case .outsidePercentage(let p): "device outside \(p) %"
        case .amongFirst(let n): "among the first \(n) devices"
        case .firstTaken(let n): "the first \(n) devices are already admitted"
        case .unreadable(let why): "cannot be read (\(why)), so it offers nothing"
        }
    }
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
    /// The version the client said it has.
    public let installed: PackageVersion?

    /// The answer in one sentence.
    public var summary: String {
        let why = verdicts.last?.reason ?? ""
        switch (answer, installed) {
        case (.update(let v, let task), nil): return "Send \(v) (task \(task)): \(why)."
        case (.update(let v, let task), let installed?): return "Send \(v) over \(installed) (task \(task)): \(why)."
        case (.rollback(let v, let task), let installed): return "Roll back from \(installed.map(\.description) ?? "none"), which was rolled back or revoked, to \(v) (task \(task))."
        case (.none, let installed?):
            return verdicts.isEmpty ? "Up to date: \(installed) is installed and no higher version is released."
                                    : "Nothing higher than \(installed) admits this client; it is left alone."
        case (.none, nil): return "Nothing released admits this client."
        }
    }
}

/// Records a time-window admission: true when `device` is (or now becomes) one of the task's
/// first devices. Must be atomic and durable; the decision calls it only when it matters.
public typealias AdmitDevice = @Sendable (_ task: Int64, _ userCount: Int, _ device: String) -> Bool
/// Did this device give up the version this task releases (remembered from an earlier request)?
public typealias GaveUp = (_ task: Int64) -> Bool

public enum Targeting {
    /// The decision for every app the request concerns (SPEC §4).
    /// The decision for every app the request concerns (SPEC §4). With `explain` false (the update
    /// API's hot path) the verdicts are left out: only the answers are kept.
    public static func decide(_ request: ClientRequest, _ snapshot: TargetingSnapshot, now: Date, explain: Bool = true,
                              gaveUp: GaveUp = { _ in false }, admit: AdmitDevice) -> [Decision] {
        var ids = Array(request.installed.keys)
        if request.all { ids += snapshot.apps.keys.filter { request.installed[$0] == nil } }
        ids.sort()
        var decisions: [Decision] = []
        decisions.reserveCapacity(ids.count)
        // One request asks each list once, however many apps' tasks use it (`all: true` over
        // hundreds of apps on one expression list would otherwise match it hundreds of times).
        let lists = ListVerdicts()
        for id in ids {
            guard let app = snapshot.apps[id] else { continue }
            decisions.append(decide(request, app: app, installed: request.installed[id] ?? nil, snapshot: snapshot, now: now,
                                    explain: explain, lists: lists, gaveUp: gaveUp, admit: admit))
        }
        return decisions
    }

    /// The highest version whose task admits this client, if higher than the installed one;
    /// the previous official version when the installed one was rolled back; else nothing.
    public static func decide(_ request: ClientRequest, app: AppTargets, installed: PackageVersion?, snapshot: TargetingSnapshot,
                              now: Date, explain: Bool = true, admit: AdmitDevice) -> Decision {
        decide(request, app: app, installed: installed, snapshot: snapshot, now: now, explain: explain, lists: ListVerdicts(), admit: admit)
    }

    /// Each whitelist's answer for one request, asked once, and the expression matching of the
    /// whole request held to `stepBudget`: each expression is linear in the ID, but a task may
    /// name many lists of many expressions. Past the budget, lists not yet asked admit nobody
    /// (never more): a request cannot buy time on the event loop.
    final class ListVerdicts {
        /// About a few milliseconds of matching in a release build: what every list allowed
        /// together (`maxTotalMatchCost`) can take, so it is reached only by lists saved before
        /// that limit.
        static let stepBudget = Whitelist.maxTotalMatchCost * (Whitelist.maxMatchedScalars + 1)
        private var known: [Int64: Bool] = [:]
        private(set) var steps = 0
        /// The budget ran out: some list was not asked (and admitted nobody).
        private(set) var exhausted = false

        func admits(_ list: Whitelist, _ r: ClientRequest) -> Bool {
            guard list.kind == .regex else { return list.admits(r) }   // a set lookup: nothing to save
            if let v = known[list.id] { return v }
            guard let v = list.admits(r, steps: &steps, budget: Self.stepBudget) else {
                exhausted = true
                known[list.id] = false
                return false
            }
            known[list.id] = v
            return v
        }
    }

    static func decide(_ request: ClientRequest, app: AppTargets, installed: PackageVersion?, snapshot: TargetingSnapshot,
                       now: Date, explain: Bool, lists: ListVerdicts, gaveUp: GaveUp = { _ in false }, admit: AdmitDevice) -> Decision {
        // A revoked installed version sends the device to the newest version below that admits
        // it, grayscale or official; a rolled-back one to the previous official release.
        let revokedInstalled = installed.map { !app.revoked.isEmpty && app.revoked.contains($0) } ?? false
        let rolledBack = revokedInstalled || installedRolledBack(app, installed)
        let failedHere = request.failed[app.appId]
        var verdicts: [TaskVerdict] = []
        var best: ReleaseTask?
        for (task, range) in zip(app.tasks, app.ranges) {
            if let installed, task.version <= installed {
                // At or below what is installed nothing changes the answer, unless the installed
                // version was rolled back: then the previous official release is looked for.
                guard rolledBack else { break }
                if task.version == installed || (!revokedInstalled && !task.isOfficial) { continue }
            }
            if !app.revoked.isEmpty, app.revoked.contains(task.version) {
                if explain { verdicts.append(TaskVerdict(taskId: task.id, version: task.version, admitted: false, why: .revoked)) }
                continue
            }
            // A version this device gave up is not offered to it again by the same task (SPEC §4).
            let (ok, why) = failedHere?.contains(task.version) == true || gaveUp(task.id) ? (false, .gaveUp)
                : evaluate(task, request, range: range, snapshot: snapshot, now: now, explain: explain, lists: lists, admit: admit)
            if explain { verdicts.append(TaskVerdict(taskId: task.id, version: task.version, admitted: ok, why: why)) }
            if ok { best = task; break }
        }
        let answer: Decision.Answer
        switch (best, installed) {
        case (let best?, nil): answer = .update(best.version, task: best.id)
        case (let best?, let installed?) where best.version > installed: answer = .update(best.version, task: best.id)
        case (let best?, _?): answer = .rollback(best.version, task: best.id)
        case (nil, _): answer = .none
        }
        return Decision(appId: app.appId, answer: answer, verdicts: verdicts, installed: installed)
    }

    static func installedRolledBack(_ app: AppTargets, _ installed: PackageVersion?) -> Bool {
        guard let installed, !app.rolledBack.isEmpty else { return false }
        return app.rolledBack.contains(installed)
    }

    /// Does `task` admit the client, and why (or why not)?
    static func evaluate(_ task: ReleaseTask, _ r: ClientRequest, range: AppTargets.Range?, snapshot: TargetingSnapshot, now: Date,
                         explain: Bool = true, lists: ListVerdicts = ListVerdicts(), admit: AdmitDevice) -> (Bool, TaskVerdict.Why) {
        if let why = task.unreadable { return (false, .unreadable(why)) }
        if task.rolledBack { return (false, .rolledBack) }
        switch task.status {
        case .paused: return (false, .paused)
        case .finished where !task.isOfficial: return (false, .grayFinished)
        case .awaitingApproval, .rejected: return (false, .notApproved)
        default: break
        }
        guard let range, range.admits(r.platform, r.clientVersion) else {
            return (false, .outsideRange(r.platform, r.clientVersion))
        }
        guard let mode = task.grayMode else { return (true, .official) }
        for rule in task.rules where !rule.holds(for: r) {
            return (false, .ruleNotMet(rule))
        }
        switch mode {
        case .whitelist(let ids):
            // Every list must be readable before any may admit: a list that cannot be read
            // does not narrow the task to the others.
            if let why = snapshot.unreadableList(ids) { return (false, .unreadable(why)) }
            for id in ids {
                if let list = snapshot.whitelists[id], lists.admits(list, r) { return (true, .onWhitelist(list.name)) }
            }
            return (false, .onNoWhitelist(explain ? ids.compactMap { snapshot.whitelists[$0]?.name } : []))
        case .percentage(let pct):
            guard !r.deviceId.isEmpty else { return (false, .noDeviceForPercentage) }
            let point = percentagePoint(task: task.id, device: r.deviceId)
            return point * 100 < pct ? (true, .withinPercentage(pct)) : (false, .outsidePercentage(pct))
        case .timeWindow(let end, let count):
            guard now < end else { return (false, .windowEnded) }
            guard !r.deviceId.isEmpty else { return (false, .noDeviceForWindow) }
            return admit(task.id, count, r.deviceId) ? (true, .amongFirst(count)) : (false, .firstTaken(count))
        }
    }
}

// MARK: - Simulator

extension Targeting {
    /// For the targeting simulator (SPEC §5): every task of the app that has not ended, and the
    /// one whose version the device would be offered, each with whether it admits the device and
    /// why. Nothing changes: `peek` says whether a time window would admit the device (it has a
    /// place, or there is one free) without taking a place.
    public static func simulate(_ request: ClientRequest, apps: [AppTargets], snapshot: TargetingSnapshot, now: Date,
                                gaveUp: GaveUp = { _ in false }, peek: AdmitDevice) -> [(decision: Decision, tasks: [TaskVerdict])] {
        // One request's expression matching is held to one budget, whatever the number of apps.
        let lists = ListVerdicts()
        return apps.map { simulate(request, app: $0, snapshot: snapshot, now: now, lists: lists, gaveUp: gaveUp, peek: peek) }
    }

    static func simulate(_ request: ClientRequest, app: AppTargets, snapshot: TargetingSnapshot, now: Date, lists: ListVerdicts,
                         gaveUp: GaveUp, peek: AdmitDevice) -> (decision: Decision, tasks: [TaskVerdict]) {
        let decision = decide(request, app: app, installed: request.installed[app.appId] ?? nil, snapshot: snapshot, now: now, explain: true,
                              lists: lists, gaveUp: gaveUp, admit: peek)
        let offeredTask: Int64? = switch decision.answer {
        case .update(_, let t), .rollback(_, let t): t
        case .none: nil
        }
        var verdicts: [TaskVerdict] = []
        for (task, range) in zip(app.tasks, app.ranges) where !task.status.hasEnded || task.id == offeredTask || app.revoked.contains(task.version) {
            let (ok, why) = app.revoked.contains(task.version) ? (false, .revoked)
                : request.failed[app.appId]?.contains(task.version) == true || gaveUp(task.id) ? (false, .gaveUp)
                : evaluate(task, request, range: range, snapshot: snapshot, now: now, explain: true, lists: lists, admit: peek)
            verdicts.append(TaskVerdict(taskId: task.id, version: task.version, admitted: ok, why: why))
        }
        return (decision, verdicts)
    }
}

extension TaskVerdict {
    /// The verdict in plain words about this device: `osVersion 12 is not between 13 and 17`,
    /// `not on whitelist "beta-testers"`, `outside the first 500 devices`.
    public func explanation(for r: ClientRequest) -> String {
        func quoted(_ s: String) -> String { "“\(s)”" }
        switch why {
        case .ruleNotMet(let rule):
            let value: String = switch rule.field {
            case .city: r.city
            case .model: r.model
            case .network: r.network
            case .osVersion: r.osVersion
            }
            let shown = value.isEmpty ? "(not given)" : value
            switch rule.op {
            case .in: return "\(rule.field.label) \(shown) is not one of \(rule.values.joined(separator: ", "))"
            case .notIn: return "\(rule.field.label) \(shown) is one of \(rule.values.joined(separator: ", ")), which are excluded"
            case .between: return "\(rule.field.label) \(shown) is not between \(rule.values[0]) and \(rule.values[1])"
            case .notBetween: return "\(rule.field.label) \(shown) is between \(rule.values[0]) and \(rule.values[1]), which is excluded"
            }
        case .onNoWhitelist(let names):
            let who = r.userId.isEmpty ? "no user ID given" : "user \(r.userId)"
            return names.count == 1 ? "not on whitelist \(quoted(names[0])) (\(who))"
                : "on none of the whitelists \(names.map(quoted).joined(separator: ", ")) (\(who))"
        case .onWhitelist(let name): return "on whitelist \(quoted(name))"
        case .withinPercentage(let p), .outsidePercentage(let p):
            let point = percentagePoint(task: taskId, device: r.deviceId) * 100
            return admitted ? "the device falls at \(String(format: "%.2f", point)) % of the range, within \(String(format: "%g", p)) %"
                : "the device falls at \(String(format: "%.2f", point)) % of the range, outside \(String(format: "%g", p)) %"
        case .amongFirst(let n): return "among the first \(n) devices (a place is free or already this device's; simulating takes none)"
        case .firstTaken(let n): return "outside the first \(n) devices: every place is taken"
        case .outsideRange(let p, let v): return "\(p.rawValue) client \(v) is outside the package's client range"
        default: return reason
        }
    }
}
