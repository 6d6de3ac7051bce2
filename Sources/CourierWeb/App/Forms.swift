import Foundation
import Hummingbird

/// `application/x-www-form-urlencoded` fields. The last value wins for a repeated name;
/// `all(_:)` gives every value (checkbox groups).
public struct FormFields: Sendable {
    public private(set) var pairs: [(String, String)] = []

    public init() {}
    public init(_ dictionary: [String: String]) { pairs = dictionary.map { ($0.key, $0.value) } }

    public init(urlEncoded body: String) {
        for piece in body.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            pairs.append((decode(kv[0]), kv.count > 1 ? decode(kv[1]) : ""))
        }
    }

    public mutating func append(_ name: String, _ value: String) { pairs.append((name, value)) }

    public subscript(name: String) -> String { pairs.last { $0.0 == name }?.1 ?? "" }
    public func has(_ name: String) -> Bool { pairs.contains { $0.0 == name } }
    public func all(_ name: String) -> [String] { pairs.filter { $0.0 == name }.map(\.1) }
    /// A checkbox counts as checked when sent with any value but "false".
    public func isChecked(_ name: String) -> Bool { has(name) && self[name] != "false" }
}

extension Request {
    /// The query as a GET form sends it (`application/x-www-form-urlencoded`, where `+` is a
    /// space): `uri.queryParameters` leaves `+` as it is, so a search for "New York" was one
    /// for "New+York". For every value a person types.
    var queryFields: FormFields { FormFields(urlEncoded: uri.query ?? "") }
}
