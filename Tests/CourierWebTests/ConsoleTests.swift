import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

final class ConsoleTests: XCTestCase {
    func testEveryConsolePageRequiresASession() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            for path in ["/apps", "/settings", "/apps/new", "/apps/20171228", "/"] {
                let r = try await client.execute(uri: path, method: .get)
                XCTAssertEqual(r.status, .seeOther, path)
                XCTAssertTrue(r.headers[.location]?.hasPrefix("/login?next=") == true, path)
            }
            let post = try await client.execute(uri: "/apps", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                body: ByteBuffer(string: "id=20171228&name=x"))
            XCTAssertEqual(post.status, .seeOther)
            XCTAssertNil(try h.store.app("20171228"))
            let forged = try await client.execute(uri: "/apps", method: .get, headers: [.cookie: "courier_session=forged"])
            XCTAssertEqual(forged.status, .seeOther)
        }
    }

    func testSignInSetsAStrictHttpOnlyCookieAndRefusesWrongPasswords() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("alice")
        try await h.test { client in
            let wrong = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                 body: ByteBuffer(string: "name=alice&password=nope"))
            XCTAssertEqual(wrong.status, .unauthorized)
            XCTAssertTrue(wrong.text.contains("The user name or password is wrong."))
            XCTAssertTrue(wrong.text.contains(#"value="alice""#), "the name stays filled in")

            let ok = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                              body: ByteBuffer(string: "name=alice&password=correct-horse&next=%2Fsettings"))
            XCTAssertEqual(ok.status, .seeOther)
            XCTAssertEqual(ok.headers[.location], "/settings")
            let cookie = ok.headers[.setCookie] ?? ""
            XCTAssertTrue(cookie.contains("HttpOnly"), cookie)
            XCTAssertTrue(cookie.contains("SameSite=Strict"), cookie)

            let offsite = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                   body: ByteBuffer(string: "name=alice&password=correct-horse&next=%2F%2Fevil.example"))
            XCTAssertEqual(offsite.headers[.location], "/apps", "no open redirect after sign-in")

            // Sign out ends the session server-side.
            let b = Browser(client: client, cookie: String(cookie.split(separator: ";")[0]), csrf: "")
            let out = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: b.cookie])
            XCTAssertEqual(out.status, .seeOther)
            await assertEqual(try await b.get("/apps").status, .seeOther)
        }
    }

    func testFailedSignInsAreThrottled() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("bob")
        try await h.test { client in
            func attempt(_ password: String) async throws -> TestResponse {
                try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                         body: ByteBuffer(string: "name=bob&password=\(password)"))
            }
            for _ in 0..<5 { await assertEqual(try await attempt("wrong").status, .unauthorized) }
            let blocked = try await attempt("correct-horse")
            XCTAssertEqual(blocked.status, .tooManyRequests)
            XCTAssertTrue(blocked.text.contains("Too many failed sign-ins"))
            XCTAssertNotNil(blocked.headers[.init("Retry-After")!])
        }
    }

    func testStateChangesNeedTheSessionsCSRFTokenAndSameOrigin() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            XCTAssertFalse(b.csrf.isEmpty)
            let missing = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], csrf: "")
            XCTAssertEqual(missing.status, .forbidden)
            XCTAssertTrue(missing.text.contains("Reload the page"))
            let wrong = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], csrf: "x" + b.csrf.dropFirst())
            XCTAssertEqual(wrong.status, .forbidden)
            let crossSite = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], origin: "https://evil.example")
            XCTAssertEqual(crossSite.status, .forbidden)
            XCTAssertNil(try h.store.app("20171228"))
            let upload = try await b.client.execute(uri: "/apps/20171228/packages", method: .post,
                                                    headers: [.cookie: b.cookie, .contentType: "multipart/form-data; boundary=x"],
                                                    body: ByteBuffer(string: "--x--\r\n"))
            XCTAssertEqual(upload.status, .forbidden, "multipart uploads carry the token in the query")
            await assertEqual(try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")]).status, .seeOther)
        }
    }

    func testVirtualDomainIsConfirmedWrittenOnceAndThenReadOnly() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let unconfirmed = try await b.post("/settings/virtual-domain", [("virtualDomain", "h5app.example.com")])
            XCTAssertEqual(unconfirmed.status, .unprocessableContent)
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-confirm""#))
            XCTAssertTrue(unconfirmed.text.contains(#"value="h5app.example.com""#), "the typed value is kept")
            let bad = try await b.post("/settings/virtual-domain", [("virtualDomain", "https://H5.example.com/"), ("confirm", "true")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-virtualDomain""#))
            XCTAssertNil(try h.store.settings().virtualDomain)

            let ok = try await b.post("/settings/virtual-domain", [("virtualDomain", "h5app.example.com"), ("confirm", "true")])
            XCTAssertEqual(ok.headers[.location], "/settings?saved=domain")
            let page = try await b.get("/settings?saved=domain").text
            XCTAssertTrue(page.contains(#"id="virtual-domain-value">h5app.example.com"#))
            XCTAssertFalse(page.contains(#"name="virtualDomain""#), "no input once set")

            let again = try await b.post("/settings/virtual-domain", [("virtualDomain", "other.example.com"), ("confirm", "true")])
            XCTAssertEqual(again.status, .conflict)
            XCTAssertTrue(again.text.contains("cannot be changed"))
            XCTAssertEqual(try h.store.settings().virtualDomain, "h5app.example.com")
        }
    }

    func testGlobalSettingsAndSigningKeyPage() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let bad = try await b.post("/settings/global", [("globalHost", "mcube"), ("appKey", "nounderscore")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-globalHost""#) && bad.text.contains(#"id="error-appKey""#))
            await assertEqual(try await b.post("/settings/global", [("globalHost", "mcube.example.com"), ("appKey", "53E5279071442_test")]).status, .seeOther)
            XCTAssertEqual(try h.store.settings().appKey, "53E5279071442_test")

            let notPEM = try await b.post("/settings/signing-key", [("privateKey", "hello")])
            XCTAssertEqual(notPEM.status, .unprocessableContent)
            XCTAssertTrue(notPEM.text.contains(#"id="error-privateKey""#))
            await assertEqual(try await b.post("/settings/signing-key/generate", []).status, .seeOther)
            let fingerprint = try h.store.settings().signingKeyFingerprint
            XCTAssertNotNil(fingerprint)
            let page = try await b.get("/settings").text
            XCTAssertTrue(page.contains(fingerprint!))
            XCTAssertFalse(page.contains("PRIVATE KEY-----\n"), "the private key is never shown")
            let pub = try await client.execute(uri: "/api/v1/settings/public-key", method: .get)
            XCTAssertEqual(pub.status, .ok)
            XCTAssertTrue(pub.text.hasPrefix("-----BEGIN PUBLIC KEY-----"))

            // Replacing needs the explicit confirmation.
            let unconfirmed = try await b.post("/settings/signing-key/generate", [("confirmReplace", "false")])
            XCTAssertEqual(unconfirmed.status, .unprocessableContent)
            XCTAssertEqual(try h.store.settings().signingKeyFingerprint, fingerprint)
        }
    }

    func testCreateAppValidationListSearchAndPagination() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let bad = try await b.post("/apps", [("id", "1234"), ("name", "")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-id""#) && bad.text.contains("exactly 8 digits"))
            XCTAssertTrue(bad.text.contains(#"id="error-name""#))
            let reserved = try await b.post("/apps", [("id", "66666601"), ("name", "X")])
            XCTAssertTrue(reserved.text.contains("reserved"))
            await assertEqual(try await b.post("/apps", [("id", "30000000"), ("name", "<script>alert(1)</script>")]).status, .seeOther)
            let dup = try await b.post("/apps", [("id", "30000000"), ("name", "Again")])
            XCTAssertEqual(dup.status, .conflict)
            XCTAssertTrue(dup.text.contains("already exists"))

            for i in 1...24 { _ = try h.store.createApp(id: .init(trusted: String(30000000 + i)), name: "App number \(i)") }
            let first = try await b.get("/apps").text
            XCTAssertEqual(first.components(separatedBy: "<tr><td><a href=\"/apps/").count - 1, 20)
            XCTAssertTrue(first.contains("Page 1 of 2 · 25 apps"))
            XCTAssertTrue(first.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "names are escaped")
            XCTAssertFalse(first.contains("<script>alert(1)"))
            let second = try await b.get("/apps?page=2").text
            XCTAssertEqual(second.components(separatedBy: "<tr><td><a href=\"/apps/").count - 1, 5)
            let search = try await b.get("/apps?q=number%2017").text
            XCTAssertTrue(search.contains("App number 17"))
            XCTAssertTrue(search.contains("1 apps"))
            await assertTrue(try await b.get("/apps?q=30000024").text.contains("App number 24"))
            await assertTrue(try await b.get("/apps?q=%25").text.contains("No app matches"), "LIKE wildcards are literal")
        }
    }

    func testReviewersReadButCannotChange() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try h.addUser("rita", role: .reviewer)
        try await h.test { client in
            let b = try await Browser.signIn(client, "rita")
            await assertEqual(try await b.get("/apps").status, .ok)
            await assertEqual(try await b.get("/settings").status, .forbidden)
            await assertEqual(try await b.post("/apps", [("id", "20171228"), ("name", "x")]).status, .forbidden)
            await assertEqual(try await b.post("/settings/signing-key/generate", []).status, .forbidden)
        }
    }

    func testUnknownAddressesGetAPage() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let r = try await client.execute(uri: "/no/such/page", method: .get)
            XCTAssertEqual(r.status, .notFound)
            XCTAssertTrue(r.headers[.contentType]?.hasPrefix("text/html") == true)
            XCTAssertTrue(r.text.contains("404") && r.text.contains("Sign in"))
            let css = try await client.execute(uri: "/static/courier.css", method: .get)
            XCTAssertEqual(css.status, .ok)
            XCTAssertTrue(css.text.contains(".field-error"))
            await assertEqual(try await client.execute(uri: "/static/courier.js", method: .get).status, .ok)
            let api = try await client.execute(uri: "/api/v1/nothing", method: .get)
            XCTAssertEqual(api.status, .notFound)
        }
    }

    func testMarkdownIsRenderedSafely() {
        let html = Markdown.html("# Notes\n\n*new* <script>alert(1)</script> [x](javascript:alert(1))")
        XCTAssertTrue(html.contains("<h1>Notes</h1>"))
        XCTAssertTrue(html.contains("<em>new</em>"))
        XCTAssertFalse(html.contains("<script>"))
        XCTAssertFalse(html.contains("javascript:"))
    }
}
