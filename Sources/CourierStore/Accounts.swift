import CourierCore
import Foundation
import GRDB

extension Store {
    public func createUser(name: String, passwordHash: String, role: Role) throws -> UserRecord {
        try db.write { db in
            if try UserRecord.filter(Column("name") == name).fetchOne(db) != nil {
                throw FieldError("name", "A user named \(name) already exists.")
            }
            var u = UserRecord(name: name, passwordHash: passwordHash, role: role)
            try u.insert(db)
            return u
        }
    }

    public func user(named name: String) throws -> UserRecord? {
        try db.read { db in try UserRecord.filter(Column("name") == name).fetchOne(db) }
    }

    public func user(id: Int64) throws -> UserRecord? {
        try db.read { db in try UserRecord.fetchOne(db, key: id) }
    }

    /// Starts a session; returns the cookie value (only its hash is stored).
    public func createSession(userId: Int64, lifetime: TimeInterval) throws -> (cookie: String, session: SessionRecord) {
        let cookie = TokenHash.randomSecret()
        let session = SessionRecord(idHash: TokenHash.of(cookie), userId: userId,
                                    csrfToken: TokenHash.randomSecret(), expiresAt: Date().addingTimeInterval(lifetime))
        try db.write { db in
            try db.execute(sql: "DELETE FROM session WHERE expiresAt < ?", arguments: [Date()])
            try session.insert(db)
        }
        return (cookie, session)
    }

    public func session(cookie: String) throws -> (SessionRecord, UserRecord)? {
        try db.read { db in
            guard let s = try SessionRecord.fetchOne(db, key: TokenHash.of(cookie)), s.expiresAt > Date(),
                  let u = try UserRecord.fetchOne(db, key: s.userId) else { return nil }
            return (s, u)
        }
    }

    public func deleteSession(cookie: String) throws {
        _ = try db.write { db in try SessionRecord.deleteOne(db, key: TokenHash.of(cookie)) }
    }

    public static let tokenScopes: Set<String> = ["read", "upload", "release"]

    /// Creates an API token; returns the secret (shown once, stored hashed).
    public func createToken(userName: String, scopes: [String]) throws -> String {
        let wanted = Set(scopes.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        guard !wanted.isEmpty, wanted.isSubset(of: Self.tokenScopes) else {
            throw FieldError("scope", "Scopes must be some of read, upload, release (comma-separated).")
        }
        guard let user = try user(named: userName) else { throw FieldError("user", "There is no user named \(userName).") }
        let secret = "cour_" + TokenHash.randomSecret()
        var t = APITokenRecord(id: nil, userId: user.id!, tokenHash: TokenHash.of(secret),
                               scopes: wanted.sorted().joined(separator: ","), createdAt: Date())
        try db.write { db in try t.insert(db) }
        return secret
    }

    public func token(secret: String) throws -> (APITokenRecord, UserRecord)? {
        try db.read { db in
            guard let t = try APITokenRecord.filter(Column("tokenHash") == TokenHash.of(secret)).fetchOne(db),
                  let u = try UserRecord.fetchOne(db, key: t.userId) else { return nil }
            return (t, u)
        }
    }
}
