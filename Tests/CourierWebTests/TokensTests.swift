@testable import CourierDomain
import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// The API tokens page and what the API does with a token's scopes, expiry and revocation (SPEC §7, §8).
final class TokensTests: XCTestCase {
    func testEachPersonCreatesListsAndRevokesTheirOwnTokensAndAdminsSeeAll() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.addUser("dev", role: .developer)
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            let empty = try await dev.get("/tokens")
            XCTAssertTrue(empty.text.contains(#"id="no-tokens""#) && empty.text.contains(#"id="nav-tokens""#))

            // Refusals name their field and create nothing.
            let noScope = try await dev.post("/tokens", [("name", "ci"), ("expires", "")])
            XCTAssertEqual(noScope.status, .unprocessableContent)
            XCTAssertTrue(noScope.text.contains(#"id="error-scope""#) && noScope.text.contains(#"value="ci""#))
            let badDay = try await dev.post("/tokens", [("name", "ci"), ("scope-read", "true"), ("expires", "31/12/2027")])
            XCTAssertTrue(badDay.text.contains(#"id="error-expires""#))
            let past = try await dev.post("/tokens", [("name", "ci"), ("scope-read", "true"), ("expires", "2020-01-01")])
            XCTAssertTrue(past.text.contains("today or a later day"))
            await assertEqual(try await h.store.tokens(of: nil).count, 0)

            let tomorrow = String(ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400)).prefix(10))
            let created = try await dev.post("/tokens", [("name", "checkout CI"), ("scope-read", "true"), ("scope-upload", "true"),
                                                         ("expires", tomorrow)])
            XCTAssertEqual(created.status, .created, created.text)
            let secret = try XCTUnwrap(created.text.firstMatch(of: /id="token-secret" value="(cour_[^"]+)"/)?.1).description
            XCTAssertTrue(created.text.contains("checkout CI") && created.text.contains("end of \(tomorrow)"))
            let again = try await dev.get("/tokens")
            XCTAssertFalse(again.text.contains(secret), "the secret is shown once")
            XCTAssertTrue(again.text.contains("never</td>"), "not used yet")

            let api = APITests.Caller(client: client, token: secret)
            await assertEqual(try await api.call(.get, "/api/v1/apps").status, .ok)
            await assertEqual(try await api.call(.post, "/api/v1/whitelists", json: #"{"name":"w","kind":"user","values":["a"]}"#).status,
                              .forbidden, "no release scope")
            await assertFalse(try await dev.get("/tokens").text.contains("never</td><td><span"), "its last use is listed")

            // Another person's token is neither listed nor revocable; an administrator sees and revokes all.
            let aliceToken = try await h.services.actions.createToken(by: .commandLine, userName: "alice", name: "ops", scopes: "read")
            let aliceID = try await unwrap(try await h.store.tokens(of: "alice").first?.0.id)
            await assertFalse(try await dev.get("/tokens").text.contains("ops"))
            await assertEqual(try await dev.post("/tokens/\(aliceID)/revoke", []).status, .notFound)
            await assertEqual(try await APITests.Caller(client: client, token: aliceToken).call(.get, "/api/v1/apps").status, .ok)
            let alice = try await Browser.signIn(client, "alice")
            let all = try await alice.get("/tokens")
            XCTAssertTrue(all.text.contains("checkout CI") && all.text.contains("ops") && all.text.contains("<th>User</th>"))
            let devID = try await unwrap(try await h.store.tokens(of: "dev").first?.0.id)
            await assertEqual(try await alice.post("/tokens/\(devID)/revoke", []).status, .seeOther)
            let revoked = try await api.call(.get, "/api/v1/apps")
            XCTAssertEqual(revoked.status, .unauthorized)
            XCTAssertTrue(revoked.text.contains("revoked"), revoked.text)
            await assertTrue(try await dev.get("/tokens").text.contains("Revoked by alice"))
            await assertEqual(try await dev.post("/tokens/\(devID)/revoke", []).status, .conflict, "once")

            let actions = try await h.store.auditEntries().map(\.action)
            XCTAssertEqual(actions.filter { $0 == "token.create" }.count, 2)
            XCTAssertEqual(actions.filter { $0 == "token.revoke" }.count, 1)
            await assertFalse(try await h.store.auditEntries().contains { $0.detail.contains(secret) }, "no secret in the log")
        }
    }

    func testAnExpiredTokenIsRefusedAndSaysSo() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("ci", role: .developer)
        let secret = try await h.store.createToken(userName: "ci", scopes: [.read], expiresAt: Date().addingTimeInterval(-1), by: .commandLine)
        let later = try await h.store.createToken(userName: "ci", scopes: [.read], expiresAt: Date().addingTimeInterval(3600), by: .commandLine)
        try await h.test { client in
            let r = try await APITests.Caller(client: client, token: secret).call(.get, "/api/v1/apps")
            XCTAssertEqual(r.status, .unauthorized)
            XCTAssertTrue(r.text.contains("expired"), r.text)
            XCTAssertEqual(r.headers[.wwwAuthenticate], #"Bearer error="invalid_token""#)
            await assertEqual(try await APITests.Caller(client: client, token: later).call(.get, "/api/v1/apps").status, .ok)
        }
        XCTAssertThrowsError(try Actions.tokenExpiry(String(ISO8601DateFormatter().string(from: Date().addingTimeInterval(4 * 366 * 86_400)).prefix(10)),
                                                     now: Date()))
        XCTAssertNil(try Actions.tokenExpiry(" ", now: Date()))
    }
}
