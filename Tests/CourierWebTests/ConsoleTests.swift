@testable import CourierDomain
import CourierArchive
import CourierCore
import HTTPTypes
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
            await assertNil(try await h.store.app("20171228"))
            let forged = try await client.execute(uri: "/apps", method: .get, headers: [.cookie: "courier_session=forged"])
            XCTAssertEqual(forged.status, .seeOther)
        }
    }

    func testSignInSetsAStrictHttpOnlyCookieAndRefusesWrongPasswords() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let form = try await LoginForm.open(client)
            let wrong = try await form.submit(name: "alice", password: "nope")
            XCTAssertEqual(wrong.status, .unauthorized)
            XCTAssertTrue(wrong.text.contains("The user name or password is wrong."))
            XCTAssertTrue(wrong.text.contains(#"value="alice""#), "the name stays filled in")

            let ok = try await form.submit(name: "alice", password: "correct-horse", next: "/settings")
            XCTAssertEqual(ok.status, .seeOther)
            XCTAssertEqual(ok.headers[.location], "/settings")
            let cookie = ok.headers[.setCookie] ?? ""
            XCTAssertTrue(cookie.contains("HttpOnly"), cookie)
            XCTAssertTrue(cookie.contains("SameSite=Strict"), cookie)

            let offsite = try await form.submit(name: "alice", password: "correct-horse", next: "//evil.example")
            XCTAssertEqual(offsite.headers[.location], "/apps", "no open redirect after sign-in")
            let tabbed = try await form.submit(name: "alice", password: "correct-horse", next: "/\t/evil.example")
            XCTAssertEqual(tabbed.headers[.location], "/apps", "a tab browsers strip cannot hide a second slash")
        }
    }

    func testOnlyAPathOnThisSiteIsFollowedAfterSignIn() {
        for bad in ["//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "\t//evil.example", " //evil.example",
                    "/\r\n/evil.example", "https://evil.example", "/ /evil", "/", "", "evil", "/\u{7F}x", "/apps\\..\\x"] {
            XCTAssertEqual(safeNext(bad), "/apps", bad.debugDescription)
        }
        XCTAssertEqual(safeNext("/settings"), "/settings")
        XCTAssertEqual(safeNext("/apps/20171228?files=2"), "/apps/20171228?files=2")
        XCTAssertEqual(safeNext(" /settings\n"), "/settings", "what browsers strip is stripped here too")
        XCTAssertEqual(safeNext(nil), "/apps")
    }

    func testSignInNeedsItsFormTokenAndRefusesOpaqueOrigins() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let form = try await LoginForm.open(client)
            let noCookie = try await form.submit(name: "alice", password: "correct-horse", cookie: "")
            XCTAssertEqual(noCookie.status, .forbidden)
            XCTAssertTrue(noCookie.text.contains("expired"))
            XCTAssertNil(noCookie.headers[.location])
            let wrongToken = try await form.submit(name: "alice", password: "correct-horse", token: (form.token.first == "x" ? "y" : "x") + form.token.dropFirst())
            XCTAssertEqual(wrongToken.status, .forbidden)
            let opaque = try await form.submit(name: "alice", password: "correct-horse", headers: [.origin: "null"])
            XCTAssertEqual(opaque.status, .forbidden, "a sandboxed page or data: URL sends Origin: null")
            let crossSite = try await form.submit(name: "alice", password: "correct-horse", headers: [.init("Sec-Fetch-Site")!: "cross-site"])
            XCTAssertEqual(crossSite.status, .forbidden)
            await assertEqual(try await form.submit(name: "alice", password: "correct-horse").status, .seeOther)
        }
    }

    func testSignOutNeedsTheCSRFToken() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let forged = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: b.cookie])
            XCTAssertEqual(forged.status, .forbidden, "no token, no sign-out")
            let opaque = try await b.post("/logout", [], origin: "null")
            XCTAssertEqual(opaque.status, .forbidden)
            await assertEqual(try await b.get("/apps").status, .ok, "still signed in")
            let out = try await b.post("/logout", [])
            XCTAssertEqual(out.status, .seeOther)
            await assertEqual(try await b.get("/apps").status, .seeOther, "the session ended server-side")
        }
    }

    func testFailedSignInsAreThrottledPerNameAndAddress() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("bob")
        try await h.test { client in
            let form = try await LoginForm.open(client)
            for _ in 0..<5 { await assertEqual(try await form.submit(name: "bob", password: "wrong").status, .unauthorized) }
            let blocked = try await form.submit(name: "bob", password: "correct-horse")
            XCTAssertEqual(blocked.status, .tooManyRequests)
            XCTAssertTrue(blocked.text.contains("Too many failed sign-ins"))
            XCTAssertNotNil(blocked.headers[.init("Retry-After")!])
        }
    }

    func testParallelGuessesAreCountedBeforeAnyPasswordIsChecked() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("carol")
        try await h.test { client in
            let form = try await LoginForm.open(client)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for i in 0..<40 {
                    group.addTask { try await form.submit(name: "carol", password: i == 39 ? "correct-horse" : "guess-\(i)").status }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            let checked = statuses.filter { $0 == .unauthorized || $0 == .seeOther }.count
            XCTAssertEqual(checked, 5, "only five of forty parallel guesses reach bcrypt: \(statuses)")
            XCTAssertEqual(statuses.filter { $0 == .tooManyRequests }.count, 35)
        }
    }

    func testThrottleKeepsOtherAddressesAndOtherNamesOpenAndStaysBounded() async throws {
        let t = LoginThrottle(maxKeys: 100)
        func allowed(_ name: String, _ address: String) async -> LoginThrottle.Ticket? {
            if case .success(let ticket)? = try? await t.reserve(name: name, address: address) { return ticket }
            return nil
        }
        for _ in 0..<5 { _ = await allowed("alice", "10.0.0.1") }
        let lockedHere = await allowed("alice", "10.0.0.1")
        XCTAssertNil(lockedHere, "five failures for alice from one address lock that pair")
        let elsewhere = await allowed("alice", "10.0.0.2")
        XCTAssertNotNil(elsewhere, "alice can still sign in from another address")

        // A success for bob from an address does not wipe alice's failures from it.
        for _ in 0..<4 { _ = await allowed("dave", "10.0.0.3") }
        if let bob = await allowed("bob", "10.0.0.3") { try await t.succeeded(bob) } else { XCTFail("bob refused") }
        _ = await allowed("dave", "10.0.0.3")
        let daveAfter = await allowed("dave", "10.0.0.3")
        XCTAssertNil(daveAfter, "dave's count survived bob's success")

        // Twenty failures from one address close it to every name.
        for i in 0..<20 { _ = await allowed("name\(i)", "10.0.0.4") }
        let newName = await allowed("somebody-new", "10.0.0.4")
        XCTAssertNil(newName)

        // Long names and many addresses cannot grow the table without bound.
        for i in 0..<1000 { _ = await allowed(String(repeating: "x", count: 10_000) + "\(i)", "192.0.2.\(i)") }
        let keys = await t.keyCount
        XCTAssertLessThanOrEqual(keys, 100)
        let longest = await t.attempts.keys.map(\.utf8.count).max() ?? 0
        XCTAssertLessThan(longest, 200, "names are cut before they become keys")
    }

    func testAnIPv6ClientIsCountedByItsSlash64() {
        XCTAssertEqual(LoginThrottle.network(of: "2001:db8::1"), LoginThrottle.network(of: "2001:db8:0:0:ffff::2"))
        XCTAssertEqual(LoginThrottle.network(of: "2001:DB8:0000:0000::7"), "2001:db8:0:0::/64")
        XCTAssertNotEqual(LoginThrottle.network(of: "2001:db8:0:1::1"), LoginThrottle.network(of: "2001:db8::1"))
        XCTAssertEqual(LoginThrottle.network(of: "192.0.2.7"), "192.0.2.7")
        XCTAssertEqual(LoginThrottle.network(of: "::1"), "0:0:0:0::/64")
    }

    func testPasswordChecksQueueOnTheirOwnPoolAndRefuseABurst() async throws {
        let hasher = PasswordHasher(maxWaiting: 2)
        let hash = try await hasher.hash("pw", cost: 4)
        // Two checks hold the queue (one running on the pool, one waiting for it) until the gate opens.
        let gate = DispatchSemaphore(value: 0)
        var opened = false
        defer { if !opened { gate.signal(); gate.signal() } }   // never leave the shared pool's thread waiting
        async let first = hasher.run { gate.wait(); return true }
        async let second = hasher.run { gate.wait(); return true }
        for _ in 0..<2000 where hasher.waiting.withLockedValue({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(hasher.waiting.withLockedValue { $0 }, 2)
        do {
            _ = try await hasher.verify("pw", hash: hash)
            XCTFail("a check beyond the queue is refused at once")
        } catch let error as Busy {
            XCTAssertEqual(error.retryAfter, 2)
            let shown = try XCTUnwrap(PresentedError(error))
            XCTAssertEqual(shown.status, .serviceUnavailable)
            XCTAssertEqual(shown.headers[HTTPField.Name("Retry-After")!], "2")
        }
        gate.signal(); gate.signal()
        opened = true
        let admitted = try await [first, second]
        XCTAssertEqual(admitted, [true, true], "the queued ones are run")
        let afterwards = try await hasher.verify("pw", hash: hash)
        XCTAssertTrue(afterwards, "the queue is open again once they finish")
    }

    func testStateChangesNeedTheSessionsCSRFTokenAndSameOrigin() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            XCTAssertFalse(b.csrf.isEmpty)
            let missing = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], csrf: "")
            XCTAssertEqual(missing.status, .forbidden)
            XCTAssertTrue(missing.text.contains("Reload the page"))
            let wrong = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], csrf: (b.csrf.first == "x" ? "y" : "x") + b.csrf.dropFirst())
            XCTAssertEqual(wrong.status, .forbidden, "one character changed")
            let crossSite = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], origin: "https://evil.example")
            XCTAssertEqual(crossSite.status, .forbidden)
            let opaque = try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")], origin: "null")
            XCTAssertEqual(opaque.status, .forbidden, "Origin: null (a sandboxed package page) is not this site")
            // The query carries the token only for streamed multipart uploads.
            let inQuery = try await client.execute(uri: "/apps?csrf=" + b.csrf, method: .post,
                                                   headers: [.cookie: b.cookie, .contentType: "application/x-www-form-urlencoded"],
                                                   body: ByteBuffer(string: "id=20171228&name=Checkout"))
            XCTAssertEqual(inQuery.status, .forbidden)
            let otherType = try await client.execute(uri: "/apps?csrf=" + b.csrf, method: .post,
                                                     headers: [.cookie: b.cookie, .contentType: "text/plain"],
                                                     body: ByteBuffer(string: "id=20171228&name=Checkout"))
            XCTAssertEqual(otherType.status, .forbidden)
            await assertNil(try await h.store.app("20171228"))
            let upload = try await b.client.execute(uri: "/apps/20171228/packages", method: .post,
                                                    headers: [.cookie: b.cookie, .contentType: "multipart/form-data; boundary=x"],
                                                    body: ByteBuffer(string: "--x--\r\n"))
            XCTAssertEqual(upload.status, .forbidden, "multipart uploads carry the token in the query")
            await assertEqual(try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")]).status, .seeOther)
        }
    }

    func testOversizedBodiesAnswer413NotAServerError() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let form = try await LoginForm.open(client)
            let big = try await form.submit(name: "alice", password: String(repeating: "p", count: 70_000))
            XCTAssertEqual(big.status, .contentTooLarge)
            XCTAssertTrue(big.text.contains("larger than this form"), big.text)
            let b = try await Browser.signIn(client, "alice")
            let hugeForm = try await b.post("/apps", [("id", "20171228"), ("name", String(repeating: "n", count: 9_000_000))])
            XCTAssertEqual(hugeForm.status, .contentTooLarge)
            await assertNil(try await h.store.app("20171228"))
        }
    }

    func testEveryAnswerSaysNoSniffAndConsolePagesKeepTheirReferrer() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let page = try await b.get("/apps")
            XCTAssertEqual(page.headers[.init("Referrer-Policy")!], "same-origin")
            let csp = page.headers[.contentSecurityPolicy] ?? ""
            XCTAssertTrue(csp.contains("script-src http://courier.test/static/;"), "console scripts only from /static of the configured console (not the request's Host, issue 15), never from package files: \(csp)")
            for (uri, status) in [("/no-such-page", HTTPResponse.Status.notFound), ("/static/courier.css", .ok),
                                  ("/api/v1/apps", .unauthorized), ("/api/v1/settings/public-key", .notFound),
                                  ("/client/v1/preset/20171228.json", .notFound), ("/login", .ok)] {
                let r = try await client.execute(uri: uri, method: .get)
                XCTAssertEqual(r.status, status, uri)
                XCTAssertEqual(r.headers[.xContentTypeOptions], "nosniff", uri)
            }
        }
    }

    func testVirtualDomainIsConfirmedWrittenOnceAndThenReadOnly() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let unconfirmed = try await b.post("/settings/virtual-domain", [("virtualDomain", "h5app.example.com")])
            XCTAssertEqual(unconfirmed.status, .unprocessableContent)
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-confirm""#))
            XCTAssertTrue(unconfirmed.text.contains(#"value="h5app.example.com""#), "the typed value is kept")
            let bad = try await b.post("/settings/virtual-domain", [("virtualDomain", "https://H5.example.com/"), ("confirm", "true")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-virtualDomain""#))
            await assertNil(try await h.store.settings().virtualDomain)

            let ok = try await b.post("/settings/virtual-domain", [("virtualDomain", "h5app.example.com"), ("confirm", "true")])
            XCTAssertEqual(ok.headers[.location], "/settings?saved=domain")
            let page = try await b.get("/settings?saved=domain").text
            XCTAssertTrue(page.contains(#"id="virtual-domain-value">h5app.example.com"#))
            XCTAssertFalse(page.contains(#"name="virtualDomain""#), "no input once set")

            let again = try await b.post("/settings/virtual-domain", [("virtualDomain", "other.example.com"), ("confirm", "true")])
            XCTAssertEqual(again.status, .conflict)
            XCTAssertTrue(again.text.contains("cannot be changed"))
            await assertEqual(try await h.store.settings().virtualDomain, "h5app.example.com")
        }
    }

    func testGlobalSettingsAndSigningKeyPage() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let bad = try await b.post("/settings/global", [("globalHost", "mcube"), ("appKey", "nounderscore")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-globalHost""#) && bad.text.contains(#"id="error-appKey""#))
            await assertEqual(try await b.post("/settings/global", [("globalHost", "mcube.example.com"), ("appKey", "53E5279071442_test")]).status, .seeOther)
            await assertEqual(try await h.store.settings().appKey, "53E5279071442_test")

            let notPEM = try await b.post("/settings/signing-key", [("privateKey", "hello")])
            XCTAssertEqual(notPEM.status, .unprocessableContent)
            XCTAssertTrue(notPEM.text.contains(#"id="error-privateKey""#))
            await assertEqual(try await b.post("/settings/signing-key/generate", []).status, .seeOther)
            let fingerprint = try await h.store.settings().signingKeyFingerprint
            XCTAssertNotNil(fingerprint)
            let page = try await b.get("/settings").text
            XCTAssertTrue(page.contains(try XCTUnwrap(fingerprint)))
            XCTAssertFalse(page.contains("PRIVATE KEY-----\n"), "the private key is never shown")
            let pub = try await client.execute(uri: "/api/v1/settings/public-key", method: .get)
            XCTAssertEqual(pub.status, .ok)
            XCTAssertTrue(pub.text.hasPrefix("-----BEGIN PUBLIC KEY-----"))

            // Replacing needs the explicit confirmation and the current password, for either button.
            XCTAssertFalse(page.contains(#"name="confirmReplace" value="true">"#) && page.contains(#"type="hidden" name="confirmReplace""#),
                           "no hidden confirmation: without JavaScript one click must not re-sign everything")
            let unconfirmed = try await b.post("/settings/signing-key/generate", [])
            XCTAssertEqual(unconfirmed.status, .unprocessableContent)
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-confirmReplace""#))
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-currentPassword""#))
            let noPassword = try await b.post("/settings/signing-key/generate", [("confirmReplace", "true")])
            XCTAssertTrue(noPassword.text.contains("Enter your current password"))
            let wrongPassword = try await b.post("/settings/signing-key", [("privateKey", try SigningKey.generate().privateKeyPEM),
                                                                           ("confirmReplace", "true"), ("currentPassword", "not-it")])
            XCTAssertEqual(wrongPassword.status, .unprocessableContent)
            XCTAssertTrue(wrongPassword.text.contains("not your current password"))
            await assertEqual(try await h.store.settings().signingKeyFingerprint, fingerprint)
            let replaced = try await b.post("/settings/signing-key/generate", [("confirmReplace", "true"), ("currentPassword", "correct-horse")])
            XCTAssertEqual(replaced.status, .seeOther)
            await assertNotEqual(try await h.store.settings().signingKeyFingerprint, fingerprint)
            // Guessing the password there is throttled like signing in.
            for _ in 0..<5 { _ = try await b.post("/settings/signing-key/generate", [("confirmReplace", "true"), ("currentPassword", "guess")]) }
            let throttled = try await b.post("/settings/signing-key/generate", [("confirmReplace", "true"), ("currentPassword", "correct-horse")])
            XCTAssertTrue(throttled.text.contains("Too many wrong passwords"), throttled.text)
        }
    }

    func testCreateAppValidationListSearchAndPagination() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
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

            for i in 1...24 { _ = try await h.store.createApp(id: .init(trusted: String(30000000 + i)), name: "App number \(i)", by: .commandLine) }
            let first = try await b.get("/apps").text
            XCTAssertEqual(first.components(separatedBy: "<tr id=\"app-").count - 1, 20)
            XCTAssertTrue(first.contains("Page 1 of 2 · 25 apps"))
            XCTAssertTrue(first.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "names are escaped")
            XCTAssertFalse(first.contains("<script>alert(1)"))
            let second = try await b.get("/apps?page=2").text
            XCTAssertEqual(second.components(separatedBy: "<tr id=\"app-").count - 1, 5)
            let search = try await b.get("/apps?q=number%2017").text
            XCTAssertTrue(search.contains("App number 17"))
            XCTAssertTrue(search.contains("· 1 app<"))
            await assertTrue(try await b.get("/apps?q=30000024").text.contains("App number 24"))
            await assertTrue(try await b.get("/apps?q=number+17").text.contains("App number 17"), "as the search form sends a space")
            await assertTrue(try await b.get("/apps?q=%2B").text.contains("No app matches"), "a typed + is a +")
            await assertTrue(try await b.get("/apps?q=%25").text.contains("No app matches"), "LIKE wildcards are literal")
        }
    }

    func testReviewersReadButCannotChange() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("rita", role: .reviewer)
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

    /// Issue 15, 3.10: a link's text is not repeated on the page in the console's voice.
    func testErrorPagesDoNotRepeatTextFromTheAddress() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let bait = "Your session expired. Call 555-0100"
            for path in [Route.app.path(bait), Route.package.path("20171228", bait), Route.package.path(bait, "1.0.0.1"),
                         Route.userDisable.path(bait)] {
                let r = path.contains("disable") ? try await b.post(path, []) : try await b.get(path)
                XCTAssertEqual(r.status, .notFound, path)
                XCTAssertFalse(r.text.contains("555-0100"), "\(path): \(r.text.prefix(400))")
            }
            let known = try await b.get(Route.app.path("20171228"))
            XCTAssertTrue(known.text.contains("There is no app with ID 20171228."), "an ID-shaped value is still named")
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
