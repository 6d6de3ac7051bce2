import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import XCTest
@testable import CourierWeb

/// Page models are plain values built from records: checked here without HTTP.
final class PageModelTests: XCTestCase {
    let reviewer = UserRecord(name: "rita", passwordHash: "", role: .reviewer)
    let developer = UserRecord(name: "dev", passwordHash: "", role: .developer)

    func testAppsPageLinksItsNeighboursAndKeepsTheSearch() {
        let rows = (1...20).map { AppSummary(id: String(30_000_000 + $0), name: "App \($0)", type: nil, packageCount: 0,
                                             latestVersion: nil, createdAt: Date()) }
        let page = AppsPage(Page(items: rows, total: 45, page: 2, perPage: 20), query: "a b&c", user: reviewer,
                            chrome: Chrome(user: reviewer, csrf: "t", section: .apps))
        XCTAssertEqual(page.pager.prevURL, "/apps?page=1&q=a%20b%26c")
        XCTAssertEqual(page.pager.nextURL, "/apps?page=3&q=a%20b%26c")
        XCTAssertEqual(page.pager.pageCount, 3)
        XCTAssertEqual(page.rows.first?.url, "/apps/30000001")
        XCTAssertEqual(page.rows.first?.latestVersion, "—")
        XCTAssertFalse(page.canEdit, "a reviewer is not offered Create")
        XCTAssertEqual(page.chrome.nav.map(\.label), ["H5 apps", "Whitelists", "Approvals", "Simulator", "API tokens", "Audit log"], "a reviewer's navigation has no Configuration")
        XCTAssertEqual(Chrome(user: UserRecord(name: "a", passwordHash: "", role: .admin), csrf: "", section: .settings).nav.map(\.active),
                       [false, false, false, false, true, false, false, false])
    }

    func testPackagePagesLinkFilesPagesAndTheContentHost() async throws {
        let h = try await Harness.make(publicURL: "http://cdn.courier.test", consoleURL: "http://courier.test")
        defer { h.cleanUp() }
        var record = try packageRecord("1.0.0.1", blob: String(repeating: "ab", count: 32))
        record.fileCount = 250
        let files = (0..<100).map { PackageFileRecord(packageId: 1, path: "www/f\($0).js", size: 10, sha256: "00", tarOffset: 0) }
        let app = AppRecord(id: AppID(trusted: "20171228"), name: "Checkout")
        let page = PackagePage(app: app, package: record, files: Page(items: files, total: 250, page: 2, perPage: 100),
                               settings: SettingsRecord(), services: h.services, chrome: Chrome(user: developer, csrf: "", section: .apps))
        XCTAssertEqual(page.filePageCount, 3)
        XCTAssertEqual(page.prevFilesURL, "/apps/20171228/packages/1.0.0.1?files=1#files")
        XCTAssertEqual(page.nextFilesURL, "/apps/20171228/packages/1.0.0.1?files=3#files")
        XCTAssertEqual(page.files.first?.fallbackURL, "http://cdn.courier.test/fallback/20171228/1.0.0.1/www/f0.js")
        XCTAssertEqual(page.amrURL, "http://cdn.courier.test/packages/20171228/1.0.0.1.amr")
        XCTAssertFalse(page.signed)
    }

    func testThePackageFormCarriesItsTokenAndTheFixedType() {
        var app = AppRecord(id: AppID(trusted: "20171228"), name: "Checkout")
        app.type = .global
        var draft = PackageDraft()
        draft.type = "normal"
        let form = PackageFormPage(app: app, draft: draft, virtualDomain: "h5app.example.com", maxUploadBytes: 1 << 20,
                                   failure: .none, chrome: Chrome(user: developer, csrf: "tok en", section: .apps))
        XCTAssertEqual(form.action, "/apps/20171228/packages?csrf=tok%20en")
        XCTAssertEqual(form.fixedType, "global")
        XCTAssertTrue(form.typeGlobal, "the app's type wins over the draft's")
        XCTAssertEqual(form.vhost, "https://20171228.h5app.example.com")
    }
}
