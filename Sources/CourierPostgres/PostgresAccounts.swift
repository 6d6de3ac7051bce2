import CourierCore
import CourierStore
import Foundation
import PostgresNIO

/// Users, sessions and API tokens on PostgreSQL. The rules that count users lock what they
/// count: the first administrator locks the user table against other writers, a change to an
/// administrator locks every active administrator's row.
extension PostgresStore: AccountStore {
    static let userColumns = "id, name, password_hash, role, created_at, disabled"
    typealias UserRow = (Int64, String, String, String, Date, Bool)

    /// Read strictly: a role this binary does not know is refused.
    static func user(_ r: UserRow) throws -> UserRecord {
        guard let role = Role(rawValue: r.3) else { throw ServerFault("A user's stored role cannot be read.") }
        var u = UserRecord(name: r.1, passwordHash: r.2, role: role)
        u.id = r.0; u.createdAt = r.4; u.disabled = r.5
        return u
    }

    func users(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [UserRecord] {
        try await rows(query, as: (Int64, String, String, String, Date, Bool).self, on: c).map(Self.user)
    }

    func insertUser(_ c: PostgresConnection, _ u: UserRecord) async throws -> UserRecord {
        var u = u
        u.id = try await all("""
            INSERT INTO courier_user (name, password_hash, role, created_at, disabled)
            VALUES (\(u.name), \(u.passwordHash), \(u.role.rawValue), \(u.createdAt), \(u.disabled)) RETURNING id
            """, as: Int64.self, on: c).first
        return u
    }

    public func createUser(name: String, passwordHash: String, role: Role, by actor: ActingUser) async throws -> UserRecord {
        try await change(by: actor, "user.create", subject: name, catalogue: false) { c in
            // "dan" and "Dan" would be two people to the database and one to everyone else.
            if let existing = try await users("SELECT \(unescaped: Self.userColumns) FROM courier_user WHERE lower(name) = lower(\(name))", on: c).first {
                throw Conflict("A user named \(existing.name) already exists\(existing.name == name ? "" : " (names differ only in case)").", field: "name")
            }
            return (try await insertUser(c, UserRecord(name: name, passwordHash: passwordHash, role: role)), ["role": role.rawValue])
        }
    }

    public func userCount() async throws -> Int {
        Int(try await all("SELECT COUNT(*) FROM courier_user", as: Int64.self).first ?? 0)
    }

    public func createFirstAdmin(name: String, passwordHash: String) async throws -> UserRecord {
        try await change(by: ActingUser(name: "(first-run setup)", role: .admin), "user.create", subject: name, catalogue: false) { c in
            // Two first-run forms at once, on two nodes: the second waits here, then finds a user.
            try await c.query("LOCK TABLE courier_user IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            guard try await all("SELECT COUNT(*) FROM courier_user", as: Int64.self, on: c).first == 0 else {
                throw Conflict("Courier already has a user; sign in instead.")
            }
            return (try await insertUser(c, UserRecord(name: name, passwordHash: passwordHash, role: .admin)),
                    ["role": Role.admin.rawValue, "via": "setup"])
        }
    }

    public func user(named name: String) async throws -> UserRecord? {
        try await users("SELECT \(unescaped: Self.userColumns) FROM courier_user WHERE name = \(name)").first
    }

    public func createSession(userId: Int64, lifetime: TimeInterval) async throws -> (cookie: String, session: SessionRecord) {
        let cookie = TokenHash.randomSecret()
        let session = SessionRecord(idHash: TokenHash.of(cookie), userId: userId,
                                    csrfToken: TokenHash.randomSecret(), expiresAt: Date().addingTimeInterval(lifetime))
        try await transaction { c in
            try await c.query("DELETE FROM session WHERE expires_at < \(Date())", logger: logger)
            try await c.query("""
                INSERT INTO session (id_hash, user_id, csrf_token, expires_at)
                VALUES (\(session.idHash), \(session.userId), \(session.csrfToken), \(session.expiresAt))
                """, logger: logger)
        }
        return (cookie, session)
    }

    public func session(cookie: String) async throws -> (SessionRecord, UserRecord)? {
        let found = try await rows("""
            SELECT s.id_hash, s.user_id, s.csrf_token, s.expires_at, u.id, u.name, u.password_hash, u.role, u.created_at, u.disabled
            FROM session s JOIN courier_user u ON u.id = s.user_id WHERE s.id_hash = \(TokenHash.of(cookie))
            """, as: (String, Int64, String, Date, Int64, String, String, String, Date, Bool).self)
        guard let r = found.first, r.3 > Date() else { return nil }
        let u = try Self.user((r.4, r.5, r.6, r.7, r.8, r.9))
        return u.disabled ? nil : (SessionRecord(idHash: r.0, userId: r.1, csrfToken: r.2, expiresAt: r.3), u)
    }

    public func deleteSession(cookie: String) async throws {
        try await client.query("DELETE FROM session WHERE id_hash = \(TokenHash.of(cookie))", logger: logger)
    }

    // MARK: API tokens

    static let tokenColumns = "t.id, t.user_id, t.token_hash, t.scopes, t.created_at, t.name, t.expires_at, t.last_used_at, t.revoked_at, t.revoked_by"
    typealias TokenRow = (Int64, Int64, String, String, Date, String, Date?, Date?, Date?, String?)

    static func token(_ r: TokenRow) -> APITokenRecord {
        var t = APITokenRecord(id: r.0, userId: r.1, tokenHash: r.2, scopes: r.3, createdAt: r.4)
        t.name = r.5; t.expiresAt = r.6; t.lastUsedAt = r.7; t.revokedAt = r.8; t.revokedBy = r.9
        return t
    }

    public func createToken(userName: String, name: String, scopes: Set<TokenScope>, expiresAt: Date?,
                            by actor: ActingUser) async throws -> String {
        let secret = "cour_" + TokenHash.randomSecret()
        let names = scopes.map(\.rawValue).sorted().joined(separator: ",")
        return try await change(by: actor, "token.create", subject: userName, catalogue: false) { c in
            guard let user = try await users("SELECT \(unescaped: Self.userColumns) FROM courier_user WHERE name = \(userName)", on: c).first,
                  let userId = user.id else {
                throw NotFound.user(userName)
            }
            let id = try await all("""
                INSERT INTO api_token (user_id, token_hash, scopes, created_at, name, expires_at)
                VALUES (\(userId), \(TokenHash.of(secret)), \(names), \(Date()), \(name), \(expiresAt)) RETURNING id
                """, as: Int64.self, on: c).first ?? 0
            var detail = ["token": String(id), "name": name, "scopes": names]
            if let expiresAt { detail["expires"] = ISO8601DateFormatter().string(from: expiresAt) }
            return (secret, detail)
        }
    }

    public func tokenHashes() async throws -> [String] {
        try await all("SELECT token_hash FROM api_token", as: String.self)
    }

    public func token(secret: String) async throws -> (APITokenRecord, UserRecord)? {
        let found = try await rows("""
            SELECT \(unescaped: Self.tokenColumns), u.id, u.name, u.password_hash, u.role, u.created_at, u.disabled
            FROM api_token t JOIN courier_user u ON u.id = t.user_id WHERE t.token_hash = \(TokenHash.of(secret))
            """, as: (Int64, Int64, String, String, Date, String, Date?, Date?, Date?, String?,
                      Int64, String, String, String, Date, Bool).self)
        guard let r = found.first else { return nil }
        return (Self.token((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9)), try Self.user((r.10, r.11, r.12, r.13, r.14, r.15)))
    }

    public func touchToken(_ id: Int64, at date: Date) async throws {
        try await client.query("UPDATE api_token SET last_used_at = \(date) WHERE id = \(id)", logger: logger)
    }

    public func tokens(of userName: String?) async throws -> [(APITokenRecord, user: String)] {
        try await rows("""
            SELECT \(unescaped: Self.tokenColumns), u.name FROM api_token t JOIN courier_user u ON u.id = t.user_id
            WHERE \(userName)::text IS NULL OR u.name = \(userName) ORDER BY t.id DESC
            """, as: (Int64, Int64, String, String, Date, String, Date?, Date?, Date?, String?, String).self)
            .map { (Self.token(($0.0, $0.1, $0.2, $0.3, $0.4, $0.5, $0.6, $0.7, $0.8, $0.9)), user: $0.10) }
    }

    public func revokeToken(_ id: Int64, owner: String?, by actor: ActingUser) async throws -> APITokenRecord {
        try await change(by: actor, "token.revoke", subject: String(id), catalogue: false) { c in
            let found = try await rows("""
                SELECT \(unescaped: Self.tokenColumns), u.name FROM api_token t JOIN courier_user u ON u.id = t.user_id
                WHERE t.id = \(id) FOR UPDATE OF t
                """, as: (Int64, Int64, String, String, Date, String, Date?, Date?, Date?, String?, String).self, on: c)
            guard let r = found.first, owner == nil || owner == r.10 else { throw NotFound("There is no API token \(id) of yours.") }
            var t = Self.token((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9))
            guard t.revokedAt == nil else { throw Conflict("API token \(id) is already revoked.") }
            t.revokedAt = Date()
            t.revokedBy = actor.name
            try await c.query("UPDATE api_token SET revoked_at = \(t.revokedAt), revoked_by = \(t.revokedBy) WHERE id = \(id)", logger: logger)
            return (t, ["user": r.10, "name": t.name])
        }
    }

    // MARK: Users page

    public func users() async throws -> [UserRecord] {
        try await users("SELECT \(unescaped: Self.userColumns) FROM courier_user ORDER BY name")
    }

    /// Changes a user: `body` edits the record; the last active administrator always stays.
    /// Every active administrator's row is locked first, so two nodes demoting the last two
    /// administrators at once cannot both see the other one still there.
    public func changeUser(_ name: String, _ action: String, by actor: ActingUser, signOut: Bool, revokeTokens: Bool,
                    _ body: @escaping @Sendable (inout UserRecord) throws -> [String: String]) async throws -> UserRecord {
        try await change(by: actor, action, subject: name, catalogue: false) { c in
            let admins = try await all("SELECT id FROM courier_user WHERE role = 'admin' AND NOT disabled ORDER BY id FOR UPDATE",
                                       as: Int64.self, on: c)
            guard var user = try await users("SELECT \(unescaped: Self.userColumns) FROM courier_user WHERE name = \(name) FOR UPDATE", on: c).first,
                  let id = user.id else {
                throw NotFound.user(name)
            }
            let wasActiveAdmin = user.role == .admin && !user.disabled
            var detail = try body(&user)
            let others = admins.filter { $0 != id }.count
            try AdministratorRule.check(changing: name, wasActive: wasActiveAdmin,
                                        activeAfter: others + (user.role == .admin && !user.disabled ? 1 : 0))
            try await c.query("""
                UPDATE courier_user SET password_hash = \(user.passwordHash), role = \(user.role.rawValue), disabled = \(user.disabled)
                WHERE id = \(id)
                """, logger: logger)
            if signOut { try await c.query("DELETE FROM session WHERE user_id = \(id)", logger: logger) }
            if revokeTokens {
                let revoked = try await all("""
                    UPDATE api_token SET revoked_at = \(Date()), revoked_by = \(actor.name) WHERE user_id = \(id) AND revoked_at IS NULL RETURNING id
                    """, as: Int64.self, on: c)
                detail["tokensRevoked"] = String(revoked.count)
            }
            return (user, detail)
        }
    }

    public func changeOwnPassword(_ name: String, passwordHash: String, keep sessionHash: String?, by actor: ActingUser) async throws {
        let user = try await changeUser(name, "user.password", by: actor, signOut: false, revokeTokens: false) { u in
            u.passwordHash = passwordHash
            return [:]
        }
        guard let id = user.id else { return }
        try await client.query("DELETE FROM session WHERE user_id = \(id) AND id_hash != \(sessionHash ?? "")", logger: logger)
    }
}
