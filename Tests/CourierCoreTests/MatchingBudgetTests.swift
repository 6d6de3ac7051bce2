@testable import CourierCore
import Foundation
import XCTest

/// Issue 15, second review: each expression is linear in the ID, but a task may name many
/// lists of many costly expressions. One request's matching is held to a step budget (counted,
/// not timed): past it, lists not yet asked admit nobody.
final class MatchingBudgetTests: XCTestCase {
    func testARequestsExpressionMatchingStaysWithinItsBudgetWhateverTheListsATaskNames() throws {
        // Accepted when saved (no nesting), yet each costs thousands of steps a character.
        let heavy = Set((0..<Whitelist.maxExpressions).map { i in String(repeating: ".{0,100}", count: 9) + ".{0,\(60 + i)}!" })
        let lists = try (1...10).map { try Whitelist(id: Int64($0), name: "l\($0)", kind: .regex, values: heavy) }
        let request = ClientRequest(platform: .android, clientVersion: try ClientVersion(validating: "10.0", field: ""), deviceId: "d",
                                    userId: String(repeating: "a", count: Whitelist.maxMatchedScalars))
        let verdicts = Targeting.ListVerdicts()
        for list in lists { XCTAssertFalse(verdicts.admits(list, request)) }
        XCTAssertTrue(verdicts.exhausted, "ten such lists are more than one request may cost")
        // Past the budget by one expression at most.
        XCTAssertLessThanOrEqual(verdicts.steps, Targeting.ListVerdicts.stepBudget + SafePattern.maxInstructions * (Whitelist.maxMatchedScalars + 1))
        XCTAssertGreaterThan(verdicts.steps, 0)

        // Ordinary lists are far from it: a list of everyday expressions answers.
        let everyday = try Whitelist(id: 99, name: "qa", kind: .regex, values: [#"qa-tester-\d+"#, "(alice|bob)", #".*@corp\.example"#])
        let fresh = Targeting.ListVerdicts()
        let qa = ClientRequest(platform: .android, clientVersion: try ClientVersion(validating: "10.0", field: ""), deviceId: "d", userId: "qa-tester-7")
        XCTAssertTrue(fresh.admits(everyday, qa))
        XCTAssertFalse(fresh.exhausted)
        XCTAssertLessThan(fresh.steps, Targeting.ListVerdicts.stepBudget / 100)
    }
}
