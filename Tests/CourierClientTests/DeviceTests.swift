import CourierArchive
@testable import CourierClient
import CourierTestSupport
import Foundation
import XCTest

/// The device against a real Courier (SPEC §10): ask, download, verify, install, trial, report.
final class DeviceTests: XCTestCase {
    var courier: LiveCourier!
    var dir = ""

    override func setUp() async throws {
        courier = try LiveCourier()
        try await courier.ready()
        dir = temporaryDirectory()
    }

    override func tearDown() {
        courier.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func device(network: String = "WIFI", keys: PinnedKeys? = nil, transport: Transport = URLSessionTransport(),
                id: String = "d-1") throws -> CourierDevice {
        CourierDevice(server: courier.url, profile: DeviceProfile(deviceId: id, userId: "u-1", network: network),
                      keys: try keys ?? PinnedKeys(pems: [courier.publicKeyPEM]), store: try PackageStore(root: dir + "/" + id),
                      transport: transport)
    }

    func testADeviceInstallsWhatCourierReleasesVerifiedByThePinnedKey() async throws {
        try await courier.upload("1.0.0.1", zip: samplePackage().bytes())
        let task = try await courier.release("1.0.0.1")
        let d = try device()
        let round = await d.check(force: true)
        XCTAssertNil(round.unreachable)
        XCTAssertEqual(round.lines.map(\.outcome), [.installed(verifiedBy: "SIGN.json", rollback: false)])
        let index = try String(contentsOfFile: d.store.folder("20171228", "1.0.0.1") + "/www/index.html", encoding: .utf8)
        XCTAssertTrue(index.contains("Checkout"))
        XCTAssertEqual(d.store.state.apps["20171228"]?.installed, "1.0.0.1")
        let events = try await courier.events(task: task)
        XCTAssertEqual(events["download_ok"], 1)
        XCTAssertEqual(events["install_ok"], 1)
        // Nothing new: the next round installs nothing and the interval holds an unforced check back.
        let again = await d.check(force: true)
        XCTAssertEqual(again.lines.map(\.outcome), [], "the installed version is not offered again")
        let held = await d.check()
        XCTAssertFalse(held.checked, "the answer's interval holds the next check back")
    }

    func testAPackageSignedByAnotherKeyIsRefusedAndReported() async throws {
        try await courier.upload("1.0.0.1", zip: samplePackage().bytes())
        let task = try await courier.release("1.0.0.1")
        let other = try SigningKey.generate()
        let d = try device(keys: try PinnedKeys(pems: [other.publicKeyPEM]))
        let round = await d.check(force: true)
        XCTAssertTrue(round.verifyFailed, "\(round.lines)")
        XCTAssertNil(d.store.state.apps["20171228"]?.installed ?? nil)
        let events = try await courier.events(task: task)
        XCTAssertEqual(events["verify_failed"], 1, "\(events)")
    }

    func testWiFiOnlyWaitsOnMobileAndLazyInstallsWhenOpened() async throws {
        try await courier.upload("1.0.0.1", zip: samplePackage().bytes(), download: "wifi", install: "lazy")
        try await courier.release("1.0.0.1")
        let mobile = try device(network: "4G")
        let held = await mobile.check(force: true)
        XCTAssertEqual(held.lines.map(\.outcome), [.heldBackForWiFi])
        XCTAssertFalse(held.failed, "held back by its policy is not a failure")
        mobile.profile.network = "WIFI"
        let round = await mobile.check(force: true)
        XCTAssertEqual(round.lines.map(\.outcome), [.waitingForOpen])
        XCTAssertNil(mobile.store.state.apps["20171228"]?.installed ?? nil, "lazy: not installed until opened")
        _ = try await mobile.opened("20171228")
        XCTAssertEqual(mobile.store.state.apps["20171228"]?.installed, "1.0.0.1")
    }

    func testAVersionGivenUpComesBackToThePreviousAndIsNotOfferedAgain() async throws {
        try await courier.upload("1.0.0.1", zip: samplePackage().bytes())
        try await courier.release("1.0.0.1")
        let d = try device()
        _ = await d.check(force: true)
        try d.store.markLoaded("20171228", "1.0.0.1")
        try await courier.upload("1.0.0.2", zip: samplePackage().bytes())
        let task = try await courier.release("1.0.0.2")
        _ = await d.check(force: true)
        XCTAssertEqual(d.store.state.apps["20171228"]?.installed, "1.0.0.2")
        let given = try await d.broken("20171228")
        XCTAssertEqual(given, "1.0.0.2", "the host reports it broken")
        XCTAssertEqual(d.store.state.apps["20171228"]?.installed, "1.0.0.1", "the previous version is back")
        let round = await d.check(force: true)
        XCTAssertEqual(round.lines.map(\.outcome), [], "the server does not offer it again: the request listed it in failed")
        let events = try await courier.events(task: task)
        XCTAssertEqual(events["trial_failed"], 1)
        XCTAssertEqual(events["failed"], 1)
        // Another device still gets it.
        let other = try device(id: "d-2")
        let fresh = await other.check(force: true)
        XCTAssertEqual(fresh.lines.map(\.version), ["1.0.0.2"])
    }

    /// Cuts every download after `cut` bytes, as a lost connection would.
    struct CuttingTransport: Transport {
        let inner = URLSessionTransport()
        let cut: UInt64
        func post(_ url: URL, json: Data, limit: Int) async throws -> (status: Int, body: Data) { try await inner.post(url, json: json, limit: limit) }
        func download(_ url: URL, into fd: Int32, from offset: UInt64, limit: UInt64) async throws -> UInt64 {
            do { _ = try await inner.download(url, into: fd, from: offset, limit: min(limit, offset + cut)) } catch {}
            throw ClientFailure(.downloadFailed, "cut")
        }
    }

    final class OffsetLog: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [UInt64] = []
        var values: [UInt64] { lock.withLock { list } }
        func add(_ v: UInt64) { lock.withLock { list.append(v) } }
    }

