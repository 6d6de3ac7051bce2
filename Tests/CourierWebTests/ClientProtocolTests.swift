import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// The server's side of the client protocol (SPEC §4, §10; issue 17): the versions a device gave
/// up, the update check interval as a setting, the trial's events.
final class ClientProtocolTests: XCTestCase {
    static func request(device: String = "d-1", installed: String = "0", failed: String = "") -> String {
        #"{"platform":"android","clientVersion":"10.2.3","deviceId":"\#(device)","userId":"u-1","apps":[{"id":"20171228","version":"\#(installed)"}]"#
            + (failed.isEmpty ? "" : #","failed":[\#(failed)]"#) + "}"
    }

    static func versions(_ r: TestResponse) -> [String] {
        XCTAssertEqual(r.status, .ok, r.text)
        return ((r.json["data"] as? [[String: Any]]) ?? []).map { $0["version"] as? String ?? "?" }
    }

    func testAVersionADeviceGaveUpIsNotOfferedToItAgainByTheSameTask() async throws {
        let dir = temporaryDirectory()
        let (h, token) = try await releasedHarness(dir: dir)
        defer { h.cleanUp() }
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            let c = ReleaseTests.Client(client: client)
            for v in ["1.0.0.1", "1.0.0.2"] {
                await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/\(v)/tasks", json: #"{"type":"official"}"#).status, .created)
            }
            await assertEqual(Self.versions(try await c.update(Self.request())), ["1.0.0.2"])
            // The device installed 1.0.0.2, its trial failed, it went back to 1.0.0.1 and says so.
            let failed = #"{"id":"20171228","version":"1.0.0.2","reason":"entry page never loaded"}"#
            await assertEqual(Self.versions(try await c.update(Self.request(installed: "1.0.0.1", failed: failed))), [],
                              "not offered again to the device that gave it up")
            await assertEqual(Self.versions(try await c.update(Self.request(installed: "1.0.0.1"))), [],
                              "remembered: a later request need not list it")
            await assertEqual(Self.versions(try await c.update(Self.request(device: "d-2", installed: "1.0.0.1"))), ["1.0.0.2"], "other devices still get it")
            // Repeating the report counts it once.
            _ = try await c.update(Self.request(installed: "1.0.0.1", failed: failed))
            await assertEqual(try await h.store.eventCounts(task: 2)["failed"], 1, "counted on its task, once per device")
            let page = try await api.call(.get, "/api/v1/tasks/2")
            XCTAssertEqual(page.status, .ok)

            // A new task for the same version is a new release: offered again.
            await assertEqual(try await api.call(.post, "/api/v1/tasks/2/finish").status, .ok)
            await assertEqual(try await api.call(.delete, "/api/v1/tasks/2").status, .noContent)
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"official"}"#).status, .created)
            await assertEqual(Self.versions(try await c.update(Self.request(installed: "1.0.0.1"))), ["1.0.0.2"], "released anew")
            _ = try await c.update(Self.request(installed: "1.0.0.1", failed: failed))
        }
        // Remembered across a restart.
        let again = try await Harness.make(dir: dir)
        try await again.test { client in
            let c = ReleaseTests.Client(client: client)
            await assertEqual(Self.versions(try await c.update(Self.request(installed: "1.0.0.1"))), [], "still given up after a restart")
            await assertEqual(Self.versions(try await c.update(Self.request(device: "d-3", installed: "1.0.0.1"))), ["1.0.0.2"])
        }
    }

    func testTheEventLoopPathAndTheRouterAgreeOnAGivenUpVersion() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.testLive { client in
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"official"}"#).status, .created)
            let c = ReleaseTests.Client(client: client)
            let failed = #"{"id":"20171228","version":"1.0.0.2"}"#
            let before = h.services.delivery.eventLoopAnswers.load(ordering: .relaxed)
            await assertEqual(Self.versions(try await c.update(Self.request(failed: failed))), [], "written by the router's path first")
            XCTAssertEqual(h.services.delivery.eventLoopAnswers.load(ordering: .relaxed), before, "a new failure is not answered on the event loop")
            await assertEqual(Self.versions(try await c.update(Self.request(failed: failed))), [], "known now: answered on the event loop")
            await assertEqual(Self.versions(try await c.update(Self.request())), [])
            XCTAssertEqual(h.services.delivery.eventLoopAnswers.load(ordering: .relaxed), before + 2)
        }
    }

    func testAMalformedFailedListIsRefusedInWords() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.test { client in
            let c = ReleaseTests.Client(client: client)
            for (failed, words) in [(#""x""#, "Each failed version is"), (#"{"id":"20171228","version":"1.0"}"#, "Each failed version is"),
                                    (#"{"id":"2017","version":"1.0.0.1"}"#, "Each failed version is"),
                                    (#"{"id":20171228,"version":"1.0.0.1"}"#, "Each failed version is")] {
                let r = try await c.update(Self.request(failed: failed))
                XCTAssertEqual(r.status, .badRequest, failed)
                XCTAssertTrue((r.json["error"] as? String ?? "").contains(words), r.text)
            }
            let notAList = try await c.update(#"{"platform":"android","clientVersion":"1","failed":{}}"#)
            XCTAssertTrue(notAList.text.contains("failed must be a list"), notAList.text)
            // A version no task releases is neither remembered nor refused.
            let unknown = try await c.update(Self.request(failed: #"{"id":"20171228","version":"9.9.9.9","reason":"x"}"#))
            XCTAssertEqual(unknown.status, .ok)
            XCTAssertTrue(h.services.delivery.gaveUp.isEmpty)
        }
    }

    func testTheUpdateCheckIntervalIsASettingEveryAnswerCarries() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("ada", role: .admin)
        let admin = try await h.services.actions.createToken(by: .commandLine, userName: "ada", scopes: "read,upload,release,admin")
        try await h.test { client in
            let c = ReleaseTests.Client(client: client)
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#).status, .created)
            func rate(_ r: TestResponse) -> Int? { (r.json["config"] as? [String: Any])?["updateReqRate"] as? Int }
            await assertEqual(rate(try await c.update(Self.request())), 1800, "the default")

            let b = try await Browser.signIn(client, "ada")
            let settings = try await b.get("/settings").text
            XCTAssertTrue(settings.contains(#"id="updateReqRate" name="updateReqRate" value="1800""#), settings)
            for bad in ["-1", "86401", "half an hour", ""] {
                let r = try await b.post("/settings/update-interval", [("updateReqRate", bad)])
                XCTAssertEqual(r.status, .unprocessableContent, bad)
                XCTAssertTrue(element(r.text, id: "error-updateReqRate").contains("from 0 to 86400"), r.text)
                XCTAssertTrue(r.text.contains(#"value="\#(bad)""#), "what was typed is kept")
            }
            let saved = try await b.post("/settings/update-interval", [("updateReqRate", "600")])
            XCTAssertEqual(saved.status, .seeOther)
            await assertTrue(try await b.get(try XCTUnwrap(saved.headers[.location])).text.contains("The update check interval is saved"))
            await assertEqual(rate(try await c.update(Self.request())), 600, "from the very next answer")
            let preset = try await client.execute(uri: "/client/v1/preset/20171228.json", method: .get)
            XCTAssertEqual(rate(preset), 600)
            let packagePreset = try await b.get("/apps/20171228/packages/1.0.0.1/h5_json.json")
            XCTAssertEqual(rate(packagePreset), 600)

            let ada = APITests.Caller(client: client, token: admin)
            let put = try await ada.call(.put, "/api/v1/settings", json: #"{"updateReqRate":0}"#)
            XCTAssertEqual(put.json["updateReqRate"] as? Int, 0, put.text)
            await assertEqual(rate(try await c.update(Self.request())), 0)
            await assertEqual(try await ada.call(.put, "/api/v1/settings", json: #"{"updateReqRate":90000}"#).status, .unprocessableContent)
            await assertEqual(try await api.call(.put, "/api/v1/settings", json: #"{"updateReqRate":60}"#).status, .forbidden,
                              "a developer's token does not change settings")
            let log = try await b.get("/audit").text
            XCTAssertTrue(log.contains("Set the update check interval to 600 seconds (before: 1800)."), log)
        }
    }

    func testTheTrialsEventsAreCounted() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#).status, .created)
            for event in ["trial_failed", "patch_failed"] {
                let r = try await client.execute(uri: "/client/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                 body: ByteBuffer(string: #"{"deviceId":"d-1","appId":"20171228","version":"1.0.0.1","event":"\#(event)"}"#))
                XCTAssertEqual(r.status, .noContent, r.text)
            }
            let counts = try await h.store.eventCounts(task: 1)
            XCTAssertEqual(counts["trial_failed"], 1)
            XCTAssertEqual(counts["patch_failed"], 1)
            // The task page says what each report means, beside its name.
            let b = try await Browser.signIn(client, "ci")
            let reports = try await b.get("/tasks/1").text
            XCTAssertTrue(reports.contains("Given up on the device: reported broken, or opened without loading <code>trial_failed</code></td><td>1"), reports)
            XCTAssertTrue(reports.contains("The patch did not apply; the full package was downloaded <code>patch_failed</code>"), reports)
        }
    }
}
