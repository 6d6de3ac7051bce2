import Foundation
/// The kinds of refusal a request can end with besides a field's validation (`FieldError`):
/// each maps to one status in one place (CourierWeb's PresentedError), never by its text.

/// The thing asked for does not exist (404).
public struct NotFound: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The request contradicts the current state (409): a duplicate ID, a setting that is written
/// once, a step that needs another first. `field` names the form field to blame, if any.
public struct Conflict: Error, Equatable, Sendable, CustomStringConvertible {
    public let field: String?
    public let description: String
    public init(_ message: String, field: String? = nil) {
        self.field = field
        description = message
    }
}

/// The actor may not do this (403).
public struct Refused: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The server is too busy for this now (503, with `Retry-After`): nothing was done.
public struct Busy: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public let retryAfter: Int
    public init(_ message: String, retryAfter: Int) {
        description = message
        self.retryAfter = retryAfter
    }
}

/// The server's disk (or quota) is full (507): nothing of the request was kept.
public struct StorageFull: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ what: String = "the upload") {
        description = "The server's disk is full: \(what) was not stored, and nothing of it was kept. Free space on the server (or ask its operator), then try again."
    }

    /// True for the errno values that mean no space is left.
    public static func isFull(_ code: Int32) -> Bool { code == ENOSPC || code == EDQUOT }
}

/// Something failed on the server's side (500 or 507): a disk that is full, a file that is
/// missing from the store. The message is for people; it never holds a server path.
public struct ServerFault: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Refusals that name what was asked for only when it has the shape of an ID, a version or a
/// user name: a page must not repeat whatever text someone put in a link, in the console's voice.
extension NotFound {
    public static func app(_ id: String) -> NotFound {
        (try? AppID(validating: id)) != nil ? NotFound("There is no app with ID \(id).") : NotFound("There is no such app.")
    }

    public static func package(_ appId: String, _ version: String) -> NotFound {
        guard (try? AppID(validating: appId)) != nil, (try? PackageVersion(validating: version)) != nil else {
            return NotFound("There is no such package version.")
        }
        return NotFound("App \(appId) has no package version \(version).")
    }

    public static func user(_ name: String) -> NotFound {
        (try? UserName.validate(name)) != nil ? NotFound("There is no user named \(name).") : NotFound("There is no such user.")
    }
}

/// The sentence a person reads for a refusal Courier planned for, or nil for anything else
/// (those are logged, and a person reads that something went wrong).
public func refusalMessage(_ error: Error) -> String? {
    switch error {
    case let e as FieldErrors: e.isEmpty ? nil : e.description
    case let e as FieldError: e.message
    case let e as Conflict: e.description
    case let e as NotFound: e.description
    case let e as Refused: e.description
    case let e as StorageFull: e.description
    case let e as ServerFault: e.description
    case let e as Busy: e.description
    default: nil
    }
}
