import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest
@testable import CourierWeb

/// Release health, ramps and the targeting simulator through the router (issue 21).
final class ReleaseHealthPagesTests: XCTestCase {
    static func post(_ client: any TestClientProtocol, _ uri: String, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
    }

    /// A whitelist task with an OS rule on 1.0.0.1 and a time window of one device on 1.0.0.2.
    func planted() async throws -> (Harness, String, whitelist: Int64, window: Int64) {
        let (h, token) = try await releasedHarness()
        let ci = ActingUser(name: "ci", role: .developer)
        let list = try await h.store.createWhitelist(name: "beta-testers", kind: .user, values: ["u-beta"], by: ci)
        var draft = TaskDraft()
        draft.type = "gray"; draft.mode = "whitelist"; draft.whitelistIds = [list.id ?? 0]
        draft.rules = [.init(field: "osVersion", op: "between", values: ["13", "17"])]
        let w = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.1", draft: draft)
        var window = TaskDraft()
        window.type = "gray"; window.mode = "timeWindow"; window.userCount = "1"
        window.endTime = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        let t = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.2", draft: window)
        return (h, token, w.id ?? 0, t.id ?? 0)
    }

    func testTheSimulatorExplainsEachTaskAndChangesNothing() async throws {
        let (h, token, whitelist, window) = try await planted()
        defer { h.cleanUp() }
        try await h.test { client in
            let caller = APITests.Caller(client: client, token: token)
            let profile = #"{"platform":"android","clientVersion":"10.2.3","deviceId":"dev-1","userId":"u-other","osVersion":"12","#
            var r = try await caller.call(.post, "/api/v1/simulate", json: profile + #""apps":[{"id":"20171228","version":"0"}]}"#)
            XCTAssertEqual(r.status, .ok, r.text)
            XCTAssertTrue(r.text.contains("OS version 12 is not between 13 and 17"), r.text)
            XCTAssertTrue(r.text.contains(#""offered":"1.0.0.2""#), "the window has a free place: offered, " + r.text)
            XCTAssertTrue(r.text.contains("among the first 1 devices"), r.text)
            // Simulating again for another device: the place was not taken.
            r = try await caller.call(.post, "/api/v1/simulate", json: #"{"platform":"android","clientVersion":"10.2.3","deviceId":"dev-2","app":"20171228"}"#)
            XCTAssertTrue(r.text.contains(#""offered":"1.0.0.2""#), r.text)
            await assertEqual(try await h.store.admissions()[window]?.count ?? 0, 0, "the simulator admits nobody")
            // A real update check takes the place; the simulator then explains the refusal.
            let update = try await Self.post(client, "/client/v1/update", #"{"platform":"android","clientVersion":"10.2.3","deviceId":"dev-1","all":true}"#)
            XCTAssertTrue(update.text.contains("1.0.0.2"), update.text)
            r = try await caller.call(.post, "/api/v1/simulate", json: #"{"platform":"android","clientVersion":"10.2.3","deviceId":"dev-3","userId":"u-beta","osVersion":"14","app":"20171228"}"#)
            XCTAssertTrue(r.text.contains("outside the first 1 devices"), r.text)
            XCTAssertTrue(r.text.contains(#""offered":"1.0.0.1""#), "on the whitelist and within the OS range: " + r.text)
            XCTAssertTrue(r.text.contains(#"on whitelist “beta-testers”"#), r.text)
            _ = whitelist
            // Garbage: the update API's 400s, word for word.
            for bad in ["not json", #"{"platform":"web","clientVersion":"1"}"#, #"{"platform":"android","clientVersion":"x"}"#] {
                let sim = try await caller.call(.post, "/api/v1/simulate", json: bad)
                let real = try await Self.post(client, "/client/v1/update", bad)
                XCTAssertEqual(sim.status, .badRequest, bad)
                XCTAssertEqual(real.status, .badRequest, bad)
                XCTAssertEqual((sim.json["error"] as? [String: Any])?["message"] as? String, real.json["error"] as? String, bad)
            }
            let unknown = try await caller.call(.post, "/api/v1/simulate", json: #"{"platform":"android","clientVersion":"1","app":"99999999"}"#)
            XCTAssertEqual(unknown.status, .notFound, unknown.text)
            // The console page: the same words, prefilled from its address.
            let b = try await Browser.signIn(client, "ci")
            var page = try await b.get("/simulate?platform=android&clientVersion=10.2.3&deviceId=dev-9&osVersion=12&userId=u-beta&apps=20171228%200")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains("OS version 12 is not between 13 and 17"), page.text)
            XCTAssertTrue(page.text.contains(#"id="sim-task-\#(whitelist)""#))
            page = try await b.get("/simulate?platform=android&clientVersion=x")
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains("simulate-error"))
            page = try await b.get("/simulate")
            XCTAssertEqual(page.status, .ok, "an empty form")
            XCTAssertFalse(page.text.contains("sim-20171228"))
        }
    }

    func testTheTaskPageShowsHealthAndLinksTheSimulatorToAFailingDevice() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        let ci = ActingUser(name: "ci", role: .developer)
        var draft = TaskDraft()
        draft.type = "gray"; draft.mode = "percentage"; draft.percentage = "100"; draft.stepLines = ""
        let t = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.1", draft: draft)
        let id = t.id ?? 0
        try await h.test { client in
            for d in 0..<6 {
                let event = d < 4 ? "install_ok" : "trial_failed"
                let r = try await Self.post(client, "/client/v1/events", #"{"deviceId":"dev-\#(d)","appId":"20171228","version":"1.0.0.1","event":"\#(event)"}"#)
                XCTAssertEqual(r.status, .noContent, r.text)
            }
            // A device that gave the version up, with its whole profile.
            let update = try await Self.post(client, "/client/v1/update", """
                {"platform":"ios","clientVersion":"10.2.3","deviceId":"dev-9","userId":"u-9","osVersion":"17","apps":[{"id":"20171228","version":"0"}],
                 "failed":[{"id":"20171228","version":"1.0.0.1","reason":"trial failed"}]}
                """)
            XCTAssertEqual(update.status, .ok)
            let b = try await Browser.signIn(client, "ci")
            let page = try await b.get("/tasks/\(id)")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains(#"<svg xmlns="http://www.w3.org/2000/svg" id="health-counts""#), page.text)
            XCTAssertTrue(page.text.contains(#"id="health-rate""#))
            XCTAssertTrue(page.text.contains("3 failures in 7 installs and failures"), page.text)
            XCTAssertTrue(page.text.contains("hours since the task began"))
            XCTAssertTrue(page.text.contains("/simulate?platform=ios&amp;clientVersion=10.2.3&amp;deviceId=dev-9"), "the failing device, prefilled")
            let health = try await b.get("/api/v1/tasks/\(id)/health")
            XCTAssertEqual(health.status, .unauthorized, "the JSON twin takes a token, not a session")
        }
    }

    func testTheTaskFormPreviewsTheRampAndNamesWhatIsWrong() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await Browser.signIn(client, "ci")
            let path = "/apps/20171228/packages/1.0.0.1/tasks"
            var fields = [("type", "gray"), ("mode", "percentage"), ("percentage", "1"), ("steps", "10% after 2h\n50% after 1d\npromote after 1d"),
                          ("healthThreshold", "3"), ("description", ""), ("preview", "1")]
            var r = try await b.post(path, fields)
            XCTAssertEqual(r.status, .ok, r.text)
            XCTAssertTrue(r.text.contains(#"id="ramp-preview""#), r.text)
            XCTAssertTrue(r.text.contains("promote to official") && r.text.contains("50 % of devices"), r.text)
            fields[3] = ("steps", "50% after 2h\n10% after 1d")
            r = try await b.post(path, fields)
            XCTAssertTrue(r.text.contains(#"id="error-steps""#) && r.text.contains("steps only go up"), r.text)
            fields.removeLast()
            r = try await b.post(path, fields)
            XCTAssertEqual(r.status, .unprocessableContent)
            XCTAssertTrue(r.text.contains(#"id="error-steps""#))
            await assertEqual(try await h.store.allTasks().count, 0, "nothing was created")
            fields[3] = ("steps", "10% after 2h\npromote after 1d")
            r = try await b.post(path, fields)
            XCTAssertEqual(r.status, .seeOther, r.text)
            let task = try await h.store.allTasks().first
            XCTAssertEqual(try task?.rampPlan()?.steps.count, 2)
            XCTAssertEqual(try task?.rampPlan()?.threshold, 3)
            let page = try await b.get("/tasks/\(task?.id ?? 0)")
            XCTAssertTrue(page.text.contains(#"id="ramp-timeline""#) && page.text.contains("0 of 2 steps taken"), page.text)
        }
    }
}
