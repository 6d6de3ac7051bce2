import Foundation

/// A package version: four dot-separated integers 0–99999, compared part by part.
public struct PackageVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The four parts packed two by two (each part is below 100,000), so that comparing and
    /// hashing a version — done for every app of every update request — touches no array.
    private let high: UInt64
    private let low: UInt64

    public var parts: [Int] { [Int(high / 100_000), Int(high % 100_000), Int(low / 100_000), Int(low % 100_000)] }

    public init(validating text: String, field: String = "version") throws(FieldError) {
        let text = text.trimmingCharacters(in: .whitespaces)
        let pieces = text.split(separator: ".", omittingEmptySubsequences: false)
        let parts = pieces.compactMap { Self.number($0) }
        guard pieces.count == 4, parts.count == 4 else {
            throw FieldError(field, "The version must be four numbers separated by dots, each 0–99999, for example 1.0.0.1.")
        }
        self.init(parts: parts)
    }

    /// Four parts, each 0–99999 (missing parts count as 0, values outside are clamped).
    public init(parts: [Int]) {
        func part(_ i: Int) -> UInt64 { i < parts.count ? UInt64(min(max(parts[i], 0), 99_999)) : 0 }
        high = part(0) * 100_000 + part(1)
        low = part(2) * 100_000 + part(3)
    }

    /// The same rule as `init(validating:)`, read byte by byte (the client API's hot path);
    /// text with surrounding spaces takes the general path.
    public init?(fast text: String) {
        var done: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        var value: UInt64 = 0, digits = 0
        for b in text.utf8 {
            switch b {
            case 0x30...0x39:
                digits += 1
                guard digits <= 5 else { return nil }
                value = value * 10 + UInt64(b - 0x30)
            case UInt8(ascii: "."):
                guard digits > 0, count < 3 else { return nil }
                switch count {
                case 0: done.0 = value
                case 1: done.1 = value
                default: done.2 = value
                }
                count += 1
                value = 0; digits = 0
            default:
                guard let v = try? PackageVersion(validating: text) else { return nil }
                self = v
                return
            }
        }
        guard digits > 0, count == 3 else { return nil }
        high = done.0 * 100_000 + done.1
        low = done.2 * 100_000 + value
    }

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

    public var description: String { "\(high / 100_000).\(high % 100_000).\(low / 100_000).\(low % 100_000)" }
    public static func < (a: PackageVersion, b: PackageVersion) -> Bool { a.high < b.high || (a.high == b.high && a.low < b.low) }
}

/// A mobile app's version: 1–4 dot-separated integers; missing parts count as 0.
public struct ClientVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let parts: [Int]
    public let description: String
    /// The parts with missing ones as 0, packed two by two (each is below 10^9), made once:
    /// comparisons run on every update request.
    private let packed: (high: UInt64, low: UInt64)

    private static func pack(_ parts: [Int]) -> (high: UInt64, low: UInt64) {
        func part(_ i: Int) -> UInt64 { i < parts.count ? UInt64(parts[i]) : 0 }
        return (part(0) << 32 | part(1), part(2) << 32 | part(3))
    }

    public init(validating text: String, field: String) throws(FieldError) {
        // The usual text, read byte by byte: digits and dots only.
        var fast: [Int] = []
        var value = 0, digits = 0, plain = true
        for b in text.utf8 {
            if b >= 0x30 && b <= 0x39 {
                digits += 1
                value = value &* 10 &+ Int(b - 0x30)
            } else if b == UInt8(ascii: "."), digits > 0 {
                fast.append(value)
                value = 0; digits = 0
            } else {
                plain = false
                break
            }
            if digits > 9 || fast.count > 3 { plain = false; break }
        }
        if plain, digits > 0 {
            fast.append(value)
            self.parts = fast
            self.description = text
            self.packed = Self.pack(fast)
            return
        }
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
        self.packed = Self.pack(parts)
    }
    public static func == (a: ClientVersion, b: ClientVersion) -> Bool { a.packed == b.packed }
    public func hash(into h: inout Hasher) { h.combine(packed.high); h.combine(packed.low) }
    public static func < (a: ClientVersion, b: ClientVersion) -> Bool { a.packed < b.packed }
}
