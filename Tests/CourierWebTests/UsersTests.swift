import CourierCore
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
}
