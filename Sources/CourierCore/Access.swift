/// Who may do what (SPEC §7). One table: a route or an action names the permission it needs,
/// and both the console and the JSON API ask this file.
public enum Role: String, Codable, CaseIterable, Sendable {
    case admin, developer, reviewer

    public var permissions: Set<Permission> {
        switch self {
        case .admin: Set(Permission.allCases)
        case .developer: [.read, .editApps, .uploadPackages, .editReleases]
        case .reviewer: [.read, .approveReleases]
        }
    }

    public func may(_ permission: Permission) -> Bool { permissions.contains(permission) }

    /// What the role is for, as the Users page says it.
    public var summary: String {
        switch self {
        case .admin: "Everything: configuration, the signing key, users and tokens, and every release. May approve others' releases."
        case .developer: "Creates apps, adds offline packages, manages whitelists and release tasks (create, pause, promote, roll back). Cannot approve."
        case .reviewer: "Reads everything and approves or rejects the releases others asked for. Changes nothing else."
        }
    }
}

/// Each thing a person or a token can be allowed to do.
public enum Permission: String, CaseIterable, Sendable {
    /// See apps, packages and settings (the console's pages, the API's GETs).
    case read
    /// Create apps and change their details.
    case editApps
    /// Add offline packages.
    case uploadPackages
    /// Virtual domain, global resource settings.
    case editSettings
    /// Install or generate the signing key.
    case editSigningKey
    /// Whitelists and release tasks (create, pause, resume, finish, promote, roll back, delete).
    case editReleases
    /// Add users and create API tokens.
    case manageUsers
    /// Approve or reject release tasks that wait for a reviewer (never one's own).
    case approveReleases

    /// The token scope an API request needs for this permission (SPEC §8).
    public var scope: TokenScope {
        switch self {
        case .read: .read
        case .editApps, .uploadPackages: .upload
        case .editReleases, .approveReleases: .release
        // Settings, approval rules and the signing key change what every release means: a CI
        // upload token must not reach them.
        case .editSettings, .editSigningKey, .manageUsers: .admin
        }
    }
}

/// What an API token may be used for; the token's user must also hold the permission.
public enum TokenScope: String, CaseIterable, Sendable {
    case read, upload, release
    /// Settings, approval rules and the signing key; only for an administrator's tokens.
    case admin

    /// Parses `read,upload`; nil when empty or when a name is unknown.
    public static func parse(_ text: String) -> Set<TokenScope>? {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let scopes = names.compactMap(TokenScope.init(rawValue:))
        guard !names.isEmpty, scopes.count == names.count else { return nil }
        return Set(scopes)
    }
}

/// The acting person (or CI token) of a change, as the audit log records it.
public struct ActingUser: Sendable, Equatable {
    public let name: String
    public let role: Role
    /// The token's scopes when acting through the API; nil for the console and the CLI.
    public let scopes: Set<TokenScope>?

    public init(name: String, role: Role, scopes: Set<TokenScope>? = nil) {
        self.name = name
        self.role = role
        self.scopes = scopes
    }

    /// The command line acts with full rights as the operator of the machine.
    public static let commandLine = ActingUser(name: "(command line)", role: .admin)
    /// Changes Courier makes by itself (a time window that ends).
    public static let scheduler = ActingUser(name: "(scheduler)", role: .admin)
    /// A ramp's steps and its health gate (SPEC §5), recorded as user `courier`.
    public static let courier = ActingUser(name: "courier", role: .developer)

    public func may(_ permission: Permission) -> Bool {
        role.may(permission) && (scopes?.contains(permission.scope) ?? true)
    }

    /// Refuses unless the actor holds `permission` (role and, for tokens, scope).
    public func require(_ permission: Permission) throws(Refused) {
        guard role.may(permission) else {
            throw Refused("Your role (\(role.rawValue)) cannot do this; ask an administrator.")
        }
        if let scopes, !scopes.contains(permission.scope) {
            throw Refused("This token lacks the \(permission.scope.rawValue) scope.")
        }
    }
}

/// A console user's name: what can be typed, put in a URL and told apart.
public enum UserName {
    /// Checks a new name: 1–64 of ASCII letters, digits, `.`, `_` and `-`, starting with a letter
    /// or digit. (A space, `/` or a non-ASCII letter made a user that the console's forms could
    /// not address; names differing only in case are refused by the store.)
    public static func validate(_ raw: String, field: String = "name") throws(FieldError) -> String {
        let name = raw.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.utf8.count <= 64 else { throw FieldError(field, "The user name must be 1–64 characters.") }
        let allowed = name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
        }
        guard allowed, let first = name.utf8.first, first != 0x2E, first != 0x5F, first != 0x2D else {
            throw FieldError(field, "A user name uses only letters A–Z, digits and . _ - (starting with a letter or digit), like dan.lee.")
        }
        return name
    }

    /// Names a person's account may not take: `courier` is Courier's own, in the audit log
    /// (a ramp's steps and its health gate), and a person must not be mistaken for it.
    public static let reserved: Set<String> = ["courier"]

    /// Checks the name of an account being created: `validate`, and not a reserved name.
    public static func validateNew(_ raw: String, field: String = "name") throws(FieldError) -> String {
        let name = try validate(raw, field: field)
        if reserved.contains(name.lowercased()) {
            throw FieldError(field, "The name \(name) is Courier's own: the audit log records its ramps' steps under it. Choose another.")
        }
        return name
    }
}

/// The password rule, for every form and command that sets one.
public enum Password {
    public static let minimumLength = 8

    /// Checks a new password and, when `repeated` is given, that it was typed the same twice.
    public static func validate(_ password: String, repeated: String? = nil, field: String = "password",
                                repeatField: String = "password2", new: Bool = false) throws(FieldError) {
        guard password.count >= minimumLength else {
            throw FieldError(field, "Give a \(new ? "new " : "")password of at least \(minimumLength) characters.")
        }
        if let repeated, repeated != password {
            throw FieldError(repeatField, "The two \(new ? "new " : "")passwords differ.")
        }
    }
}

/// Courier always keeps an active administrator (someone must be able to manage users).
public enum AdministratorRule {
    /// Refuses a change to `user` that leaves no active administrator: `wasActive` says whether
    /// `user` was one before it, `activeAfter` how many there are once it is made (counted in the
    /// change's transaction, whose store holds other writers to users off until it commits).
    public static func check(changing user: String, wasActive: Bool, activeAfter: Int) throws(Conflict) {
        guard activeAfter > 0 || !wasActive else {
            throw Conflict("\(user) is the last active administrator: add or enable another administrator first.")
        }
    }
}
