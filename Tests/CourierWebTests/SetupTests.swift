import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// First run without the command line (SPEC §7).
final class SetupTests: XCTestCase {
    func testTheSetupAddressCreatesTheFirstAdministratorOnce() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        let path = try XCTUnwrap(h.services.setup.path, "no user: a setup address exists")
        try await h.test { client in
            let login = try await client.execute(uri: "/login", method: .get)
            XCTAssertTrue(login.text.contains(#"id="no-user-yet""#), "the sign-in page says where to find it")
            await assertEqual(try await client.execute(uri: "/setup/wrong-token", method: .get).status, .notFound)
            await assertEqual(try await client.execute(uri: path, method: .get).status, .ok)

            func post(_ fields: [(String, String)]) async throws -> TestResponse {
                let body = fields.map { "\($0)=\($1.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }.joined(separator: "&")
                return try await client.execute(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                body: ByteBuffer(string: body))
            }
            let short = try await post([("name", "root"), ("password", "short"), ("password2", "short")])
            XCTAssertEqual(short.status, .unprocessableContent)
            XCTAssertTrue(short.text.contains(#"id="error-password""#) && short.text.contains(#"value="root""#))
            let differ = try await post([("name", "root"), ("password", "long-enough-1"), ("password2", "long-enough-2")])
            XCTAssertTrue(differ.text.contains(#"id="error-password2""#))
            let crossSite = try await client.execute(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded",
                                                                                          .origin: "null"],
                                                     body: ByteBuffer(string: "name=evil&password=long-enough&password2=long-enough"))
            XCTAssertEqual(crossSite.status, .forbidden)
            await assertEqual(try await h.store.userCount(), 0)

            let made = try await post([("name", "root"), ("password", "long-enough-1"), ("password2", "long-enough-1")])
            XCTAssertEqual(made.status, .seeOther)
            XCTAssertEqual(made.headers[.location], "/apps")
            let cookie = String((made.headers[.setCookie] ?? "").split(separator: ";").first ?? "")
            let apps = try await client.execute(uri: "/apps", method: .get, headers: [.cookie: cookie])
            XCTAssertEqual(apps.status, .ok, "signed in as the new administrator")
            XCTAssertTrue(apps.text.contains("root"))
            await assertEqual(try await h.store.user(named: "root")?.role, .admin)
            await assertEqual(try await h.store.auditEntries().first?.user, "(first-run setup)")

            await assertEqual(try await client.execute(uri: path, method: .get).status, .notFound, "it works once")
            let again = try await post([("name", "second"), ("password", "long-enough-1"), ("password2", "long-enough-1")])
            XCTAssertEqual(again.status, .notFound)
            await assertFalse(try await client.execute(uri: "/login", method: .get).text.contains(#"id="no-user-yet""#))
        }
    }

    func testWithAUserPresentThereIsNoSetupAddress() async throws {
        let dir = temporaryDirectory()
        let first = try await Harness.make(dir: dir)
        try await first.addUser("alice")
        let h = try await Harness.make(dir: dir)
        defer { h.cleanUp() }
        XCTAssertNil(h.services.setup.path)
        try await h.test { client in
            await assertEqual(try await client.execute(uri: "/setup/anything", method: .get).status, .notFound)
        }
    }
}
