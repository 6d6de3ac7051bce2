/// A refusal a person can act on: which field is to blame and what to do about it.
public struct FieldError: Error, Equatable, Sendable, CustomStringConvertible {
    public let field: String
    public let message: String
    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { message }

    /// A person's mistake about the form as a whole, shown above it rather than by one field.
    /// (Never a server fault: that is `ServerFault`.)
    public static func aboutTheForm(_ message: String) -> FieldError { FieldError("", message) }
}

/// Several field errors at once, so a form can show every problem in one round trip.
public struct FieldErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public private(set) var errors: [FieldError] = []
    public init(_ errors: [FieldError] = []) { self.errors = errors }
    public var isEmpty: Bool { errors.isEmpty }
    public mutating func append(_ error: FieldError) { errors.append(error) }
    public subscript(field: String) -> String? { errors.first { $0.field == field }?.message }
    public var description: String { errors.map(\.message).joined(separator: " ") }

    /// Runs `body`, recording its `FieldError` instead of throwing; returns nil on error. Only a
    /// person's mistake can be collected: anything else is not turned into a form message.
    public mutating func collect<T>(_ body: () throws(FieldError) -> T) -> T? {
        do throws(FieldError) { return try body() } catch {
            append(error)
            return nil
        }
    }
}
