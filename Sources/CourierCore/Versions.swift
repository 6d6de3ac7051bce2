import Foundation

/// A package version: four dot-separated integers 0–99999, compared part by part.
public struct PackageVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let parts: [Int]

    public init(validating text: String, field: String = "version") throws {
        let text = text.trimmingCharacters(in: .whitespaces)
        let pieces = text.split(separator: ".", omittingEmptySubsequences: false)
        let parts = pieces.compactMap { Self.number($0) }
        guard pieces.count == 4, parts.count == 4 else {
            throw FieldError(field, "The version must be four numbers separated by dots, each 0–99999, for example 1.0.0.1.")
        }
        self.parts = parts
    }

    public init(parts: [Int]) { self.parts = parts }

    /// The version to suggest after `highest`: the last part plus one, carrying into the part
    /// before it when a part is at 99999; nil when no valid higher version exists.
    public static func suggestedNext(after highest: PackageVersion?) -> PackageVersion? {
        guard let highest else { return PackageVersion(parts: [1, 0, 0, 0]) }
        var parts = highest.parts
        var i = parts.count - 1
        while i >= 0 {
            if parts[i] < 99999 {
                parts[i] += 1
                return PackageVersion(parts: parts)
            }
            parts[i] = 0
            i -= 1
        }
        return nil
    }

    /// The next version for a batch import: the last part plus one.
    public func nextPatch() -> PackageVersion? {
        guard parts[3] < 99999 else { return nil }
        return PackageVersion(parts: [parts[0], parts[1], parts[2], parts[3] + 1])
    }

    static func number(_ s: Substring) -> Int? {
        guard (1...5).contains(s.utf8.count), s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(s)
    }

    public var description: String { parts.map(String.init).joined(separator: ".") }
    public static func < (a: PackageVersion, b: PackageVersion) -> Bool { a.parts.lexicographicallyPrecedes(b.parts) }
}

/// A mobile app's version: 1–4 dot-separated integers; missing parts count as 0.
public struct ClientVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let parts: [Int]
    public let description: String

    public init(validating text: String, field: String) throws {
        let text = text.trimmingCharacters(in: .whitespaces)
        let pieces = text.split(separator: ".", omittingEmptySubsequences: false)
        let parts = pieces.compactMap { s -> Int? in
            guard (1...9).contains(s.utf8.count), s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int(s)
        }
        guard (1...4).contains(pieces.count), parts.count == pieces.count else {
            throw FieldError(field, "Enter a client version of 1 to 4 numbers separated by dots, for example 10.2.3.")
        }
        self.parts = parts
        self.description = text
    }

    var padded: [Int] { parts + Array(repeating: 0, count: 4 - parts.count) }
    public static func == (a: ClientVersion, b: ClientVersion) -> Bool { a.padded == b.padded }
    public func hash(into h: inout Hasher) { h.combine(padded) }
    public static func < (a: ClientVersion, b: ClientVersion) -> Bool { a.padded.lexicographicallyPrecedes(b.padded) }
}
