import CourierCore
import CourierStore
import Foundation
import GRDB

extension SQLiteStore {
    public func createUser(name: String, passwordHash: String, role: Role, by actor: ActingUser) async throws -> UserRecord {
        try await change(by: actor, "user.create", subject: name, catalogue: false) { db in
            // "dan" and "Dan" would be two people to the database and one to everyone else.
            if let existing = try UserRecord.filter(sql: "lower(name) = lower(?)", arguments: [name]).fetchOne(db) {
                throw Conflict("A user named \(existing.name) already exists\(existing.name == name ? "" : " (names differ only in case)").", field: "name")
            }
            var u = UserRecord(name: name, passwordHash: passwordHash, role: role)
            try u.insert(db)
            return (u, ["role": role.rawValue])
        }
    }

    public func userCount() async throws -> Int {
        try await db.read { db in try UserRecord.fetchCount(db) }
    }

    public func createFirstAdmin(name: String, passwordHash: String) async throws -> UserRecord {
        try await change(by: ActingUser(name: "(first-run setup)", role: .admin), "user.create", subject: name, catalogue: false) { db in
            guard try UserRecord.fetchCount(db) == 0 else {
                throw Conflict("Courier already has a user; sign in instead.")
            }
            var u = UserRecord(name: name, passwordHash: passwordHash, role: .admin)
            try u.insert(db)
            return (u, ["role": Role.admin.rawValue, "via": "setup"])
        }
    }

    public func user(named name: String) async throws -> UserRecord? {
        try await db.read { db in try UserRecord.filter(UserRecord.Columns.name == name).fetchOne(db) }
    }

    public func createSession(userId: Int64, lifetime: TimeInterval) async throws -> (cookie: String, session: SessionRecord) {
        let cookie = TokenHash.randomSecret()
        let session = SessionRecord(idHash: TokenHash.of(cookie), userId: userId,
                                    csrfToken: TokenHash.randomSecret(), expiresAt: Date().addingTimeInterval(lifetime))
        try await db.write { db in
            try db.execute(sql: "DELETE FROM session WHERE expiresAt < ?", arguments: [Date()])
            try session.insert(db)
        }
        return (cookie, session)
    }

    public func session(cookie: String) async throws -> (SessionRecord, UserRecord)? {
        try await db.read { db in
            guard let s = try SessionRecord.fetchOne(db, key: TokenHash.of(cookie)), s.expiresAt > Date(),
                  let u = try UserRecord.fetchOne(db, key: s.userId), !u.disabled else { return nil }
            return (s, u)
        }
    }

    public func deleteSession(cookie: String) async throws {
        _ = try await db.write { db in try SessionRecord.deleteOne(db, key: TokenHash.of(cookie)) }
    }

    public func createToken(userName: String, name: String, scopes: Set<TokenScope>, expiresAt: Date?,
                            by actor: ActingUser) async throws -> String {
        let secret = "cour_" + TokenHash.randomSecret()
        let names = scopes.map(\.rawValue).sorted().joined(separator: ",")
        return try await change(by: actor, "token.create", subject: userName, catalogue: false) { db in
            guard let user = try UserRecord.filter(UserRecord.Columns.name == userName).fetchOne(db), let userId = user.id else {
                throw NotFound.user(userName)
            }
            var t = APITokenRecord(id: nil, userId: userId, tokenHash: TokenHash.of(secret), scopes: names, createdAt: Date())
            t.name = name
            t.expiresAt = expiresAt
            try t.insert(db)
            var detail = ["token": String(t.id ?? 0), "name": name, "scopes": names]
            if let expiresAt { detail["expires"] = ISO8601DateFormatter().string(from: expiresAt) }
            return (secret, detail)
        }
    }

    public func tokenHashes() async throws -> [String] {
        try await db.read { db in try APITokenRecord.fetchAll(db).map(\.tokenHash) }
    }

    public func token(secret: String) async throws -> (APITokenRecord, UserRecord)? {
        try await db.read { db in
            guard let t = try APITokenRecord.filter(APITokenRecord.Columns.tokenHash == TokenHash.of(secret)).fetchOne(db),
                  let u = try UserRecord.fetchOne(db, key: t.userId) else { return nil }
            return (t, u)
        }
    }

