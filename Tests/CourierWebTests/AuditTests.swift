import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// The audit log page and its CSV (SPEC §7).
final class AuditTests: XCTestCase {
    func testTheLogIsFilteredPagedExportedAndSaysWhetherTheChainHolds() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("rita", role: .reviewer)
        try await h.test { client in
            let b = try await h.ready(client)   // alice: virtual domain, key, app 20171228
            for n in 0..<55 {
                _ = try await h.services.actions.createWhitelist(by: .commandLine, name: n == 0 ? "=HYPERLINK(\"x\")" : "list-\(n)",
                                                                 kind: "user", values: ["u"])
            }
            let reviewer = try await Browser.signIn(client, "rita")
            var page = try await reviewer.get("/audit").text
            XCTAssertTrue(page.contains(#"id="nav-audit""#), "every role reads the log")
            XCTAssertTrue(page.contains("The audit chain holds"), page)
            XCTAssertTrue(page.contains(#"rel="next""#) && page.contains("page 1 of 2"), "50 a page, newest first")
            XCTAssertTrue(page.contains("list-54"))
            page = try await reviewer.get("/audit?kind=app").text
            XCTAssertTrue(page.contains("app.create") && !page.contains("whitelist.create") && page.contains("1 changes"), page)
            page = try await reviewer.get("/audit?user=alice").text
            XCTAssertTrue(page.contains("settings.virtualDomain") && !page.contains("whitelist.create"), page)
            page = try await reviewer.get("/audit?app=20171228").text
            XCTAssertTrue(page.contains("app.create") && !page.contains("list-1"), page)
            page = try await reviewer.get("/audit?page=2").text
            XCTAssertTrue(page.contains("user.create") && page.contains(#"rel="prev""#))

            let csv = try await reviewer.get("/audit.csv?kind=whitelist")
            XCTAssertEqual(csv.headers[.contentType], "text/csv; charset=utf-8")
            let lines = csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
            XCTAssertEqual(lines.first, "id,at,user,action,subject,detail,hash")
            XCTAssertEqual(lines.count, 56)
            XCTAssertTrue(csv.text.contains(#"'=HYPERLINK(""x"")"#), "a formula is exported as text: \(csv.text.prefix(400))")

            // A row edited in the database file: the page says where.
            try await h.store.db.write { db in try db.execute(sql: "UPDATE audit SET user = 'mallory' WHERE id = 3") }
            page = try await b.get("/audit").text
            XCTAssertTrue(page.contains(#"class="alert" id="audit-chain""#) && page.contains("row 3 was changed"), page)
        }
    }
}
