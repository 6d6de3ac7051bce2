/// An H5 app's identifier: exactly eight ASCII digits, outside the ranges client SDKs reserve.
public struct AppID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    static let reserved: Set<String> = ["20000196", "66666692", "68687029", "68687209"]

    public init(validating text: String, field: String = "id") throws(FieldError) {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard text.utf8.count == 8, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw FieldError(field, "The app ID must be exactly 8 digits, for example 20171228.")
        }
        if Self.reserved.contains(text) || text.hasPrefix("666666") || text.hasPrefix("20000") {
            throw FieldError(field, "The app ID \(text) is reserved by the client SDKs (IDs starting with 666666 or 20000, and 20000196, 66666692, 68687029, 68687209). Choose another ID.")
        }
        rawValue = text
    }

    /// For values read back from storage, which were validated when written.
    public init(trusted: String) { rawValue = trusted }

    public var description: String { rawValue }
    public static func < (a: AppID, b: AppID) -> Bool { a.rawValue < b.rawValue }
}

public enum AppName {
    public static func validate(_ text: String, field: String = "name") throws(FieldError) -> String {
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw FieldError(field, "Enter a name for the app.") }
        guard name.count <= 64 else {
            throw FieldError(field, "The name is \(name.count) characters long; use at most 64.")
        }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw FieldError(field, "The name must not contain control characters.")
        }
        return name
    }
}
