import CourierCore
import XCTest

/// The rules a store keeps in its transactions, as pure functions (issue 19: domain rules in
/// Core, persistence in the store).
final class StoreRulesTests: XCTestCase {
    func testTheLastActiveAdministratorCannotGo() {
        XCTAssertThrowsError(try AdministratorRule.check(changing: "root", wasActive: true, activeAfter: 0)) { error in
            XCTAssertTrue("\(error)".contains("root is the last active administrator"), "\(error)")
        }
        XCTAssertNoThrow(try AdministratorRule.check(changing: "root", wasActive: true, activeAfter: 1))
        // Someone who was not an active administrator changes nothing about how many there are.
        XCTAssertNoThrow(try AdministratorRule.check(changing: "dev", wasActive: false, activeAfter: 0))
    }

    func testAnAppsVersionsOnlyGoUpAndItsTypeIsFixed() throws {
        let v = { (s: String) throws -> PackageVersion in try PackageVersion(validating: s) }
        let app = AppFacts(fixedType: .normal, highestVersion: try v("1.0.0.2"))
        XCTAssertNoThrow(try app.check(try v("1.0.0.3"), .normal))
        XCTAssertNoThrow(try app.check(try v("2.0.0.0"), .normal))
        for lower in ["1.0.0.2", "1.0.0.1", "0.9.99999.99999"] {
            XCTAssertThrowsError(try app.check(try v(lower), .normal)) { XCTAssertEqual(($0 as? FieldError)?.field, "version") }
        }
        XCTAssertThrowsError(try app.check(try v("1.0.0.3"), .global)) { XCTAssertEqual(($0 as? FieldError)?.field, "type") }
        let empty = AppFacts(fixedType: nil, highestVersion: nil)
        XCTAssertNoThrow(try empty.check(try v("0.0.0.0"), .global))
    }

    func testAPackageHasOneUnfinishedTask() {
        XCTAssertNoThrow(try UnfinishedTaskRule.check(app: "20171228", version: "1.0.0.1", unfinished: nil))
        XCTAssertThrowsError(try UnfinishedTaskRule.check(app: "20171228", version: "1.0.0.1", unfinished: 7)) {
            XCTAssertEqual("\($0)", "Package 20171228 1.0.0.1 already has an unfinished task (7); finish it first.")
        }
    }
}
