import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// The Users page (SPEC §7).
final class UsersTests: XCTestCase {
    func testAdministratorsManageUsersAndTheLastActiveAdminStays() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let admin = try await Browser.signIn(client, "alice")
            await assertTrue(try await admin.get("/users").text.contains(#"id="nav-users""#))
            let short = try await admin.post("/users", [("name", "dev"), ("role", "developer"), ("password", "short")])
            XCTAssertEqual(short.status, .unprocessableContent)
            XCTAssertTrue(short.text.contains(#"id="error-password""#) && short.text.contains(#"value="dev""#))
            await assertEqual(try await admin.post("/users", [("name", "dev"), ("role", "developer"), ("password", "correct-horse")]).status, .seeOther)
            await assertEqual(try await admin.post("/users", [("name", "dev"), ("role", "reviewer"), ("password", "correct-horse")]).status, .conflict)

            // The developer works with a session and a token …
            let dev = try await Browser.signIn(client, "dev")
            let token = try await h.services.actions.createToken(by: .commandLine, userName: "dev", scopes: "read")
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await dev.get("/apps").status, .ok)
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .ok)
            await assertEqual(try await dev.get("/users").status, .forbidden, "only administrators manage users")
            // … becomes a reviewer …
            await assertEqual(try await admin.post("/users/dev/role", [("role", "reviewer")]).status, .seeOther)
            await assertEqual(try await h.store.user(named: "dev")?.role, .reviewer)
            await assertEqual(try await dev.post("/apps", [("id", "30000001"), ("name", "x")]).status, .forbidden)
            // … is disabled: the session and the token stop at once, and signing in fails …
            await assertEqual(try await admin.post("/users/dev/disable", []).status, .seeOther)
            await assertEqual(try await dev.get("/apps").status, .seeOther, "back to the sign-in page")
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .unauthorized)
            let refused = try await LoginForm.open(client).submit(name: "dev", password: "correct-horse")
            XCTAssertEqual(refused.status, .unauthorized, "a disabled user cannot sign in")
            // … and enabled again, with a new password.
            await assertEqual(try await admin.post("/users/dev/enable", []).status, .seeOther)
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .ok)
            let weak = try await admin.post("/users/dev/password", [("password", "short")])
            XCTAssertTrue(weak.text.contains(#"id="form-error""#) && weak.text.contains("dev: Give a password"), weak.text)
            await assertEqual(try await admin.post("/users/dev/password", [("password", "another-horse")]).status, .seeOther)
            _ = try await Browser.signIn(client, "dev", "another-horse")

            // The last active administrator can be neither demoted nor disabled.
            let demote = try await admin.post("/users/alice/role", [("role", "developer")])
            XCTAssertEqual(demote.status, .conflict)
            XCTAssertTrue(demote.text.contains("last active administrator"), demote.text)
            await assertEqual(try await admin.post("/users/alice/disable", []).status, .conflict)
            await assertEqual(try await h.store.user(named: "alice")?.role, .admin)
            let actions = try await h.store.auditEntries().map(\.action)
            for a in ["user.create", "user.role", "user.disable", "user.enable", "user.resetPassword"] { XCTAssertTrue(actions.contains(a), a) }
            await assertFalse(try await h.store.auditEntries().contains { $0.detail.contains("$2b$") }, "no hash in the log")
        }
    }