    /// Notes the offset each download starts from.
    struct RecordingTransport: Transport {
        let inner = URLSessionTransport()
        let offsets: OffsetLog
        func post(_ url: URL, json: Data, limit: Int) async throws -> (status: Int, body: Data) { try await inner.post(url, json: json, limit: limit) }
        func download(_ url: URL, into fd: Int32, from offset: UInt64, limit: UInt64) async throws -> UInt64 {
            offsets.add(offset)
            return try await inner.download(url, into: fd, from: offset, limit: limit)
        }
    }

    func testAnInterruptedDownloadResumesWithRangeAndEndsWithTheRightBytes() async throws {
        let big = ZipBuilder([.directory("20171228/"), .init("20171228/www/index.html", "<title>Big</title>"),
                              .init("20171228/www/data.bin", (0..<400_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }, method: 0)])
        try await courier.upload("1.0.0.1", zip: big.bytes())
        try await courier.release("1.0.0.1")
        var cutting: CourierDevice? = try device(transport: CuttingTransport(cut: 150_000))
        let first = await cutting!.check(force: true)
        cutting = nil   // that device process is gone; a new one starts on the same folder
        guard case .failed(let f) = first.lines.first?.outcome else { return XCTFail("\(first.lines)") }
        XCTAssertEqual(f.kind, .downloadFailed)
        let part = dir + "/d-1/downloads/20171228-1.0.0.1.amr.part"
        let partial = try FileManager.default.attributesOfItem(atPath: part)[.size] as? Int ?? 0
        XCTAssertTrue((100_000...150_000).contains(partial), "the bytes received are kept (never past the limit): \(partial)")
        // The same data folder, a connection that holds: it resumes where it stopped.
        let offsets = OffsetLog()
        let d = try device(transport: RecordingTransport(offsets: offsets))
        let round = await d.check(force: true)
        XCTAssertEqual(offsets.values, [UInt64(partial)], "asked with Range from the bytes kept")
        XCTAssertEqual(round.lines.map(\.outcome), [.installed(verifiedBy: "SIGN.json", rollback: false)])
        let data = try Data(contentsOf: URL(fileURLWithPath: d.store.folder("20171228", "1.0.0.1") + "/www/data.bin"))
        XCTAssertEqual(data.count, 400_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: part))
    }

    func testResolveServesThePackageTheGlobalPackageTheFallbackOrNothing() async throws {
        try await courier.upload("1.0.0.1", zip: samplePackage().bytes())
        try await courier.release("1.0.0.1")
        _ = try await courier.call("PUT", "/api/v1/settings", json: #"{"globalHost":"mcube.example.com","appKey":"53E5279071442_test"}"#)
        _ = try await courier.call("POST", "/api/v1/apps", json: #"{"id":"20180101","name":"Common"}"#)
        let global = ZipBuilder([.directory("20180101/"), .init("20180101/mcube.example.com/53E5279071442_test/common.js", "var common = 1;")])
        try await courier.upload("1.0.0.1", zip: global.bytes(), app: "20180101", type: "global", main: "")
        try await courier.release("1.0.0.1", app: "20180101")
        let d = try device()
        let round = await d.check(force: true)
        XCTAssertEqual(round.lines.count, 2, "every app this device should have (all: true): \(round.lines)")

        guard case .package(let path, let type, let app, let version) = d.resolve(URL(string: "https://20171228.h5app.example.com/www/index.html")!) else {
            return XCTFail("\(d.resolve(URL(string: "https://20171228.h5app.example.com/www/index.html")!))")
        }
        XCTAssertTrue(path.hasSuffix("/packages/20171228/1.0.0.1/www/index.html"))
        XCTAssertEqual([type, app, version], ["text/html; charset=utf-8", "20171228", "1.0.0.1"])
        XCTAssertEqual(d.resolve(URL(string: "https://20171228.h5app.example.com/www/missing.js")!),
                       .fallback(URL(string: courier.url.absoluteString + "/fallback/20171228/1.0.0.1/www/missing.js")!))
        for url in ["https://mcube.example.com/53E5279071442_test/common.js", "https://mcube.example.com/mcube/53E5279071442_test/common.js"] {
            guard case .global(_, let type, let app, _) = d.resolve(URL(string: url)!) else { return XCTFail(url) }
            XCTAssertEqual([type, app], ["text/javascript; charset=utf-8", "20180101"])
        }
        XCTAssertEqual(d.resolve(URL(string: "https://example.org/www/index.html")!), .passThrough)
        XCTAssertEqual(d.resolve(URL(string: "https://20171228.h5app.example.com/www/../../../../etc/passwd")!), .passThrough,
                       "a path that climbs out is nobody's")
    }

    func testADeviceIsSeededOfflineFromAPresetAndItsPackage() async throws {
        try await courier.upload("1.0.0.1", zip: samplePackage().bytes())
        try await courier.release("1.0.0.1")
        let (_, preset) = try await courier.call("GET", "/client/v1/preset/20171228.json")
        let (_, amr) = try await courier.call("GET", "/packages/20171228/1.0.0.1.amr")
        let shipped = dir + "/shipped"
        try FileManager.default.createDirectory(atPath: shipped, withIntermediateDirectories: true)
        try amr.write(to: URL(fileURLWithPath: shipped + "/20171228.amr"))
        let d = try device(id: "seeded")
        let report = await d.seed(preset: preset, packages: shipped)
        XCTAssertEqual(report.lines.map(\.outcome), [.installed(verifiedBy: "SIGN.json", rollback: false)])
        XCTAssertEqual(d.store.state.apps["20171228"]?.installed, "1.0.0.1")
        // Online afterwards: nothing to download, the seeded version is what is installed.
        let round = await d.check(force: true)
        XCTAssertEqual(round.lines.map(\.outcome), [])
        // A shipped file that is not the package the preset describes is refused.
        var bad = amr
        bad[bad.count / 2] ^= 0xFF
        try bad.write(to: URL(fileURLWithPath: shipped + "/20171228.amr"))
        let other = try device(id: "seeded-bad")
        let refused = await other.seed(preset: preset, packages: shipped)
        XCTAssertTrue(refused.verifyFailed, "\(refused.lines)")
        XCTAssertNil(other.store.state.apps["20171228"]?.installed ?? nil)
    }

    func testAnOfferForAnotherAppsHostOrAnotherServersCopyIsRefused() throws {
        let d = try device()
        func offer(vhost: String?, fallback: String?) -> PackageOffer {
            PackageOffer(appId: "00000001", name: "x", version: "1.0.0.1", packageURL: URL(string: "http://courier.example/packages/00000001/1.0.0.1.amr")!,
                         size: 10, sha256: String(repeating: "a", count: 64), fallbackBase: fallback.flatMap(URL.init(string:)), vhost: vhost,
                         mainURL: nil, preload: true, anyNetwork: true, rollback: false, asyncReqRate: nil)
        }
        XCTAssertNil(d.acceptable(offer(vhost: "https://00000001.h5app.example.com", fallback: "http://courier.example/fallback/00000001/1.0.0.1/")))
        XCTAssertNotNil(d.acceptable(offer(vhost: "https://20171228.h5app.example.com", fallback: nil)), "another app's host")
        XCTAssertNotNil(d.acceptable(offer(vhost: "https://www.bank.example", fallback: nil)), "any other host")
        XCTAssertNotNil(d.acceptable(offer(vhost: nil, fallback: "http://10.0.0.1/fallback/00000001/1.0.0.1/")), "another server's copy")
        XCTAssertNotNil(d.acceptable(offer(vhost: nil, fallback: "http://courier.example/admin/")), "not a fallback address")
    }

    func testAnUnreachableOrGarbledServerChangesNothing() async throws {
        let d = CourierDevice(server: URL(string: "http://127.0.0.1:1")!, profile: DeviceProfile(deviceId: "d-1"), keys: .none,
                              store: try PackageStore(root: dir + "/x"))
        let round = await d.check(force: true)
        XCTAssertNotNil(round.unreachable)
        XCTAssertEqual(d.store.state, DeviceState())
        XCTAssertThrowsError(try UpdateAnswer.parse(Data("<html>".utf8)))
        let odd = try UpdateAnswer.parse(Data(#"{"config":{"updateReqRate":-5},"data":[{"app_id":"../../x","version":"1"},{"app_id":"20171228","version":"1.0.0.1","package_url":"file:///etc/passwd","package_size":1,"package_sha256":"00"}]}"#.utf8))
        XCTAssertEqual(odd.offers, [])
        XCTAssertEqual(odd.refused.count, 2)
        XCTAssertNil(odd.updateReqRate, "an interval out of range is not used")
    }
}

