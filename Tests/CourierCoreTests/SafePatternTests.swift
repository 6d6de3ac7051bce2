import CourierCore
import Foundation
import XCTest

/// Issue 15, 3.1: user-ID expressions are matched in linear time. These tests time nothing:
/// they count the matcher's steps and hold them to the bound, and check the refusals.
final class SafePatternTests: XCTestCase {
    let stall = String(repeating: "a", count: 40) + "!"

    func testTheExpressionsThatStalledTheServerAreRefusedWhenSaved() {
        for last in "bcdefghijklmnopqrstu" {
            XCTAssertThrowsError(try SafePattern(#"(\w+\s?)+"# + String(last))) { error in
                XCTAssertTrue("\(error)".contains("nested quantifier"), "\(error)")
            }
        }
        let values = Set("bcdefghijklmnopqrstu".map { #"(\w+\s?)+"# + String($0) })
        XCTAssertThrowsError(try Whitelist(id: 1, name: "qa", kind: .regex, values: values)) { error in
            XCTAssertEqual((error as? FieldError)?.field, "values")
        }
        for nested in ["(a+)+", "(a*)*", "(x|y+)*", "((ab)*c)+", "(a{2})+"] {
            XCTAssertThrowsError(try SafePattern(nested), nested)
        }
    }

    func testLegalButBacktrackingShapesStayWithinTheStepBound() throws {
        let long = String(repeating: "a", count: 64 * 1024)
        for text in [#"\w*\s?\w*\s?\w*b"#, "(a|aa)*b", "a*a*a*a*a*a*a*a*b", ".*.*.*.*=.*", #"[a-z]*[a-z]*\d"#] {
            let p = try SafePattern(text)
            for subject in [stall, long] {
                var steps = 0
                XCTAssertFalse(p.matchesWhole(subject, steps: &steps), text)
                XCTAssertLessThanOrEqual(steps, p.stepBound(scalars: subject.unicodeScalars.count), text)
                // Linear with a small constant, whatever the bound says: at most 64 steps a character.
                XCTAssertLessThanOrEqual(steps, 64 * (subject.unicodeScalars.count + 1), text)
                XCTAssertGreaterThan(steps, 0, "the counter counts")
            }
        }
    }

    func testOrdinaryWhitelistsMatchWholeIDs() throws {
        let cases: [(String, [String], [String])] = [
            (#"qa-tester-\d+"#, ["qa-tester-1", "qa-tester-42"], ["qa-tester-", "xqa-tester-1", "qa-tester-1x"]),
            ("(alice|bob)", ["alice", "bob"], ["alicebob", "al"]),
            (#".*@corp\.example"#, ["dan@corp.example"], ["dan@corpXexample", "dan@corp.example.org"]),
            ("u-[0-9]{3}", ["u-123"], ["u-12", "u-1234"]),
            (#"user(-\d+)?"#, ["user", "user-7"], ["user-"]),
            ("^x+$", ["xxx"], ["xy"]),
        ]
        for (text, yes, no) in cases {
            let p = try SafePattern(text)
            for s in yes { XCTAssertTrue(p.matchesWhole(s), "\(text) ~ \(s)") }
            for s in no { XCTAssertFalse(p.matchesWhole(s), "\(text) !~ \(s)") }
        }
        let list = try Whitelist(id: 1, name: "qa", kind: .regex, values: [#"qa-tester-\d+"#])
        XCTAssertTrue(list.admits(ClientRequest(platform: .android, clientVersion: try ClientVersion(validating: "1", field: ""), userId: "qa-tester-9")))
        let huge = "qa-tester-" + String(repeating: "9", count: Whitelist.maxMatchedScalars)
        XCTAssertFalse(list.admits(ClientRequest(platform: .android, clientVersion: try ClientVersion(validating: "1", field: ""), userId: huge)),
                       "an ID longer than the bound matches nothing")
    }

    func testUnsupportedSyntaxIsRefusedWithASentence() {
        for text in ["", #"(a)\1"#, "(?=a)", "a(", "[z-a]", #"\p{L}"#, "a{101}", "a**"] {
            XCTAssertThrowsError(try SafePattern(text), text) { error in
                XCTAssertFalse("\(error)".isEmpty)
            }
        }
    }
}
