import CourierCore
import Foundation
import XCTest

/// Who gets what: every mode, rule and operator of SPEC §5, and the reasons given.
final class TargetingTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let androidTen = ClientRange(android: .init(min: "10.0", max: nil), ios: .init(min: "14", max: "16.9"))

    func v(_ s: String) -> PackageVersion { try! PackageVersion(validating: s) }
    func client(_ s: String) -> ClientVersion { try! ClientVersion(validating: s, field: "v") }

    func request(_ platform: Platform = .android, _ version: String = "10.2.3", device: String = "d-1", user: String = "u-9",
                 city: String = "Hangzhou", model: String = "Pixel 8", network: String = "WIFI", os: String = "14",
                 installed: [String: PackageVersion?] = ["20171228": nil], all: Bool = false) -> ClientRequest {
        ClientRequest(platform: platform, clientVersion: client(version), deviceId: device, userId: user, model: model,
                      osVersion: os, network: network, city: city, installed: installed, all: all)
    }

    func app(_ tasks: [ReleaseTask], range: ClientRange? = nil) -> AppTargets {
        AppTargets(appId: "20171228", tasks: tasks, ranges: Dictionary(uniqueKeysWithValues: tasks.map { ($0.version, range ?? androidTen) }))
    }

    func task(_ id: Int64, _ version: String, _ kind: ReleaseTask.Kind = .official, _ status: ReleaseTask.Status = .releasing,
              rolledBack: Bool = false) -> ReleaseTask {
        ReleaseTask(id: id, appId: "20171228", version: v(version), kind: kind, status: status, rolledBack: rolledBack)
    }

    func decide(_ r: ClientRequest, _ apps: [AppTargets], whitelists: [Whitelist] = [], at: Date? = nil,
                admit: @escaping AdmitDevice = { _, _, _ in false }) -> [Decision] {
        Targeting.decide(r, TargetingSnapshot(apps: apps, whitelists: whitelists), now: at ?? now, admit: admit)
    }

    func answer(_ r: ClientRequest, _ a: AppTargets, whitelists: [Whitelist] = [], at: Date? = nil,
                admit: @escaping AdmitDevice = { _, _, _ in false }) -> Decision.Answer? {
        decide(r, [a], whitelists: whitelists, at: at, admit: admit).first?.answer
    }

    func testClientVersionsCompareNumericallyWithMissingPartsAsZero() {
        XCTAssertTrue(client("1.9") < client("1.10"))
        XCTAssertEqual(client("10.2"), client("10.2.0.0"))
        XCTAssertFalse(client("10.2") < client("10.2.0"))
        XCTAssertTrue(v("1.0.0.9") < v("1.0.0.10"))
    }

    func testOfficialReleasesFollowThePackagesClientRangePerPlatform() {
        let a = app([task(1, "1.0.0.2"), task(2, "1.0.0.1")], range: ClientRange(android: .init(min: "10.0", max: "12"), ios: nil))
        XCTAssertEqual(answer(request(.android, "11.5"), a), .update(v("1.0.0.2"), task: 1))
        XCTAssertEqual(answer(request(.android, "12"), a), .update(v("1.0.0.2"), task: 1), "the maximum is inclusive")
        XCTAssertEqual(answer(request(.android, "12.0.1"), a), Decision.Answer.none)
        XCTAssertEqual(answer(request(.android, "9.9"), a), Decision.Answer.none)
        XCTAssertEqual(answer(request(.ios, "15"), a), Decision.Answer.none, "iOS is not targeted")
        let d = decide(request(.android, "9.9"), [a])[0]
        XCTAssertTrue(d.verdicts[0].reason.contains("outside the package's client range"), d.verdicts[0].reason)
    }

    func testTheHighestAdmittedVersionHigherThanTheInstalledOneIsSent() {
        let beta = try! Whitelist(id: 7, name: "beta", kind: .user, values: ["u-1"])
        let a = app([task(3, "1.0.0.3", .gray(.whitelist([7]), rules: [])), task(2, "1.0.0.2"), task(1, "1.0.0.1")])
        XCTAssertEqual(answer(request(user: "u-1"), a, whitelists: [beta]), .update(v("1.0.0.3"), task: 3))
        XCTAssertEqual(answer(request(user: "u-2"), a, whitelists: [beta]), .update(v("1.0.0.2"), task: 2))
        XCTAssertEqual(answer(request(user: "u-2", installed: ["20171228": v("1.0.0.2")]), a, whitelists: [beta]), Decision.Answer.none)
        XCTAssertEqual(answer(request(user: "u-2", installed: ["20171228": v("1.0.0.1")]), a, whitelists: [beta]), .update(v("1.0.0.2"), task: 2))
        let d = decide(request(user: "u-2"), [a], whitelists: [beta])[0]
        XCTAssertEqual(d.verdicts.map(\.admitted), [false, true])
        XCTAssertEqual(d.verdicts[0].reason, "on none of the whitelists beta")
        XCTAssertTrue(d.summary.hasPrefix("Send 1.0.0.2 (task 2)"), d.summary)
    }

    func testPausedAndFinishedGrayscaleLeaveClientsThatAreAheadAlone() {
        let paused = app([task(3, "1.0.0.3", .gray(.percentage(100), rules: []), .paused), task(1, "1.0.0.1")])
        XCTAssertEqual(answer(request(installed: ["20171228": v("1.0.0.3")]), paused), Decision.Answer.none, "ahead, left alone")
        XCTAssertEqual(answer(request(installed: ["20171228": nil]), paused), .update(v("1.0.0.1"), task: 1), "new clients get the official")
        XCTAssertEqual(decide(request(), [paused])[0].verdicts[0].reason, "paused")
        let finished = app([task(3, "1.0.0.3", .gray(.percentage(100), rules: []), .finished), task(1, "1.0.0.1")])
        XCTAssertEqual(answer(request(installed: ["20171228": v("1.0.0.3")]), finished), Decision.Answer.none)
        XCTAssertEqual(answer(request(), finished), .update(v("1.0.0.1"), task: 1))
        let pausedOfficial = app([task(2, "1.0.0.2", .official, .paused), task(1, "1.0.0.1")])
        XCTAssertEqual(answer(request(installed: ["20171228": v("1.0.0.1")]), pausedOfficial), Decision.Answer.none)
        let finishedOfficial = app([task(2, "1.0.0.2", .official, .finished)])
        XCTAssertEqual(answer(request(), finishedOfficial), .update(v("1.0.0.2"), task: 2), "a finished official release stays in force")
    }

    func testARolledBackOfficialSendsItsClientsToThePreviousOfficial() {
        let a = app([task(3, "1.0.0.3", .official, .finished, rolledBack: true),
                     task(4, "1.0.0.2", .gray(.percentage(100), rules: [])), task(2, "1.0.0.1", .official, .finished)])
        let d = decide(request(installed: ["20171228": v("1.0.0.3")]), [a])[0]
        XCTAssertEqual(d.answer, .rollback(v("1.0.0.1"), task: 2), "back to the previous official, not to a grayscale")
        XCTAssertTrue(d.summary.contains("rolled back"), d.summary)
        XCTAssertEqual(answer(request(installed: ["20171228": nil]), a), .update(v("1.0.0.2"), task: 4))
        XCTAssertEqual(answer(request(installed: ["20171228": v("1.0.0.1")]), a), .update(v("1.0.0.2"), task: 4))
    }

    func testWhitelistsOfUsersDevicesAndExpressions() throws {
        let users = try Whitelist(id: 1, name: "staff", kind: .user, values: ["u-9"])
        let devices = try Whitelist(id: 2, name: "lab", kind: .device, values: ["d-7"])
        let regex = try Whitelist(id: 3, name: "testers", kind: .regex, values: ["qa-[0-9]+", "ops"])
        XCTAssertTrue(users.admits(request(user: "u-9")))
        XCTAssertFalse(users.admits(request(device: "u-9", user: "x")), "a user list looks at the user ID only")
        XCTAssertTrue(devices.admits(request(device: "d-7", user: "x")))
        XCTAssertTrue(regex.admits(request(user: "qa-12")))
        XCTAssertFalse(regex.admits(request(user: "qa-12x")), "the whole user ID must match")
        XCTAssertFalse(regex.admits(request(user: "xops")))
        XCTAssertFalse(users.admits(request(user: "")))
        XCTAssertThrowsError(try Whitelist(id: 4, name: "bad", kind: .regex, values: ["ok", "(unclosed"])) {
            XCTAssertTrue(($0 as? FieldError)?.message.contains("“(unclosed”") == true)
        }
        XCTAssertThrowsError(try Whitelist(id: 5, name: "many", kind: .regex, values: Set((0...20).map { "r\($0)" })))
        let a = app([task(1, "1.0.0.1", .gray(.whitelist([1, 2, 3]), rules: []))])
        XCTAssertEqual(answer(request(device: "d-7", user: "x"), a, whitelists: [users, devices, regex]), .update(v("1.0.0.1"), task: 1))
        XCTAssertEqual(decide(request(user: "ops"), [a], whitelists: [users, devices, regex])[0].verdicts[0].reason, "on whitelist testers")
    }

    func testAdvancedRulesAllMustHoldWithEveryOperator() throws {
        let inCity = try TargetingRule(field: .city, op: .in, values: ["hangzhou", "Shanghai"])
        let notModel = try TargetingRule(field: .model, op: .notIn, values: ["Pixel 8"])
        let wifi = try TargetingRule(field: .network, op: .in, values: ["wifi"])
        let os = try TargetingRule(field: .osVersion, op: .between, values: ["10", "14.1"])
        let notOs = try TargetingRule(field: .osVersion, op: .notBetween, values: ["10", "14.1"])
        let osIn = try TargetingRule(field: .osVersion, op: .in, values: ["14"])
        XCTAssertTrue(inCity.holds(for: request(city: "HANGZHOU")), "case-insensitive")
        XCTAssertFalse(inCity.holds(for: request(city: "Beijing")))
        XCTAssertFalse(notModel.holds(for: request(model: "pixel 8")))
        XCTAssertTrue(notModel.holds(for: request(model: "Mate 60")))
        XCTAssertTrue(wifi.holds(for: request(network: "WIFI")))
        XCTAssertTrue(os.holds(for: request(os: "10")) && os.holds(for: request(os: "14.1")), "both ends included")
        XCTAssertFalse(os.holds(for: request(os: "14.2")))
        XCTAssertFalse(os.holds(for: request(os: "")), "no OS version: outside every range")
        XCTAssertTrue(notOs.holds(for: request(os: "9")))
        XCTAssertFalse(notOs.holds(for: request(os: "12")))
        XCTAssertTrue(osIn.holds(for: request(os: "14")))
        XCTAssertEqual(os.description, "OS version between 10 and 14.1")
        XCTAssertThrowsError(try TargetingRule(field: .city, op: .between, values: ["a", "b"]))
        XCTAssertThrowsError(try TargetingRule(field: .osVersion, op: .between, values: ["14", "10"]))
        XCTAssertThrowsError(try TargetingRule(field: .osVersion, op: .between, values: ["x", "10"]))
        XCTAssertThrowsError(try TargetingRule(field: .network, op: .in, values: [" ", ""]))

        let a = app([task(1, "1.0.0.1", .gray(.percentage(100), rules: [inCity, wifi, os]))])
        XCTAssertEqual(answer(request(), a), .update(v("1.0.0.1"), task: 1))
        XCTAssertEqual(answer(request(network: "4G"), a), Decision.Answer.none)
        XCTAssertEqual(decide(request(city: "Beijing"), [a])[0].verdicts[0].reason, "rule not met: city in hangzhou, Shanghai")
    }

    func testPercentageAdmitsItsShareAndRaisingItKeepsEveryoneAdmitted() {
        let devices = (0..<10_000).map { "device-\($0)" }
        func admitted(_ pct: Double) -> Set<String> {
            let a = app([task(42, "1.0.0.1", .gray(.percentage(pct), rules: []))])
            return Set(devices.filter { answer(request(device: $0), a) != Decision.Answer.none })
        }
        let ten = admitted(10)
        XCTAssertEqual(Double(ten.count), 1000, accuracy: 100, "10 % of 10,000 within ± 1 %")
        let twenty = admitted(20)
        XCTAssertTrue(ten.isSubset(of: twenty), "raising the percentage keeps every admitted device")
        XCTAssertEqual(Double(admitted(0.01).count), 1, accuracy: 3)
        XCTAssertEqual(admitted(100).count, 10_000)
        XCTAssertEqual(percentagePoint(task: 42, device: "device-1"), percentagePoint(task: 42, device: "device-1"), "stable")
        XCTAssertNotEqual(percentagePoint(task: 42, device: "device-1"), percentagePoint(task: 43, device: "device-1"))
        XCTAssertEqual(answer(request(device: ""), app([task(1, "1.0.0.1", .gray(.percentage(100), rules: []))])), Decision.Answer.none)
    }

    func testATimeWindowAdmitsTheFirstDevicesUntilItsEnd() async {
        let ledger = Ledger()
        let end = now.addingTimeInterval(3600)
        let a = app([task(9, "1.0.0.1", .gray(.timeWindow(end: end, userCount: 50), rules: []))])
        let snapshot = TargetingSnapshot(apps: [a], whitelists: [])
        let admit: AdmitDevice = { task, count, device in ledger.admit(task, count, device) }
        // 300 devices from 8 concurrent clients: exactly 50 admitted.
        let requests = (0..<300).map { request(device: "d-\($0)") }
        let now = self.now
        let answers = await withTaskGroup(of: [Bool].self) { group in
            for client in 0..<8 {
                group.addTask {
                    stride(from: client, to: 300, by: 8).map { n in
                        Targeting.decide(requests[n], snapshot, now: now, admit: admit).first?.answer != Decision.Answer.none
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0 += $1 }
        }
        XCTAssertEqual(answers.filter { $0 }.count, 50)
        let first = ledger.devices(9)
        XCTAssertEqual(first.count, 50)
        // Admitted devices stay admitted; the others stay out.
        let again = first.sorted().first!
        XCTAssertEqual(answer(request(device: again), a, admit: admit), .update(v("1.0.0.1"), task: 9))
        XCTAssertEqual(answer(request(device: "d-new"), a, admit: admit), Decision.Answer.none)
        // At the end time nobody more.
        XCTAssertEqual(answer(request(device: again), a, at: end, admit: admit), Decision.Answer.none)
        XCTAssertEqual(decide(request(device: again), [a], at: end, admit: admit)[0].verdicts[0].reason, "time window ended")
        XCTAssertEqual(ledger.devices(9).count, 50)
    }

    func testAllAsksForEveryAppTheClientShouldHave() {
        let a = app([task(1, "1.0.0.1")])
        let b = AppTargets(appId: "20180101", tasks: [ReleaseTask(id: 2, appId: "20180101", version: v("2.0.0.0"), kind: .official,
                                                                 status: .releasing)], ranges: [v("2.0.0.0"): androidTen])
        XCTAssertEqual(decide(request(installed: ["20171228": nil]), [a, b]).map(\.appId), ["20171228"])
        XCTAssertEqual(decide(request(installed: ["20171228": nil], all: true), [a, b]).map(\.appId), ["20171228", "20180101"])
        XCTAssertEqual(decide(request(installed: ["99999999": nil]), [a, b]).count, 0, "unknown apps are not answered")
    }
}

/// A time-window ledger for tests: the first `count` devices per task, atomically.
final class Ledger: @unchecked Sendable {
    private let lock = NSLock()
    private var admitted: [Int64: Set<String>] = [:]
    func admit(_ task: Int64, _ count: Int, _ device: String) -> Bool {
        lock.withLock {
            if admitted[task, default: []].contains(device) { return true }
            guard admitted[task, default: []].count < count else { return false }
            admitted[task, default: []].insert(device)
            return true
        }
    }
    func devices(_ task: Int64) -> Set<String> { lock.withLock { admitted[task] ?? [] } }
}

final class HotPathValueTests: XCTestCase {
    /// A device's place in a percentage release must not move between versions of Courier:
    /// the digits are hashed as `String(task).utf8` gave them.
    func testPercentagePointsAreStableAcrossVersions() {
        func reference(task: Int64, device: String) -> Double {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            func mix(_ b: UInt8) { h ^= UInt64(b); h = h &* 0x0000_0100_0000_01B3 }
            for b in String(task).utf8 { mix(b) }
            mix(0x3A)
            for b in device.utf8 { mix(b) }
            h ^= h >> 30; h = h &* 0xbf58_476d_1ce4_e5b9
            h ^= h >> 27; h = h &* 0x94d0_49bb_1331_11eb
            h ^= h >> 31
            return Double(h >> 11) / Double(1 << 53)
        }
        for task: Int64 in [0, 1, 9, 10, 42, 99, 100, 12345, 99_999_999, Int64.max, -1, Int64.min] {
            for device in ["", "device-1", "Ω"] {
                XCTAssertEqual(percentagePoint(task: task, device: device), reference(task: task, device: device), "\(task) \(device)")
            }
        }
    }

    func testVersionFastPathsAgreeWithTheGeneralRules() throws {
        for text in ["1.0.0.1", "0.0.0.0", "99999.99999.99999.99999", "1.10.0.0", " 1.0.0.1 ", "1.0.0", "1.0.0.1.1", "100000.0.0.0",
                     "1..0.1", ".1.0.1", "1.0.0.1.", "01.0.0.1", "1.0.0.a", "", "１.0.0.1"] {
            XCTAssertEqual(PackageVersion(fast: text), try? PackageVersion(validating: text), text)
        }
        XCTAssertTrue(PackageVersion(parts: [1, 10, 0, 0]) > PackageVersion(parts: [1, 9, 0, 0]))
        XCTAssertTrue(PackageVersion(parts: [2, 0, 0, 0]) > PackageVersion(parts: [1, 99999, 99999, 99999]))
        XCTAssertEqual(PackageVersion(parts: [1, 2, 3, 4]).parts, [1, 2, 3, 4])
        XCTAssertEqual(PackageVersion(parts: [1, 2, 3, 4]).description, "1.2.3.4")
        for (a, b) in [("10", "10.0"), ("10.0.0", "10"), (" 10.2 ", "10.2"), ("1.0.0.0", "1")] {
            XCTAssertEqual(try ClientVersion(validating: a, field: "v"), try ClientVersion(validating: b, field: "v"), "\(a) = \(b)")
        }
        for (low, high) in [("9", "10"), ("1.9", "1.10"), ("10.2", "10.2.1"), ("999999999", "1000000000.1")] {
            if let l = try? ClientVersion(validating: low, field: "v"), let h = try? ClientVersion(validating: high, field: "v") {
                XCTAssertTrue(l < h, "\(low) < \(high)")
            }
        }
        for bad in ["", ".", "1.", ".1", "1..2", "1.2.3.4.5", "a", "1234567890", "10 .2"] {
            XCTAssertNil(try? ClientVersion(validating: bad, field: "v"), bad)
        }
        XCTAssertEqual(try ClientVersion(validating: " 10.2 ", field: "v").description, "10.2")
    }
}
