import Foundation

/// A release task as a form or the API sends it (SPEC §5, §8), before it is checked.
public struct TaskDraft: Sendable {
    /// The most devices a time window admits: every admission is a row until the window
    /// ends, and anyone may ask to be admitted (issue 15).
    public static let maxWindowDevices = 1_000_000
    public struct Rule: Sendable {
        public var field: String
        public var op: String
        public var values: [String]
        public init(field: String, op: String, values: [String]) {
            self.field = field
            self.op = op
            self.values = values
        }
    }

    /// `gray` or `official`.
    public var type = ""
    /// For grayscale: `whitelist`, `timeWindow` or `percentage`.
    public var mode = ""
    public var whitelistIds: [Int64] = []
    /// ISO 8601, e.g. `2026-11-25T18:00:00Z` (a form's `datetime-local` value is read as UTC).
    public var endTime = ""
    public var userCount = ""
    public var percentage = ""
    public var rules: [Rule] = []
    /// Markdown.
    public var description = ""
    /// A percentage task's ramp (SPEC §5): steps as the API sends them, or the form's lines
    /// (`stepLines`, read when `steps` is empty), and the health gate's threshold in percent.
    public var steps: [RampPlan.Step] = []
    public var stepLines = ""
    public var healthThreshold = ""

    public init() {}

    /// The JSON API's task body (SPEC §8): `{"type","mode","whitelistIds","endTime","userCount",
    /// "percentage","rules":[{"field","op","values"}],"description"}`, every field optional here
    /// (`validate` says what is missing). Throws `DecodingError` for JSON of the wrong shape.
    public init(json: Data) throws {
        struct Body: Decodable {
            struct Rule: Decodable { let field: String; let op: String; let values: [String] }
            let type: String?; let mode: String?; let whitelistIds: [Int64]?; let endTime: String?; let userCount: Int?
            let percentage: Double?; let rules: [Rule]?; let description: String?
            let steps: [RampPlan.Step]?; let healthThreshold: Double?
        }
        let b = try JSONDecoder().decode(Body.self, from: json)
        type = b.type ?? ""
        mode = b.mode ?? ""
        whitelistIds = b.whitelistIds ?? []
        endTime = b.endTime ?? ""
        userCount = b.userCount.map(String.init) ?? ""
        percentage = b.percentage.map { String($0) } ?? ""
        rules = (b.rules ?? []).map { Rule(field: $0.field, op: $0.op, values: $0.values) }
        description = b.description ?? ""
        steps = b.steps ?? []
        healthThreshold = b.healthThreshold.map { String($0) } ?? ""
    }

