public enum Platform: String, CaseIterable, Codable, Sendable {
    case android, ios
}

/// Which client versions of which platforms a package is for.
public struct ClientRange: Equatable, Sendable, Codable {
    public struct Bounds: Equatable, Sendable, Codable {
        public var min: String
        public var max: String?   // nil: every future version
        public init(min: String, max: String?) {
            self.min = min
            self.max = max
        }
    }
    public var android: Bounds?
    public var ios: Bounds?

    public init(android: Bounds? = nil, ios: Bounds? = nil) {
        self.android = android
        self.ios = ios
    }

    /// Why a stored range cannot be read (a bound that is not a version, a maximum below its
    /// minimum), or nil. Read leniently, such a range would admit too much (a maximum dropped).
    public var problem: String? {
        for (name, b) in [("Android", android), ("iOS", ios)] {
            guard let b else { continue }
            guard let low = try? ClientVersion(validating: b.min, field: "") else { return "the \(name) minimum “\(b.min.prefix(20))”" }
            if let max = b.max {
                guard let high = try? ClientVersion(validating: max, field: "") else { return "the \(name) maximum “\(max.prefix(20))”" }
                if high < low { return "the \(name) maximum \(high) is below its minimum \(low)" }
            }
        }
        return nil
    }

    /// Builds a range from form fields: a platform is chosen when its checkbox is set.
    /// Field names: androidMin, androidMax, iosMin, iosMax, platforms.
    public static func validate(android: Bool, androidMin: String, androidMax: String,
                                ios: Bool, iosMin: String, iosMax: String) throws(FieldErrors) -> ClientRange {
        var errors = FieldErrors()
        guard android || ios else {
            throw FieldErrors([FieldError("platforms", "Choose at least one platform (Android or iOS).")])
        }
        func bounds(_ name: String, _ label: String, _ min: String, _ max: String) -> Bounds? {
            let minText = min.trimmingCharacters(in: .whitespaces)
            let maxText = max.trimmingCharacters(in: .whitespaces)
            if minText.isEmpty {
                errors.append(FieldError("\(name)Min", "Enter the minimum \(label) client version."))
            }
            let low = minText.isEmpty ? nil : errors.collect { () throws(FieldError) in try ClientVersion(validating: minText, field: "\(name)Min") }
            let high = maxText.isEmpty ? nil : errors.collect { () throws(FieldError) in try ClientVersion(validating: maxText, field: "\(name)Max") }
            if let low, let high, high < low {
                errors.append(FieldError("\(name)Max", "The maximum \(label) version \(high) is below the minimum \(low)."))
                return nil
            }
            guard let low else { return nil }
            return Bounds(min: low.description, max: maxText.isEmpty ? nil : high?.description)
        }
        let a = android ? bounds("android", "Android", androidMin, androidMax) : nil
        let i = ios ? bounds("ios", "iOS", iosMin, iosMax) : nil
        if errors.isEmpty, let a, let i {
            let same: Bool
            switch (a.max, i.max) {
            case (nil, nil): same = true
            case let (x?, y?): same = (try? ClientVersion(validating: x, field: "")) == (try? ClientVersion(validating: y, field: ""))
            default: same = false
            }
            if !same {
                errors.append(FieldError("iosMax", "When both platforms are chosen, their maximum versions must both be blank or both the same value."))
            }
        }
        guard errors.isEmpty else { throw errors }
        return ClientRange(android: a, ios: i)
    }

    /// Does a client of this platform and version fall in the range?
    public func admits(_ platform: Platform, _ version: ClientVersion) -> Bool {
        guard let b = platform == .android ? android : ios,
              let low = try? ClientVersion(validating: b.min, field: "") else { return false }
        if version < low { return false }
        if let m = b.max, let high = try? ClientVersion(validating: m, field: ""), high < version { return false }
        return true
    }
}
