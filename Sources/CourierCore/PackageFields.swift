import Foundation

/// One setting of a package (SPEC §2), described once. The console form, the API's JSON in and
/// out, an import row's edit, `courier push`'s defaults, the OpenAPI schema, the package page,
/// the reviewer's page and, for a setting sent to devices, the update answer all read
/// `PackageField.all`. A new setting is one entry here (with its check) and its tests; it is
/// stored in the package's `moreSettings` column, so it needs no migration.
public struct PackageField: Sendable {
    public struct Choice: Sendable {
        public let value: String
        /// Beside its radio button.
        public let label: String
        /// On the package and review pages.
        public let fact: String
        /// In an import row's one-line summary.
        public let words: String
        public init(_ value: String, label: String, fact: String, words: String) {
            self.value = value; self.label = label; self.fact = fact; self.words = words
        }
    }

    public enum Input: Sendable {
        case line(placeholder: String)
        case lines(placeholder: String)
        case choice([Choice])
        /// A checkbox; stored in a draft as `true` or empty.
        case flag
    }

    public typealias Check = @Sendable (String) throws -> String

    /// The form field's name, the JSON key, the draft's key.
    public let key: String
    public let label: String
    /// Shown beside the label.
    public let hint: String
    public let input: Input
    public let defaultValue: String
    /// Laid out by hand in the form and checked together in `PackageDraft.validate` (the
    /// version, the type, the client range); every other field is drawn from this table.
    public let laidOutByHand: Bool
    /// Empty means "not set": JSON null.
    public let optional: Bool
    /// Has a column of its own in the package table (the settings older than this table).
    public let hasColumn: Bool
    /// The key in a device's update answer when the value is sent as it is (nil: not sent, or
    /// sent in a shape of its own, see `DeliveryEntry`).
    public let answerKey: String?
    let customCheck: Check?

    public init(_ key: String, label: String, hint: String = "", input: Input, defaultValue: String = "",
                laidOutByHand: Bool = false, optional: Bool = false, hasColumn: Bool = false, answerKey: String? = nil,
                check: Check? = nil) {
        self.key = key; self.label = label; self.hint = hint; self.input = input; self.defaultValue = defaultValue
        self.laidOutByHand = laidOutByHand; self.optional = optional; self.hasColumn = hasColumn; self.answerKey = answerKey
        customCheck = check
    }

    public var choices: [Choice] { if case .choice(let c) = input { c } else { [] } }
    public var isFlag: Bool { if case .flag = input { true } else { false } }

    /// The value's canonical form, or the `FieldError` that says why `text` is refused. A
    /// choice is one of its values; a field without a check is taken as typed.
    public func check(_ text: String) throws(FieldError) -> String {
        if case .choice(let c) = input {
            guard c.contains(where: { $0.value == text }) else {
                throw FieldError(key, "Choose the \(label.lowercased()): " + c.map(\.value).joined(separator: " or ") + ".")
            }
            return text
        }
        guard let customCheck else { return text }
        do { return try customCheck(text) } catch let e as FieldError { throw e } catch {
            throw FieldError(key, "\(label) cannot be read.")
        }
    }

    /// How a stored value reads on the package and review pages.
    public func fact(_ value: String) -> String {
        if let choice = choices.first(where: { $0.value == value }) { return choice.fact }
        return value.isEmpty || value == "{}" ? "—" : value
    }