    func testEachPersonChangesTheirOwnPasswordAndTheirOtherSessionsEnd() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("rita", role: .reviewer)
        try await h.test { client in
            let here = try await Browser.signIn(client, "rita")
            let elsewhere = try await Browser.signIn(client, "rita")
            await assertTrue(try await here.get("/apps").text.contains(#"href="/account""#))
            let wrong = try await here.post("/account", [("currentPassword", "not-it-at-all"), ("password", "brand-new-pass"), ("password2", "brand-new-pass")])
            XCTAssertEqual(wrong.status, .unprocessableContent)
            XCTAssertTrue(wrong.text.contains(#"id="error-currentPassword""#))
            let differ = try await here.post("/account", [("currentPassword", "correct-horse"), ("password", "brand-new-pass"), ("password2", "brand-new-pas")])
            XCTAssertTrue(differ.text.contains(#"id="error-password2""#))
            await assertEqual(try await here.post("/account", [("currentPassword", "correct-horse"), ("password", "brand-new-pass"),
                                                              ("password2", "brand-new-pass")]).status, .seeOther)
            await assertEqual(try await here.get("/apps").status, .ok, "this session stays")
            await assertEqual(try await elsewhere.get("/apps").status, .seeOther, "the other session is signed out")
            await assertEqual(try await LoginForm.open(client).submit(name: "rita", password: "correct-horse").status, .unauthorized)
            _ = try await Browser.signIn(client, "rita", "brand-new-pass")
            await assertEqual(try await h.store.auditEntries().first?.action, "user.password")
        }
    }

    /// Issue 15, 3.4: users named with a space, a non-ASCII letter or `/` (allowed before) can be
    /// disabled, given a role and a password through the console; new names use a safe set and
    /// are unique whatever their case; a reset can revoke the user's API tokens.
    func testUsersWithAnyStoredNameCanBeManagedAndNewNamesAreSafe() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        let legacy = ["dan o", "zoë", "a/b", "100%"]
        try await h.store.db.write { db in
            for name in legacy {
                try db.execute(sql: "INSERT INTO user (name, passwordHash, role, createdAt, disabled) VALUES (?, 'x', 'developer', ?, 0)",
                               arguments: [name, Date()])
            }
        }
        try await h.test { client in
            let admin = try await Browser.signIn(client, "alice")
            for name in legacy {
                let disable = try await admin.post(Route.userDisable.path(name), [])
                XCTAssertEqual(disable.status, .seeOther, "\(name): \(disable.text.prefix(300))")
                await assertEqual(try await h.store.user(named: name)?.disabled, true, name)
                await assertEqual(try await admin.post(Route.userRole.path(name), [("role", "reviewer")]).status, .seeOther, name)
                await assertEqual(try await h.store.user(named: name)?.role, .reviewer, name)
                await assertEqual(try await admin.post(Route.userPassword.path(name), [("password", "another-horse")]).status, .seeOther, name)
                await assertEqual(try await admin.post(Route.userEnable.path(name), []).status, .seeOther, name)
                await assertEqual(try await h.store.user(named: name)?.disabled, false, name)
            }
            for bad in ["dan o", "zoë", "a/b", "-x", "x y", String(repeating: "a", count: 65), "courier", "Courier"] {   // courier: the ramps' own name
                let r = try await admin.post("/users", [("name", bad), ("role", "developer"), ("password", "correct-horse")])
                XCTAssertEqual(r.status, .unprocessableContent, bad)
                XCTAssertTrue(r.text.contains(#"id="error-name""#), bad)
            }
            await assertEqual(try await admin.post("/users", [("name", "Dan.Lee_2-x"), ("role", "developer"), ("password", "correct-horse")]).status, .seeOther)
            let twin = try await admin.post("/users", [("name", "dan.lee_2-X"), ("role", "developer"), ("password", "correct-horse")])
            XCTAssertEqual(twin.status, .conflict, "names differing only in case are one person")
            XCTAssertTrue(twin.text.contains("differ only in case"), twin.text)

            // A reset that also revokes the user's tokens, and one that says they still work.
            let token = try await h.services.actions.createToken(by: .commandLine, userName: "Dan.Lee_2-x", scopes: "read")
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .ok)
            let kept = try await admin.post(Route.userPassword.path("Dan.Lee_2-x"), [("password", "another-horse")])
            XCTAssertEqual(kept.status, .seeOther)
            await assertTrue(try await admin.get(try XCTUnwrap(kept.headers[.location])).text
                .contains("Their API tokens still work: revoke them on the API tokens page"), "the reset says the tokens still work")
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .ok, "unticked: the token still works")
            await assertEqual(try await admin.post(Route.userPassword.path("Dan.Lee_2-x"), [("password", "third-horse-x"), ("revokeTokens", "true")]).status,
                              .seeOther)
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .unauthorized, "ticked: the token is revoked")
        }
    }
}
