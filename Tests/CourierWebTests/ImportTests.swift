import CourierArchive
import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Batch import through the console (SPEC §6): upload, results, edit a row, submit.
final class ImportTests: XCTestCase {
    static func importFiles() -> [(String, String, [UInt8])] {
        [("files", "30000001.zip", samplePackage("30000001").bytes()),     // a new app
         ("files", "30000002.zip", samplePackage("30000002").bytes()),     // another new app
         ("files", "20171228.zip", samplePackage("20171228").bytes()),     // the existing app
         ("files", "checkout.zip", samplePackage("30000003").bytes())]     // a bad name
    }

    func testImportEditAndSubmitCreatesAppsAndPackagesAndOneBadFileLosesNothing() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            try await h.addPackage("1.0.0.3")
            await assertTrue(try await b.get("/apps").text.contains(#"id="batch-import""#))
            await assertEqual(try await b.get("/imports/new").status, .ok)

            let none = try await b.uploadFiles("/imports", [("files", "", [])])
            XCTAssertEqual(none.status, .unprocessableContent)
            XCTAssertTrue(none.text.contains(#"id="error-files""#), none.text)

            let made = try await b.uploadFiles("/imports", Self.importFiles())
            XCTAssertEqual(made.status, .seeOther, made.text)
            let url = try XCTUnwrap(made.headers[.location])
            var page = try await b.get(url).text
            XCTAssertTrue(page.contains("3 ready, 0 created, 1 with errors"), page)
            XCTAssertTrue(page.contains("is not named after its app"))
            XCTAssertTrue(page.contains("<td>0.0.0.1</td>") && page.contains("<td>1.0.0.4</td>"), "versions assigned")
            // Issue 15, 4: the existing app's row starts from its newest package, not from defaults.
            XCTAssertTrue(page.contains("Android 10.0 and up, any network, install at once, /www/index.html</td>"), page)
            XCTAssertTrue(page.contains("Android 1.0 and up, iOS 1.0 and up, Wi-Fi only, install when opened (defaults for a new app)"), page)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: h.store.importsDirectory).count, 1)

            // Edit the first row: a bad minimum is refused with the single form's message, typed values kept.
            let bad = try await b.post(url + "/rows/0", [("platformCheckboxes", "true"), ("version", "2.0.0.0"), ("android", "true"),
                                                        ("androidMin", "ten"), ("downloadPolicy", "all"), ("installPolicy", "preload")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-androidMin""#) && bad.text.contains(#"value="2.0.0.0""#), bad.text)
            let missing = try await b.post(url + "/rows/0", [("platformCheckboxes", "true"), ("version", "2.0.0.0"), ("android", "true"),
                                                            ("androidMin", "10.0"), ("mainUrl", "/www/missing.html")])
            XCTAssertEqual(missing.status, .unprocessableContent, "the main entrance is checked against the zip")
            XCTAssertTrue(missing.text.contains(#"id="error-mainUrl""#), missing.text)
            let good = try await b.post(url + "/rows/0", [("platformCheckboxes", "true"), ("version", "2.0.0.00"), ("android", "true"),
                                                         ("androidMin", "10.0"), ("downloadPolicy", "all"), ("installPolicy", "preload"),
                                                         ("mainUrl", "/www/index.html")])
            XCTAssertEqual(good.status, .seeOther, good.text)
            page = try await b.get(url).text
            XCTAssertTrue(page.contains("<td>2.0.0.0</td>"), page)

            let unconfirmed = try await b.post(url + "/submit", [])
            XCTAssertEqual(unconfirmed.status, .unprocessableContent)
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-confirm""#))
            await assertEqual(try await h.store.allApps().count, 1, "nothing created before the confirmation")

            // Two submissions at once (a double click): each package is created once.
            async let first = b.post(url + "/submit", [("confirm", "true")])
            async let second = b.post(url + "/submit", [("confirm", "true")])
            let (r1, r2) = try await (first, second)
            XCTAssertEqual(r1.status, .seeOther)
            XCTAssertEqual(r2.status, .seeOther)
            page = try await b.get(url).text
            XCTAssertTrue(page.contains("0 ready, 3 created, 1 with errors"), page)
            XCTAssertTrue(page.contains(#"href="/apps/30000001/packages/2.0.0.0""#), "links to the new packages")
            XCTAssertFalse(page.contains(#"id="submit-import""#), "a finished import cannot be submitted again")
            let apps = try await h.store.allApps().map(\.id).sorted()
            XCTAssertEqual(apps, ["20171228", "30000001", "30000002"])
            await assertEqual(try await h.store.app("30000001")?.name, "30000001", "new apps are named by their ID")
            // … and renamed later on their page.
            let empty = try await b.post("/apps/30000001/name", [("name", "  ")])
            XCTAssertEqual(empty.status, .unprocessableContent)
            XCTAssertTrue(empty.text.contains(#"id="error-name""#), empty.text)
            await assertEqual(try await b.post("/apps/30000001/name", [("name", "Coupons <b>")]).status, .seeOther)
            let renamed = try await b.get("/apps/30000001").text
            XCTAssertTrue(renamed.contains("Coupons &lt;b&gt;"), "escaped")
            await assertEqual(try await h.store.app("30000001")?.name, "Coupons <b>")
            let versions = try await h.store.allPackages().map { "\($0.appId) \($0.version)" }.sorted()
            XCTAssertEqual(versions, ["20171228 1.0.0.3", "20171228 1.0.0.4", "30000001 2.0.0.0", "30000002 0.0.0.1"])
            let p = try await unwrap(try await h.store.package("30000001", "2.0.0.0"))
            XCTAssertEqual(p.range.android?.min, "10.0")
            XCTAssertEqual(p.downloadPolicy, .all)
            XCTAssertEqual(h.blobCount, 4)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: h.store.importsDirectory), [], "a finished import keeps no files")
            XCTAssertEqual(h.tempCount, 0)
            await assertTrue(try await h.store.verifyAudit().isValid)
        }
    }

    func testTheWholeImportIsRefusedBeyondItsLimitsAndOnlyUploadersSeeImports() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("rita", role: .reviewer)
        try await h.test { client in
            let b = try await h.ready(client)
            let many = (0..<101).map { ("files", "\(30_000_000 + $0).zip", samplePackage(String(30_000_000 + $0)).bytes()) }
            let tooMany = try await b.uploadFiles("/imports", many)
            XCTAssertEqual(tooMany.status, .unprocessableContent)
            XCTAssertTrue(tooMany.text.contains("at most 100 files"), tooMany.text)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: h.store.importsDirectory), [])
            XCTAssertEqual(h.tempCount, 0, "nothing stored")
            let made = try await b.uploadFiles("/imports", [("files", "30000001.zip", samplePackage("30000001").bytes())])
            let url = try XCTUnwrap(made.headers[.location])
            let reviewer = try await Browser.signIn(client, "rita")
            await assertEqual(try await reviewer.get(url).status, .forbidden)
            await assertEqual(try await reviewer.get("/imports/new").status, .forbidden)
            // Past its 24 hours it can no longer be submitted; one being submitted is not swept away.
            let id = try XCTUnwrap(Int64(url.split(separator: "/").last ?? ""))
            let later = Date().addingTimeInterval(25 * 3600)
            await assertFalse(try await h.store.beginImportSubmission(id, by: .commandLine, now: later))
            await assertTrue(try await h.store.beginImportSubmission(id, by: .commandLine))
            await assertEqual(try await h.store.sweepImports(now: later, startingUp: false), 0)
            _ = try await h.store.endImportSubmission(id)
            // Past its 24 hours an unsubmitted import is gone, with its files.
            await assertEqual(try await h.store.sweepImports(now: Date().addingTimeInterval(25 * 3600), startingUp: false), 1)
            await assertEqual(try await b.get(url).status, .notFound)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: h.store.importsDirectory), [])
        }
    }

    func testTheJSONAPIImportsEditsAndSubmits() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("ci", role: .developer)
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        let token = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read,upload")
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            let (body, type) = multipart([], files: [("file", "30000001.zip", samplePackage("30000001").bytes()),
                                                     ("file", "30000002.zip", [0x50, 0x4b, 0x03, 0x04, 1, 2, 3])])
            let made = try await client.execute(uri: "/api/v1/batch-imports", method: .post,
                                                headers: [.authorization: "Bearer \(token)", .contentType: type], body: body)
            XCTAssertEqual(made.status, .created, made.text)
            let id = try XCTUnwrap(made.json["id"] as? Int)
            let rows = try XCTUnwrap(made.json["rows"] as? [[String: Any]])
            XCTAssertEqual(rows.map { $0["status"] as? String }, ["ready", "error"])
            XCTAssertEqual(rows[0]["version"] as? String, "0.0.0.1")
            let badEdit = try await api.call(.patch, "/api/v1/batch-imports/\(id)/rows/0", json: #"{"androidMin":"ten"}"#)
            XCTAssertEqual(badEdit.status, .unprocessableContent)
            XCTAssertEqual((badEdit.json["error"] as? [String: Any])?["field"] as? String, "androidMin")
            let number = try await api.call(.patch, "/api/v1/batch-imports/\(id)/rows/0", json: #"{"version":1}"#)
            XCTAssertEqual(number.status, .unprocessableContent, "a setting is text")
            XCTAssertEqual((number.json["error"] as? [String: Any])?["field"] as? String, "version")
            // Keys that are not settings (a row sent back as read, with its flags) are ignored, as before.
            let edit = try await api.call(.patch, "/api/v1/batch-imports/\(id)/rows/0",
                                          json: #"{"version":"1.0.0.0","iosMin":"","android":true,"fileCount":3,"mainUrl":null}"#)
            XCTAssertEqual(edit.status, .ok, edit.text)
            let done = try await api.call(.post, "/api/v1/batch-imports/\(id)/submit")
            XCTAssertEqual(done.status, .ok, done.text)
            XCTAssertEqual(done.json["status"] as? String, "done", "a refused file's row never holds the import open")
            XCTAssertEqual((done.json["rows"] as? [[String: Any]])?.map { $0["status"] as? String }, ["created", "error"])
            let p = try await unwrap(try await h.store.package("30000001", "1.0.0.0"))
            XCTAssertNil(p.range.ios, "iOS dropped by the edit")
            let again = try await api.call(.post, "/api/v1/batch-imports/\(id)/submit")
            XCTAssertEqual(again.status, .ok)
            await assertEqual(try await h.store.allPackages().count, 1, "a second submission creates nothing more")
        }
    }
}
