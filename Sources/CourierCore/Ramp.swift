import Foundation

/// A percentage task's schedule (SPEC §5, scheduled ramps): steps to higher percentages, each a
/// delay after the one before, ending optionally in a promotion to official; and the health
/// gate's threshold. Stored as JSON on the task with how far it went (`done`, `since`).
public struct RampPlan: Codable, Sendable, Equatable {
    public struct Step: Codable, Sendable, Equatable {
        /// The share this step raises the task to; nil for the promotion.
        public var percentage: Double?
        public var promote: Bool
        /// Minutes after the step before (the first: after the task began).
        public var afterMinutes: Int

        public init(percentage: Double?, promote: Bool = false, afterMinutes: Int) {
            self.percentage = percentage; self.promote = promote; self.afterMinutes = afterMinutes
        }

        enum CodingKeys: String, CodingKey { case percentage, promote, afterMinutes }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            percentage = try c.decodeIfPresent(Double.self, forKey: .percentage)
            promote = try c.decodeIfPresent(Bool.self, forKey: .promote) ?? false
            afterMinutes = try c.decode(Int.self, forKey: .afterMinutes)
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(percentage, forKey: .percentage)
            if promote { try c.encode(true, forKey: .promote) }
            try c.encode(afterMinutes, forKey: .afterMinutes)
        }