    public func touchToken(_ id: Int64, at date: Date) async throws {
        try await db.write { db in try db.execute(sql: "UPDATE apiToken SET lastUsedAt = ? WHERE id = ?", arguments: [date, id]) }
    }

    public func tokens(of userName: String?) async throws -> [(APITokenRecord, user: String)] {
        try await db.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT apiToken.*, user.name AS userName FROM apiToken JOIN user ON user.id = apiToken.userId
                WHERE ? IS NULL OR user.name = ? ORDER BY apiToken.id DESC
                """, arguments: [userName, userName])
            return try rows.map { (try APITokenRecord(row: $0), $0["userName"] as String) }
        }
    }

    public func revokeToken(_ id: Int64, owner: String?, by actor: ActingUser) async throws -> APITokenRecord {
        try await change(by: actor, "token.revoke", subject: String(id), catalogue: false) { db in
            guard var t = try APITokenRecord.fetchOne(db, key: id), let user = try UserRecord.fetchOne(db, key: t.userId),
                  owner == nil || owner == user.name else {
                throw NotFound("There is no API token \(id) of yours.")
            }
            guard t.revokedAt == nil else { throw Conflict("API token \(id) is already revoked.") }
            t.revokedAt = Date()
            t.revokedBy = actor.name
            try t.update(db)
            return (t, ["user": user.name, "name": t.name])
        }
    }

    static func registerTokenMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v8-token-details") { db in
            try db.alter(table: "apiToken") { t in
                t.add(column: "name", .text).notNull().defaults(to: "")
                t.add(column: "expiresAt", .datetime)
                t.add(column: "lastUsedAt", .datetime)
                t.add(column: "revokedAt", .datetime)
                t.add(column: "revokedBy", .text)
            }
        }
    }

    // MARK: Users page

    static func registerUserMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v6-user-disabled") { db in
            try db.alter(table: "user") { t in t.add(column: "disabled", .boolean).notNull().defaults(to: false) }
        }
    }

    public func users() async throws -> [UserRecord] {
        try await db.read { db in try UserRecord.order(UserRecord.Columns.name).fetchAll(db) }
    }

    /// Changes a user: `body` edits the record; the last active administrator always stays.
    public func changeUser(_ name: String, _ action: String, by actor: ActingUser, signOut: Bool, revokeTokens: Bool,
                    _ body: @escaping @Sendable (inout UserRecord) throws -> [String: String]) async throws -> UserRecord {
        try await change(by: actor, action, subject: name, catalogue: false) { db in
            guard var user = try UserRecord.filter(UserRecord.Columns.name == name).fetchOne(db) else {
                throw NotFound.user(name)
            }
            let wasActiveAdmin = user.role == .admin && !user.disabled
            var detail = try body(&user)
            let others = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user WHERE role = 'admin' AND disabled = 0 AND id != ?",
                                          arguments: [user.id]) ?? 0
            try AdministratorRule.check(changing: name, wasActive: wasActiveAdmin,
                                        activeAfter: others + (user.role == .admin && !user.disabled ? 1 : 0))
            try user.update(db)
            if signOut, let id = user.id {
                try db.execute(sql: "DELETE FROM session WHERE userId = ?", arguments: [id])
            }
            if revokeTokens, let id = user.id {
                try db.execute(sql: "UPDATE apiToken SET revokedAt = ?, revokedBy = ? WHERE userId = ? AND revokedAt IS NULL",
                               arguments: [Date(), actor.name, id])
                detail["tokensRevoked"] = String(db.changesCount)
            }
            return (user, detail)
        }
    }

    public func changeOwnPassword(_ name: String, passwordHash: String, keep sessionHash: String?, by actor: ActingUser) async throws {
        _ = try await changeUser(name, "user.password", by: actor, signOut: false, revokeTokens: false) { u in
            u.passwordHash = passwordHash
            return [:]
        }
        try await db.write { db in
            guard let user = try UserRecord.filter(UserRecord.Columns.name == name).fetchOne(db), let id = user.id else { return }
            try db.execute(sql: "DELETE FROM session WHERE userId = ? AND idHash != ?", arguments: [id, sessionHash ?? ""])
        }
    }
}