    /// The ramp this draft asks for, checked against the task's kind: nil for none. Each
    /// refusal names its field (`steps`, `healthThreshold`).
    public func validateRamp(_ kind: ReleaseTask.Kind?, now: Date) throws(FieldErrors) -> RampPlan? {
        var errors = FieldErrors()
        var steps = self.steps
        if steps.isEmpty, !stepLines.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            do throws(FieldError) { steps = try RampPlan.parse(lines: stepLines) } catch { errors.append(error) }
        }
        let thresholdText = healthThreshold.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "%", with: "")
        var threshold: Double?
        if !thresholdText.isEmpty {
            if let t = Double(thresholdText), t.isFinite { threshold = t } else {
                errors.append(FieldError("healthThreshold", "The health threshold is a failure rate from 0.1 to 100 %."))
            }
        }
        var initial: Double?
        if case .gray(.percentage(let p), _)? = kind { initial = p }
        let isPercentage = ModeName(rawValue: mode) == .percentage && TaskType(rawValue: type) == .gray
        if isPercentage && initial == nil && !steps.isEmpty {
            initial = TaskDraft.parsePercentage(percentage) ?? 0   // its own error is the percentage field's
        }
        for e in RampPlan.check(steps, initial: initial, threshold: threshold) { errors.append(e) }
        if threshold != nil, steps.isEmpty, errors.isEmpty {
            errors.append(FieldError("healthThreshold", "The health threshold belongs to a ramp: add steps, or leave it empty."))
        }
        guard errors.isEmpty else { throw errors }
        guard !steps.isEmpty else { return nil }
        return RampPlan(steps: steps, threshold: threshold ?? HealthGate.defaultThreshold, since: now)
    }

    public static let maxDescription = 20_000
    public static let maxWindow: TimeInterval = 7 * 24 * 3600

    /// Checks every field at once; `whitelists` are the IDs that exist.
    public func validate(now: Date, whitelists: Set<Int64>) throws(FieldErrors) -> ReleaseTask.Kind {
        var errors = FieldErrors()
        if description.count > Self.maxDescription {
            errors.append(FieldError("description", "The release description is longer than \(Self.maxDescription) characters."))
        }
        switch TaskType(rawValue: type) {
        case .official:
            // Grayscale settings sent with an official release would be dropped without a word,
            // and the release would reach everyone its sender meant to hold back.
            if !grayscaleSettings.isEmpty {
                errors.append(FieldError("type", "An official release goes to every client in the package's range, but grayscale settings are filled in ("
                                         + grayscaleSettings.joined(separator: ", ") + "): clear them, or choose a grayscale release."))
            }
            guard errors.isEmpty else { throw errors }
            return .official
        case .gray:
            break
        case nil:
            errors.append(FieldError("type", "Choose the release type: grayscale or official."))
            throw errors
        }
        var mode: ReleaseTask.Mode?
        switch ModeName(rawValue: self.mode) {
        case .whitelist:
            let ids = Array(Set(whitelistIds)).sorted()
            if ids.isEmpty {
                errors.append(FieldError("whitelistIds", "Choose at least one whitelist."))
            } else if let unknown = ids.first(where: { !whitelists.contains($0) }) {
                errors.append(FieldError("whitelistIds", "Whitelist \(unknown) does not exist (any more)."))
            } else {
                mode = .whitelist(ids)
            }
        case .timeWindow:
            let end = Self.parseTime(endTime)
            if end == nil {
                errors.append(FieldError("endTime", "Enter the end time, like 2026-11-25 18:00 (UTC)."))
            } else if let end, end <= now {
                errors.append(FieldError("endTime", "The end time must be in the future."))
            } else if let end, end.timeIntervalSince(now) > Self.maxWindow {
                errors.append(FieldError("endTime", "The end time must be at most 7 days ahead."))
            }
            let count = Int(userCount.trimmingCharacters(in: .whitespaces))
            if count == nil || count! < 1 || count! > Self.maxWindowDevices {
                errors.append(FieldError("userCount", "Enter how many devices to admit: a whole number from 1 to 1,000,000."))
            }
            if let end, let count, errors.isEmpty { mode = .timeWindow(end: end, userCount: count) }
        case .percentage:
            if let p = Self.parsePercentage(percentage) { mode = .percentage(p) } else {
                errors.append(FieldError("percentage", "Enter a percentage from 0.01 to 100, with at most two decimals."))
            }
        case nil:
            errors.append(FieldError("mode", "Choose the release mode: whitelist, time window or percentage."))
        }
        var checked: [TargetingRule] = []
        if rules.count > 20 { errors.append(FieldError("rules", "A task takes at most 20 advanced rules.")) }
        for (i, r) in rules.prefix(20).enumerated() {
            let name = "rules.\(i)"
            guard let field = TargetingRule.Field(rawValue: r.field) else {
                let fields = TargetingRule.Field.allCases.map(\.label)
                errors.append(FieldError(name, "Choose what rule \(i + 1) looks at: \(fields.dropLast().joined(separator: ", ")) or \(fields.last ?? "")."))
                continue
            }
            guard let op = TargetingRule.Operator(rawValue: r.op) else {
                errors.append(FieldError(name, "Choose the operation of rule \(i + 1): in, not in, between or not between."))
                continue
            }
            do { checked.append(try TargetingRule(field: field, op: op, values: r.values, fieldName: name)) } catch {
                errors.append(error)
            }
        }
        guard errors.isEmpty, let mode else { throw errors }
        return .gray(mode, rules: checked)
    }

    /// The grayscale-only settings that are filled in (a mode alone is not one: the form's
    /// radio always sends one).
    public var grayscaleSettings: [String] {
        var filled: [String] = []
        if !whitelistIds.isEmpty { filled.append("whitelists") }
        if !endTime.trimmingCharacters(in: .whitespaces).isEmpty || !userCount.trimmingCharacters(in: .whitespaces).isEmpty {
            filled.append("time window")
        }
        if !percentage.trimmingCharacters(in: .whitespaces).isEmpty { filled.append("percentage") }
        if rules.contains(where: { !$0.field.isEmpty }) { filled.append("advanced rules") }
        return filled
    }

    public static func parseTime(_ text: String) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        // A time is short ASCII. Anything else is refused before Foundation reads it: its ISO 8601
        // parser traps on some non-ASCII text (fuzz-task found `…10:00:0` + U+0325).
        guard !t.isEmpty, t.utf8.count <= 40, t.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        if let d = try? Date(t, strategy: .iso8601) { return d }
        // `2026-11-25T18:00` (datetime-local) or `2026-11-25 18:00`: read as UTC.
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm", "yyyy-MM-dd'T'HH:mm:ss"] {
            f.dateFormat = format
            if let d = f.date(from: t) { return d }
        }
        return nil
    }

    /// 0.01–100 with at most two decimals.
    public static func parsePercentage(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "%", with: "")
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              !parts[0].isEmpty, parts.count == 1 || (1...2).contains(parts[1].count),
              let p = Double(t), p >= 0.01, p <= 100 else { return nil }
        return p
    }
}