        /// "10 % after 2 h", "promote after 1 d".
        public var description: String {
            (promote ? "promote to official" : "\(RampPlan.percent(percentage ?? 0)) %") + " after " + RampPlan.duration(afterMinutes)
        }
    }

    public var steps: [Step]
    /// Percent: the gate pauses when the failure rate's lower bound is above it.
    public var threshold: Double
    /// Steps taken so far.
    public var done: Int
    /// When the last step was taken (or the task began): the next one is due its delay later.
    public var since: Date
    /// What the gate was told to accept: the installs and failures seen when a person resumed the
    /// task (the gate then judges only what came after); `baselinePending` until it is written.
    public var gateBaseline: Baseline?
    public var baselinePending: Bool?
    public struct Baseline: Codable, Sendable, Equatable {
        public var installs: Int
        public var failures: Int
        public init(installs: Int, failures: Int) { self.installs = installs; self.failures = failures }
    }

    public init(steps: [Step], threshold: Double = HealthGate.defaultThreshold, done: Int = 0, since: Date) {
        self.steps = steps; self.threshold = threshold; self.done = done; self.since = since
    }

    public static let maxSteps = 10
    public static let maxDelayMinutes = 30 * 24 * 60

    /// The next step, or nil when every step was taken.
    public var next: Step? { done < steps.count ? steps[done] : nil }
    /// When the next step is due.
    public var nextDue: Date? { next.map { since.addingTimeInterval(TimeInterval($0.afterMinutes) * 60) } }
    public func isDue(now: Date) -> Bool { nextDue.map { $0 <= now } ?? false }

    /// Where the ramp stands (`current`: the share at `start` before any step, else the share now,
    /// since the clock last started), then each step not taken yet with when it is due if none is
    /// held up.
    public func timeline(start: Date, current: Double) -> [(at: Date, what: String, done: Bool)] {
        let now = done == 0 ? (start, "\(Self.percent(current)) % of devices", true)
                            : (since, "\(Self.percent(current)) % of devices, \(done) of \(steps.count) steps taken", true)
        var rows: [(at: Date, what: String, done: Bool)] = [now]
        var at = since
        for (i, s) in steps.enumerated() where i >= done {
            at = at.addingTimeInterval(TimeInterval(s.afterMinutes) * 60)
            rows.append((at, s.promote ? "promote to official (every client in range)" : "\(Self.percent(s.percentage ?? 0)) % of devices", false))
        }
        return rows
    }

    // MARK: Reading and checking

    /// Reads the form's steps: one per line, `10% after 2h`, `50 % after 1d`, `promote after 30m`
    /// (m, h or d; a bare number is minutes).
    public static func parse(lines text: String) throws(FieldError) -> [Step] {
        var steps: [Step] = []
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard lines.count <= maxSteps else { throw FieldError("steps", "A ramp takes at most \(maxSteps) steps; this one has \(lines.count).") }
        for (i, line) in lines.enumerated() {
            let words = line.lowercased().replacingOccurrences(of: "%", with: " % ").split(separator: " ").map(String.init)
            func fail() -> FieldError {
                FieldError("steps", "Step \(i + 1) (“\(line.prefix(40))”) must read like “10% after 2h” or “promote after 1d” (m, h or d).")
            }
            guard let after = words.firstIndex(of: "after"), after + 1 < words.count else { throw fail() }
            guard let minutes = parseDuration(words[(after + 1)...].joined()) else { throw fail() }
            let head = words[..<after].filter { $0 != "%" }
            if head == ["promote"] {
                steps.append(Step(percentage: nil, promote: true, afterMinutes: minutes))
            } else if head.count == 1, let p = TaskDraft.parsePercentage(head[0]) {
                steps.append(Step(percentage: p, afterMinutes: minutes))
            } else {
                throw fail()
            }
        }
        return steps
    }

    /// `90`, `90m`, `2h`, `1d`, `1.5h` → minutes; nil when unreadable or beyond a year.
    static func parseDuration(_ text: String) -> Int? {
        var t = text
        var unit = 1.0
        if let last = t.last, "mhd".contains(last) {
            unit = last == "m" ? 1 : last == "h" ? 60 : 1440
            t.removeLast()
        }
        guard !t.isEmpty, t.utf8.count <= 8, t.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let n = Double(t) else { return nil }
        let minutes = n * unit
        guard minutes.isFinite, minutes >= 0, minutes <= 525_600 else { return nil }
        return Int(minutes.rounded())
    }

    /// Checks steps for a task starting at `initial` percent; each refusal names its field.
    public static func check(_ steps: [Step], initial: Double?, threshold: Double?) -> [FieldError] {
        var errors: [FieldError] = []
        if let threshold, !(threshold >= 0.1 && threshold <= 100) {
            errors.append(FieldError("healthThreshold", "The health threshold is a failure rate from 0.1 to 100 %."))
        }
        guard !steps.isEmpty else { return errors }
        guard let initial else {
            errors.append(FieldError("steps", "Only a percentage release can carry steps."))
            return errors
        }
        if steps.count > maxSteps { errors.append(FieldError("steps", "A ramp takes at most \(maxSteps) steps; this one has \(steps.count).")) }
        var last = initial
        for (i, s) in steps.enumerated() {
            let n = i + 1
            if s.afterMinutes < 1 {
                errors.append(FieldError("steps", "Step \(n) must come at least 1 minute after the one before."))
            } else if s.afterMinutes > maxDelayMinutes {
                errors.append(FieldError("steps", "Step \(n) comes more than 30 days after the one before."))
            }
            if s.promote {
                if i != steps.count - 1 { errors.append(FieldError("steps", "The promotion to official must be the last step (it is step \(n)).")) }
                if s.percentage != nil { errors.append(FieldError("steps", "Step \(n) is a promotion: it takes no percentage.")) }
            } else if let p = s.percentage {
                if !(p >= 0.01 && p <= 100) || abs((p * 100).rounded() - p * 100) > 1e-6 {
                    errors.append(FieldError("steps", "Step \(n)'s percentage must be from 0.01 to 100, with at most two decimals."))
                } else if p <= last {
                    errors.append(FieldError("steps", "Step \(n) must raise the share above \(percent(last)) % (steps only go up)."))
                } else {
                    last = p
                }
            } else {
                errors.append(FieldError("steps", "Step \(n) needs a percentage, or is the promotion."))
            }
        }
        return errors
    }

    public static func percent(_ p: Double) -> String {
        p == p.rounded() ? String(Int(p)) : String(format: "%g", p)
    }

    public static func duration(_ minutes: Int) -> String {
        if minutes % 1440 == 0 { return "\(minutes / 1440) d" }
        if minutes % 60 == 0 { return "\(minutes / 60) h" }
        return "\(minutes) min"
    }

    // MARK: Stored form

    public var json: String {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = .sortedKeys
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The stored plan: nil for none (empty text); throws when it cannot be read (the ramp then
    /// stops: it never advances a release it cannot read).
    public static func stored(_ text: String) throws -> RampPlan? {
        guard !text.isEmpty else { return nil }
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        let plan = try d.decode(RampPlan.self, from: Data(text.utf8))
        guard check(plan.steps, initial: 0, threshold: plan.threshold).isEmpty, plan.done >= 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "steps out of order or out of range"))
        }
        return plan
    }
}