    public static let all: [PackageField] = [
        PackageField("version", label: "Version", input: .line(placeholder: "1.0.0.1"), laidOutByHand: true, hasColumn: true),
        PackageField("type", label: "Resource package type", input: .choice([
            Choice("normal", label: "Normal", fact: "normal", words: "normal"),
            Choice("global", label: "Global", fact: "global", words: "global"),
        ]), laidOutByHand: true, hasColumn: true),
        PackageField("android", label: "Android", input: .flag, laidOutByHand: true, hasColumn: true),
        PackageField("androidMin", label: "Android minimum", input: .line(placeholder: "10.1.0"), laidOutByHand: true, optional: true, hasColumn: true),
        PackageField("androidMax", label: "Android maximum", input: .line(placeholder: "blank = every future version"), laidOutByHand: true,
                     optional: true, hasColumn: true),
        PackageField("ios", label: "iOS", input: .flag, laidOutByHand: true, hasColumn: true),
        PackageField("iosMin", label: "iOS minimum", input: .line(placeholder: "10.1.0"), laidOutByHand: true, optional: true, hasColumn: true),
        PackageField("iosMax", label: "iOS maximum", input: .line(placeholder: "blank = every future version"), laidOutByHand: true,
                     optional: true, hasColumn: true),
        PackageField("mainUrl", label: "Main entrance URL", hint: "(optional)", input: .line(placeholder: "/www/index.html"),
                     optional: true, hasColumn: true, check: { try MainURL.validate($0) ?? "" }),
        PackageField("extendInfo", label: "Extended info", hint: "(JSON object of strings or numbers, ≤ 4 KiB)",
                     input: .lines(placeholder: #"{"asyncReqRate":"1800"}"#), hasColumn: true, check: { try ExtendedInfo.validate($0) }),
        PackageField("downloadPolicy", label: "Download policy", input: .choice([
            Choice("wifi", label: "Download in the background on Wi-Fi only", fact: "Wi-Fi only", words: "Wi-Fi only"),
            Choice("all", label: "Download on any network", fact: "Any network", words: "any network"),
        ]), defaultValue: "wifi", hasColumn: true),
        PackageField("installPolicy", label: "Install policy", input: .choice([
            Choice("lazy", label: "Lazy: install when first opened", fact: "Lazy (install when first opened)", words: "install when opened"),
            Choice("preload", label: "Preload: install as soon as downloaded", fact: "Preload (install when downloaded)", words: "install at once"),
        ]), defaultValue: "lazy", hasColumn: true),
    ]

    public static let named: [String: PackageField] = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })
    /// The fields drawn from this table (not laid out by hand), in form order.
    public static var described: [PackageField] { all.filter { !$0.laidOutByHand } }
}

/// What a person (or CI) typed for a new package, before validation: every field of
/// `PackageField.all` as text, as it came from the form, the API or an import row's edit.
/// A field never set reads as its default, also in a draft stored before the field existed.
public struct PackageDraft: Sendable, Equatable, Codable {
    private var values: [String: String] = [:]

    public init() {}

    public subscript(key: String) -> String {
        get { values[key] ?? PackageField.named[key]?.defaultValue ?? "" }
        set {
            assert(PackageField.named[key] != nil, "\(key) is not a package field")
            if PackageField.named[key] != nil { values[key] = newValue }
        }
    }

    public var version: String { get { self["version"] } set { self["version"] = newValue } }
    public var type: String { get { self["type"] } set { self["type"] = newValue } }
    public var android: Bool { get { self["android"] == "true" } set { self["android"] = newValue ? "true" : "" } }
    public var androidMin: String { get { self["androidMin"] } set { self["androidMin"] = newValue } }
    public var androidMax: String { get { self["androidMax"] } set { self["androidMax"] = newValue } }
    public var ios: Bool { get { self["ios"] == "true" } set { self["ios"] = newValue ? "true" : "" } }
    public var iosMin: String { get { self["iosMin"] } set { self["iosMin"] = newValue } }
    public var iosMax: String { get { self["iosMax"] } set { self["iosMax"] = newValue } }
    public var mainUrl: String { get { self["mainUrl"] } set { self["mainUrl"] = newValue } }
    public var extendInfo: String { get { self["extendInfo"] } set { self["extendInfo"] = newValue } }
    public var downloadPolicy: String { get { self["downloadPolicy"] } set { self["downloadPolicy"] = newValue } }
    public var installPolicy: String { get { self["installPolicy"] } set { self["installPolicy"] = newValue } }

    public static func == (a: PackageDraft, b: PackageDraft) -> Bool {
        PackageField.all.allSatisfy { a[$0.key] == b[$0.key] }
    }


    /// Every field, flags as booleans (the shape drafts were stored in before this table).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        for f in PackageField.all {
            if f.isFlag { try c.encode(self[f.key] == "true", forKey: JSONKey(f.key)) } else { try c.encode(self[f.key], forKey: JSONKey(f.key)) }
        }
    }

    /// Keys this binary does not know are ignored; a missing key keeps its default, so a draft
    /// stored before a field existed is read whole.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: JSONKey.self)
        for f in PackageField.all where c.contains(JSONKey(f.key)) {
            if f.isFlag {
                let on = (try? c.decode(Bool.self, forKey: JSONKey(f.key))) ?? ((try? c.decode(String.self, forKey: JSONKey(f.key))) == "true")
                values[f.key] = on ? "true" : ""
            } else {
                values[f.key] = try c.decode(String.self, forKey: JSONKey(f.key))
            }
        }
    }
}

/// A JSON key named at run time (the package settings are keyed by `PackageField.key`).
public struct JSONKey: CodingKey {
    public let stringValue: String
    public init(_ s: String) { stringValue = s }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}
