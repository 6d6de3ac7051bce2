import CourierCore
import Foundation
import XCTest

/// The pieces of release health that are plain arithmetic (SPEC §5): the Wilson bound, the
/// gate's decisions, the ramp's steps and the distinct-device sketch.
final class ReleaseHealthTests: XCTestCase {
    func testTheWilsonBoundMatchesPublishedValues() {
        // Reference values (z = 1.96) from the interval's formula, as statistics tables give them.
        func near(_ a: Double, _ b: Double, _ line: UInt = #line) { XCTAssertEqual(a, b, accuracy: 0.0005, line: line) }
        let a = Wilson.bounds(0, of: 10); near(a.low, 0); near(a.high, 0.2775)
        let b = Wilson.bounds(5, of: 10); near(b.low, 0.2366); near(b.high, 0.7634)
        let c = Wilson.bounds(10, of: 100); near(c.low, 0.0552); near(c.high, 0.1744)
        let d = Wilson.bounds(1, of: 1); near(d.low, 0.2065); near(d.high, 1)
        XCTAssertEqual(Wilson.bounds(0, of: 0).low, 0, "no trials: nothing known")
        XCTAssertEqual(Wilson.bounds(12, of: 10).high, 1, accuracy: 1e-9, "more failures than trials (bad input) stays within [0, 1]")
    }

    func testTheGatesDecisionTable() {
        func health(installs: Int, failed: Int) -> ReleaseHealth {
            var h = HealthHour(hour: 1)
            h.installs = installs
            h.trialFailed = failed
            return ReleaseHealth(hours: [h])
        }
        // (installs, failures, threshold) → pauses? The lower bounds worked out by hand.
        let rows: [(Int, Int, Double, Bool, String)] = [
            (40, 9, 5, false, "49 trials: too few to judge, however bad"),
            (0, 50, 5, true, "50 failures and nothing installed: lower bound 92.9 %"),
            (45, 5, 5, false, "10 % seen, but the lower bound is 4.3 %"),
            (90, 10, 5, true, "10 % seen with twice the trials: the lower bound is 5.5 %"),
            (1000, 20, 5, false, "2 %: lower bound 1.3 %"),
            (100, 30, 5, true, "23 %"),
            (100, 30, 50, false, "the same under a 50 % threshold"),
            (950, 50, 3, true, "5 %: lower bound 3.8 %, above a 3 % threshold"),
            (950, 50, 5, false, "the same under the default 5 %"),
        ]
        for (installs, failures, threshold, pauses, why) in rows {
            let v = HealthGate.verdict(health(installs: installs, failed: failures), threshold: threshold)
            if case .pause(let words) = v {
                XCTAssertTrue(pauses, why)
                XCTAssertTrue(words.contains("\(failures) failures in \(installs + failures)"), words)
                XCTAssertTrue(words.contains("threshold of \(String(format: "%.1f", threshold)) %"), words)
            } else {
                XCTAssertFalse(pauses, why)
            }
        }
        XCTAssertEqual(HealthGate.verdict(health(installs: 40, failed: 9), threshold: 5), .tooFew(trials: 49))
        XCTAssertEqual(ReleaseHealth.failuresWords(1, of: 1), "1 failure in 1 install or failure")
        XCTAssertEqual(ReleaseHealth.failuresWords(1, of: 7), "1 failure in 7 installs and failures")
        XCTAssertEqual(ReleaseHealth.failuresWords(0, of: 2), "0 failures in 2 installs and failures")
        if case .healthy = HealthGate.verdict(health(installs: 1000, failed: 20), threshold: 5) {} else { XCTFail("2 % is healthy") }
    }

    func testRampStepsAreReadAndEachRefusalNamesItsField() throws {
        let steps = try RampPlan.parse(lines: "10% after 2h\n50 % after 1d\r\npromote after 90")
        XCTAssertEqual(steps, [.init(percentage: 10, afterMinutes: 120), .init(percentage: 50, afterMinutes: 1440),
                               .init(percentage: nil, promote: true, afterMinutes: 90)])
        XCTAssertTrue(RampPlan.check(steps, initial: 1, threshold: 5).isEmpty)
        // Two decimals, whatever binary floating point makes of them (1.1 × 100 is 110.00000000000001).
        XCTAssertTrue(RampPlan.check([.init(percentage: 1.1, afterMinutes: 60), .init(percentage: 2.3, afterMinutes: 60),
                                      .init(percentage: 4.35, afterMinutes: 60)], initial: 0.07, threshold: nil).isEmpty)
        XCTAssertFalse(RampPlan.check([.init(percentage: 1.115, afterMinutes: 60)], initial: 1, threshold: nil).isEmpty)
        func refusal(_ s: [RampPlan.Step], initial: Double? = 1, threshold: Double? = nil) -> FieldError? { RampPlan.check(s, initial: initial, threshold: threshold).first }
        XCTAssertEqual(refusal([.init(percentage: 10, afterMinutes: 60), .init(percentage: 10, afterMinutes: 60)])?.field, "steps", "not increasing")
        XCTAssertEqual(refusal([.init(percentage: 1, afterMinutes: 60)])?.message.contains("above 1 %"), true, "not above the starting share")
        XCTAssertEqual(refusal([.init(percentage: 10, afterMinutes: 0)])?.message.contains("at least 1 minute"), true)
        XCTAssertEqual(refusal((1...11).map { .init(percentage: Double($0 * 5), afterMinutes: 60) })?.message.contains("at most 10"), true)
        XCTAssertEqual(refusal([.init(percentage: nil, promote: true, afterMinutes: 60), .init(percentage: 50, afterMinutes: 60)])?.message
                        .contains("must be the last"), true)
        XCTAssertEqual(refusal([.init(percentage: 10, afterMinutes: 60)], initial: nil)?.message.contains("Only a percentage"), true)
        XCTAssertEqual(refusal([], threshold: 0)?.field, "healthThreshold")
        XCTAssertThrowsError(try RampPlan.parse(lines: "ten percent after a while")) { XCTAssertEqual(($0 as? FieldError)?.field, "steps") }
        XCTAssertThrowsError(try RampPlan.parse(lines: String(repeating: "10% after 1h\n", count: 11)))
        XCTAssertThrowsError(try RampPlan.parse(lines: "10% after 99999999d"), "a delay past a year is not read")
    }

    func testAStepIsDueItsDelayAfterTheLastOneAndTheStoredPlanIsReadStrictly() throws {
        let start = Date(timeIntervalSince1970: 1_000_000)
        var plan = RampPlan(steps: [.init(percentage: 10, afterMinutes: 60), .init(percentage: nil, promote: true, afterMinutes: 30)], since: start)
        XCTAssertFalse(plan.isDue(now: start.addingTimeInterval(3599)))
        XCTAssertTrue(plan.isDue(now: start.addingTimeInterval(3600)))
        plan.done = 1
        plan.since = start.addingTimeInterval(7200)   // taken late (the server was down): the next counts from then
        XCTAssertEqual(plan.nextDue, start.addingTimeInterval(7200 + 1800))
        // The task page's timeline: where the ramp stands now, then what is left.
        let rows = plan.timeline(start: start, current: 10)
        XCTAssertEqual(rows.map(\.what), ["10 % of devices, 1 of 2 steps taken", "promote to official (every client in range)"])
        XCTAssertEqual(rows.map(\.at), [start.addingTimeInterval(7200), start.addingTimeInterval(7200 + 1800)])
        XCTAssertEqual(try RampPlan.stored(plan.json), plan)
        XCTAssertNil(try RampPlan.stored(""))
        XCTAssertThrowsError(try RampPlan.stored(#"{"steps":[{"percentage":50,"afterMinutes":1},{"percentage":10,"afterMinutes":1}],"threshold":5,"done":0,"since":"2026-01-01T00:00:00Z"}"#),
                             "a stored plan out of order is not run")
        XCTAssertThrowsError(try RampPlan.stored("{"))
    }

    func testTheSketchCountsDistinctDevicesWithinItsErrorAndMergesIdempotently() throws {
        var a = HyperLogLog(), b = HyperLogLog()
        for i in 0..<100_000 { a.insert("device-\(i)") }
        for i in 50_000..<150_000 { b.insert("device-\(i)") }
        for i in 0..<1000 { a.insert("device-\(i)") }   // repeats add nothing
        XCTAssertEqual(Double(a.estimate), 100_000, accuracy: 100_000 * 4 * HyperLogLog.standardError)
        var union = a
        union.merge(b)
        XCTAssertEqual(Double(union.estimate), 150_000, accuracy: 150_000 * 4 * HyperLogLog.standardError)
        var twice = union
        twice.merge(b)
        XCTAssertEqual(twice, union, "merging the same sketch again changes nothing")
        var small = HyperLogLog()
        for i in 0..<37 { small.insert("d\(i)") }
        XCTAssertEqual(small.estimate, 37, "small counts are exact in practice (linear counting)")
        XCTAssertEqual(HyperLogLog(base64: union.base64), union)
        XCTAssertNil(HyperLogLog(base64: "AAAA"), "a stored sketch of the wrong size is refused")
        XCTAssertNil(HyperLogLog(base64: Data(repeating: 200, count: HyperLogLog.registerCount).base64EncodedString()), "register values past 53 are refused")
        XCTAssertEqual(HyperLogLog().estimate, 0)
    }
}
