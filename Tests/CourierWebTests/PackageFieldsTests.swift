import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Issue 19: every place a package setting appears reads `PackageField.all`, and a pending
/// import row stored before a setting existed keeps its other settings.
final class PackageFieldsTests: XCTestCase {
    func testEverySettingIsInTheFormThePagesTheAPIAndTheOpenAPISchema() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("ci")
        let token = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read,upload")
        try await h.test { client in
            let b = try await h.ready(client)
            let form = try await b.get("/apps/20171228/packages/new").text
            for f in PackageField.described {
                XCTAssertTrue(form.contains(#"name="\#(f.key)""#), "the form has \(f.key)")
            }
            // A refused setting's message sits beside its own field.
            let refused = try await b.upload("/apps/20171228/packages", packageFields(extra: [("installPolicy", "never")]),
                                             file: samplePackage("20171228").bytes())
            XCTAssertEqual(refused.status, .unprocessableContent)
            XCTAssertTrue(refused.text.contains(#"id="error-installPolicy""#) && refused.text.contains("Choose the install policy: lazy or preload."),
                          refused.text)
            try await h.addPackage("1.0.0.1")
            let page = try await b.get("/apps/20171228/packages/1.0.0.1").text
            for f in PackageField.described { XCTAssertTrue(page.contains("<dt>\(f.label)</dt>"), "the package page shows \(f.label)") }

            let api = try await client.execute(uri: "/api/v1/apps/20171228", method: .get, headers: [.authorization: "Bearer \(token)"])
            let app = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(api.text.utf8)) as? [String: Any])
            let package = try XCTUnwrap((app["packages"] as? [[String: Any]])?.first)
            for f in PackageField.all where !f.isFlag { XCTAssertTrue(package.keys.contains(f.key), "the API answers \(f.key)") }
            let stored = try await unwrap(try await h.store.package("20171228", "1.0.0.1"))
            XCTAssertEqual(package["downloadPolicy"] as? String, stored.downloadPolicy.rawValue)
            XCTAssertTrue(package["iosMin"] is NSNull, "a setting not set is null")

            let spec = try await client.execute(uri: "/api/v1/openapi.json", method: .get)
            let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(spec.text.utf8)) as? [String: Any])
            let schemas = try XCTUnwrap((doc["components"] as? [String: Any])?["schemas"] as? [String: Any])
            for name in ["PackageFields", "Package"] {
                let properties = try XCTUnwrap((schemas[name] as? [String: Any])?["properties"] as? [String: Any])
                for f in PackageField.all where !f.isFlag { XCTAssertNotNil(properties[f.key], "\(name) describes \(f.key)") }
            }
        }
    }

    /// Adding a setting leaves every pending import row without its key. Such a row keeps the
    /// settings it had (before, it read as an empty draft and lost them all).
    func testAPendingImportRowStoredWithoutASettingKeepsItsOtherSettings() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            let made = try await b.uploadFiles("/imports", [("files", "30000001.zip", samplePackage("30000001").bytes())])
            let url = try XCTUnwrap(made.headers[.location])
            let edited = try await b.post(url + "/rows/0", [("platformCheckboxes", "true"), ("version", "2.0.0.0"), ("android", "true"),
                                                           ("androidMin", "10.0"), ("downloadPolicy", "all"), ("installPolicy", "preload"),
                                                           ("mainUrl", "/www/index.html")])
            XCTAssertEqual(edited.status, .seeOther, edited.text)
            // The row as a binary from before `installPolicy` existed would have stored it.
            try await h.store.db.write { db in
                try db.execute(sql: "UPDATE batchImportRow SET fields = json_remove(fields, '$.installPolicy')")
            }
            let page = try await b.get(url).text
            XCTAssertTrue(page.contains("<td>2.0.0.0</td>"), page)
            XCTAssertTrue(page.contains("Android 10.0 and up, any network, install when opened, /www/index.html"), page)
            await assertEqual(try await b.post(url + "/submit", [("confirm", "true")]).status, .seeOther)
            let p = try await unwrap(try await h.store.package("30000001", "2.0.0.0"))
            XCTAssertEqual(p.downloadPolicy, .all)
            XCTAssertEqual(p.installPolicy, .lazy, "the missing setting took its default")
            XCTAssertEqual(p.mainUrl, "/www/index.html")
        }
    }
}
