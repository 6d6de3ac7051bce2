import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
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
            // As the form itself sends it (a GET form writes a space as +).
            page = try await b.get("/simulate?platform=android&clientVersion=10.2.3&deviceId=dev-9&osVersion=12&city=New+York&apps=20171228+0")
            XCTAssertEqual(page.status, .ok, page.text)
            XCTAssertTrue(page.text.contains("OS version 12 is not between 13 and 17"), page.text)
            XCTAssertTrue(page.text.contains(#"value="New York""#), "the city typed is the city read")
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
            XCTAssertTrue(page.text.contains("hour (UTC), from the hour the task began"))
            XCTAssertTrue(page.text.contains("/simulate?platform=ios&amp;clientVersion=10.2.3&amp;deviceId=dev-9"), "the failing device, prefilled")
            // A device that reported its failure as an event said no platform or client version:
            // its link opens the form prefilled, to be completed, not a 400.
            let eventLink = try XCTUnwrap(page.text.range(of: #"/simulate\?deviceId=dev-5[^"]*"#, options: .regularExpression).map { String(page.text[$0]) })
            let form = try await b.get(eventLink.replacingOccurrences(of: "&amp;", with: "&"))
            XCTAssertEqual(form.status, .ok, form.text)
            XCTAssertTrue(form.text.contains("simulate-incomplete") && form.text.contains(#"value="dev-5""#), form.text)
            XCTAssertFalse(form.text.contains("simulate-error"))
            XCTAssertTrue(form.text.contains(">20171228 1.0.0.1</textarea>"), "a failed trial: the version was installed")
            // A device that could not install the version still runs another, which it did not say.
            let failed = try await Self.post(client, "/client/v1/events", #"{"deviceId":"dev-7","appId":"20171228","version":"1.0.0.1","event":"install_failed"}"#)
            XCTAssertEqual(failed.status, .noContent, failed.text)
            let again = try await b.get("/tasks/\(id)")
            XCTAssertTrue(again.text.contains("4 failures in 8 installs and failures"), again.text)
            let installLink = try XCTUnwrap(again.text.range(of: #"/simulate\?deviceId=dev-7[^"]*"#, options: .regularExpression).map { String(again.text[$0]) })
            XCTAssertFalse(installLink.contains("apps="), installLink)
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

    /// Revoked versions (SPEC §5): never offered again; devices on one are sent back to the
    /// newest version below that admits them, grayscale included; shown and audited; the
    /// webhook is told (an address that does not answer records its failure and holds up nothing).
    func testARevokedVersionIsNeverOfferedAndItsDevicesAreSentBack() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addPackage("1.0.0.3")
        let ci = ActingUser(name: "ci", role: .developer)
        var official = TaskDraft(); official.type = "official"
        _ = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.1", draft: official)
        var gray = TaskDraft(); gray.type = "gray"; gray.mode = "percentage"; gray.percentage = "100"
        _ = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.2", draft: gray)
        let three = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.3", draft: gray)
        _ = try await h.services.actions.setWebhook(by: .commandLine, url: "http://127.0.0.1:9/hook")
        try await h.test { client in
            let caller = APITests.Caller(client: client, token: token)
            func check(_ installed: String, device: String = "d-1") async throws -> [String: Any]? {
                let r = try await Self.post(client, "/client/v1/update", #"{"platform":"android","clientVersion":"10.2.3","deviceId":"\#(device)","apps":[{"id":"20171228","version":"\#(installed)"}]}"#)
                return (r.json["data"] as? [[String: Any]])?.first
            }
            var answer = try await check("0")
            XCTAssertEqual(answer?["version"] as? String, "1.0.0.3")
            // Bad input first: no reason, a version never released, an unknown one.
            var r = try await caller.call(.post, "/api/v1/apps/20171228/packages/1.0.0.3/revoke", json: #"{"reason":"  "}"#)
            XCTAssertEqual(r.status, .unprocessableContent, r.text)
            XCTAssertTrue(r.text.contains(#""field":"reason""#))
            try await h.addPackage("1.0.0.4")
            r = try await caller.call(.post, "/api/v1/apps/20171228/packages/1.0.0.4/revoke", json: #"{"reason":"bad"}"#)
            XCTAssertEqual(r.status, .conflict, "never released: " + r.text)
            r = try await caller.call(.post, "/api/v1/apps/20171228/packages/9.9.9.9/revoke", json: #"{"reason":"bad"}"#)
            XCTAssertEqual(r.status, .notFound)
            let readOnly = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read")
            r = try await APITests.Caller(client: client, token: readOnly).call(.post, "/api/v1/apps/20171228/packages/1.0.0.3/revoke", json: #"{"reason":"x"}"#)
            XCTAssertEqual(r.status, .forbidden)
            // Revoke 1.0.0.3: devices on it go back to 1.0.0.2 (grayscale, admits them), new ones get 1.0.0.2.
            r = try await caller.call(.post, "/api/v1/apps/20171228/packages/1.0.0.3/revoke", json: #"{"reason":"Crashes on start on Android 14"}"#)
            XCTAssertEqual(r.status, .ok, r.text)
            XCTAssertEqual(r.json["revoked"] as? Bool, true)
            answer = try await check("1.0.0.3")
            XCTAssertEqual(answer?["version"] as? String, "1.0.0.2")
            XCTAssertEqual(answer?["rollback"] as? Bool, true)
            answer = try await check("0", device: "fresh")
            XCTAssertEqual(answer?["version"] as? String, "1.0.0.2", "never offered again")
            await assertEqual(try await h.store.task(three.id ?? 0)?.taskStatus, .finished, "its task is finished")
            r = try await caller.call(.post, "/api/v1/apps/20171228/packages/1.0.0.3/revoke", json: #"{"reason":"again"}"#)
            XCTAssertEqual(r.status, .conflict)
            // Revoke 1.0.0.2 too: back to the official 1.0.0.1.
            r = try await caller.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/revoke", json: #"{"reason":"Also broken"}"#)
            XCTAssertEqual(r.status, .ok, r.text)
            answer = try await check("1.0.0.3")
            XCTAssertEqual(answer?["version"] as? String, "1.0.0.1")
            XCTAssertEqual(answer?["rollback"] as? Bool, true)
            // Shown on the app and package pages, in the audit log; the simulator says why.
            let b = try await Browser.signIn(client, "ci")
            let app = try await b.get("/apps/20171228")
            XCTAssertTrue(app.text.contains("Revoked by ci: Crashes on start on Android 14"), app.text)
            let page = try await b.get("/apps/20171228/packages/1.0.0.3")
            XCTAssertTrue(page.text.contains(#"id="revoked-banner""#) && !page.text.contains(#"id="revoke-version""#))
            let fresh = try await b.get("/apps/20171228/packages/1.0.0.1")
            XCTAssertTrue(fresh.text.contains(#"id="revoke-version""#))
            let refused = try await b.post("/apps/20171228/packages/1.0.0.1/revoke", [("reason", "")])
            XCTAssertEqual(refused.status, .unprocessableContent)
            XCTAssertTrue(refused.text.contains(#"id="error-reason""#))
            let audit = try await h.store.auditEntries(subject: "1.0.0.3 of 20171228", actionPrefix: "package.revoke")
            XCTAssertEqual(audit.count, 1)
            XCTAssertTrue(audit.first?.detail.contains("Crashes on start") == true)
            let sim = try await caller.call(.post, "/api/v1/simulate", json: #"{"platform":"android","clientVersion":"10.2.3","deviceId":"x","app":"20171228"}"#)
            XCTAssertTrue(sim.text.contains("the version was revoked"), sim.text)
        }
        // The webhook: two revocations queued; delivering them to an address that refuses
        // records the failure after its attempts, quickly.
        let sender = WebhookSender(store: h.store, logger: nil, timeout: 2, pause: .milliseconds(10))
        let started = Date()
        await sender.deliver(.versionRevoked(appId: "20171228", version: "1.0.0.3", reason: "x", by: "ci"), at: Date())
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        XCTAssertEqual(sender.recent.deliveries.first?.ok, false)
        XCTAssertEqual(sender.recent.deliveries.first?.attempts, WebhookSender.attempts)
        XCTAssertEqual(sender.recent.deliveries.first?.event, "version.revoked")
    }

    func testTheWebhookIsSetWithASecretShownOnceAndBodiesAreSigned() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("root", role: .admin)
        try await h.test { client in
            let b = try await Browser.signIn(client, "root")
            var r = try await b.post("/settings/webhook", [("webhookUrl", "ftp://example.com/x")])
            XCTAssertEqual(r.status, .unprocessableContent)
            XCTAssertTrue(r.text.contains(#"id="error-webhookUrl""#))
            r = try await b.post("/settings/webhook", [("webhookUrl", "https://user:pw@example.com/x")])
            XCTAssertEqual(r.status, .unprocessableContent)
            await assertNil(try await h.store.webhook())
            r = try await b.post("/settings/webhook", [("webhookUrl", "https://hooks.example.com/courier?token=receiver-key")])
            XCTAssertEqual(r.status, .ok)
            let hook = try await h.store.webhook()
            let secret = try XCTUnwrap(hook?.secret)
            XCTAssertEqual(secret.count, 64)
            XCTAssertTrue(r.text.contains(secret), "shown on the answer that set it")
            let again = try await b.get("/settings")
            XCTAssertFalse(again.text.contains(secret), "and never again")
            XCTAssertFalse(again.text.contains("webhook-dropped"), "nothing was dropped, nothing is said")
            XCTAssertTrue(again.text.contains("https://hooks.example.com/courier?token=receiver-key"), "an administrator sees the address")
            let audit = try await h.store.auditEntries(subject: "settings", actionPrefix: "settings.webhook")
            XCTAssertFalse(audit.contains { $0.detail.contains(secret) }, "the secret is not in the audit log")
            XCTAssertFalse(audit.contains { $0.detail.contains("receiver-key") }, "nor the address's path or query (everyone who reads can read it)")
            XCTAssertTrue(audit.contains { $0.detail.contains("https://hooks.example.com/…") }, audit.map(\.detail).joined())
            let dev = try await Browser.signIn(client, "ci")
            let forbidden = try await dev.post("/settings/webhook", [("webhookUrl", "https://evil.example.com")])
            XCTAssertEqual(forbidden.status, .forbidden)
            // The API: set, answered once; removed with "".
            let admin = try await h.services.actions.createToken(by: .commandLine, userName: "root", scopes: "read,admin")
            let api = APITests.Caller(client: client, token: admin)
            r = try await api.call(.put, "/api/v1/settings", json: #"{"webhookUrl":"http://127.0.0.1:1/x"}"#)
            XCTAssertEqual(r.status, .ok, r.text)
            XCTAssertEqual((r.json["webhookSecret"] as? String)?.count, 64)
            r = try await api.call(.get, "/api/v1/settings")
            XCTAssertNil(r.json["webhookSecret"])
            XCTAssertEqual(r.json["webhookUrl"] as? String, "http://127.0.0.1:1/x")
            r = try await api.call(.put, "/api/v1/settings", json: #"{"webhookUrl":"javascript:alert(1)"}"#)
            XCTAssertEqual(r.status, .unprocessableContent)
            r = try await api.call(.put, "/api/v1/settings", json: #"{"webhookUrl":""}"#)
            await assertNil(try await h.store.webhook())
            _ = token
        }
        // The signature is HMAC-SHA256 of the body under the secret (a value checked by hand with openssl).
        XCTAssertEqual(WebhookSender.signature(Data(#"{"a":1}"#.utf8), secret: "key"),
                       "sha256=" + "88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342")
        let body = String(decoding: WebhookSender.body(.pausedByGate(task: 3, appId: "20171228", version: "1.0.0.2", reason: "too many"), at: Date(timeIntervalSince1970: 0)), as: UTF8.self)
        XCTAssertEqual(body, #"{"app":"20171228","at":"1970-01-01T00:00:00Z","by":"courier","event":"task.pausedByHealthGate","reason":"too many","task":"3","version":"1.0.0.2"}"#)
    }

    func testAdoptionCountsDistinctDevicesPerInstalledVersionWithoutWritingOnTheHotPath() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        var official = TaskDraft(); official.type = "official"
        _ = try await h.services.actions.createTask(by: ActingUser(name: "ci", role: .developer), appId: "20171228", version: "1.0.0.2", draft: official)
        try await h.test { client in
            let before = try await h.store.auditEntries(subject: "settings", actionPrefix: "")
            for d in 0..<30 {
                let installed = d < 20 ? "1.0.0.2" : (d < 25 ? "1.0.0.1" : "7.7.7.7")   // an unknown version is not counted
                for _ in 0..<2 {   // each device checks twice
                    _ = try await Self.post(client, "/client/v1/update", #"{"platform":"android","clientVersion":"10.2.3","deviceId":"dev-\#(d)","apps":[{"id":"20171228","version":"\#(installed)"}]}"#)
                }
            }
            _ = before
            await assertEqual(try await h.store.adoption(app: "20171228", sinceHour: 0).count, 0, "nothing is written by the checks themselves")
            // 1.0.0.2 and the task's checks (1.0.0.1 was never released, 7.7.7.7 does not exist),
            // one each, whichever threads answered the checks.
            XCTAssertEqual(h.services.delivery.tally.size.sketches, 2)
            try await h.services.delivery.tally.flush(to: h.store)
            let caller = APITests.Caller(client: client, token: token)
            let r = try await caller.call(.get, "/api/v1/apps/20171228/adoption")
            XCTAssertEqual(r.status, .ok, r.text)
            let versions = (r.json["versions"] as? [[String: Any]]) ?? []
            XCTAssertEqual(versions.map { $0["version"] as? String }, ["1.0.0.2"])
            XCTAssertEqual(versions.map { $0["devices"] as? Int }, [20])
            let b = try await Browser.signIn(client, "ci")
            let page = try await b.get("/apps/20171228")
            XCTAssertTrue(page.text.contains(#"id="adoption-table""#) && page.text.contains("±1.6 %"), page.text)
            let task = try await h.store.allTasks().first?.id ?? 0
            await assertEqual(try await h.store.healthHours(task: task).first?.checks, 25, "the devices offered this release or running it (not the one ahead on an unknown version)")
        }
    }
    /// Counting from several threads over two hours, a flush that cannot write, then one that can:
    /// nothing counted is lost, each device counts once per hour, and the hours gone are forgotten.
    func testAFlushThatCannotWriteKeepsEveryHourForTheNext() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        var official = TaskDraft(); official.type = "official"
        _ = try await h.services.actions.createTask(by: ActingUser(name: "ci", role: .developer), appId: "20171228", version: "1.0.0.2", draft: official)
        let task = try await h.store.allTasks().first?.id ?? 0
        let tally = Tally(enabled: true)
        let snapshot = try await DeliverySnapshot.build(from: h.store, publicURL: "http://127.0.0.1", reuse: .init(slots: tally.slots))
        let now = Date()
        let earlier = now.addingTimeInterval(-3600)
        @Sendable func check(_ device: Int, at: Date) throws {
            let body = Array(#"{"platform":"android","clientVersion":"10.2.3","deviceId":"d-\#(device)","apps":[{"id":"20171228","version":"1.0.0.2"}]}"#.utf8)
            let request = try body.withUnsafeBytes { try ClientRequest.parse($0) }
            let decisions = Targeting.decide(request, snapshot.targeting, now: at, explain: false) { _, _, _ in true }
            tally.record(request, decisions, snapshot: snapshot, now: at)
        }
        // Four threads, each its own shard; every device checks in both hours, some twice.
        await withTaskGroup(of: Void.self) { group in
            for part in 0..<4 {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        Thread {
                            for d in stride(from: part, to: 40, by: 4) { try? check(d, at: earlier); try? check(d, at: now); try? check(d, at: now) }
                            done.resume()
                        }.start()
                    }
                }
            }
        }
        XCTAssertEqual(tally.size.sketches, 2, "the version's sketch per hour, shared by the four threads (its task's checks are that sketch too)")
        try await h.store.db.write { db in try db.execute(sql: "ALTER TABLE sketch RENAME TO sketchAway") }
        do {
            try await tally.flush(to: h.store, now: now)
            XCTFail("a flush that cannot write says so")
        } catch {}
        try await h.store.db.write { db in try db.execute(sql: "ALTER TABLE sketchAway RENAME TO sketch") }
        try await tally.flush(to: h.store, now: now)
        let hours = try await h.store.healthHours(task: task)
        XCTAssertEqual(hours.map(\.checks), [40, 40], "both hours, each device once")
        let adoption = try await h.store.adoption(app: "20171228", sinceHour: 0)
        XCTAssertEqual(adoption["1.0.0.2"].map { $0.estimate }, 40)
        XCTAssertEqual(tally.size.sketches, 1, "the hour gone is forgotten once written; the hour going on stays")
    }

    /// A device that asks again with the same body is not counted again (it would change no
    /// register), but the same body counts anew in a new hour, when a time window now admits it
    /// under the same snapshot, and under a new snapshot.
    func testTheSameBodyAgainIsSkippedOnlyWhileItWouldCountNothingNew() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        let ci = ActingUser(name: "ci", role: .developer)
        var official = TaskDraft(); official.type = "official"
        let first = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.1", draft: official).id ?? 0
        var window = TaskDraft(); window.type = "gray"; window.mode = "timeWindow"; window.userCount = "10"
        window.endTime = ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400))
        let windowTask = try await h.services.actions.createTask(by: ci, appId: "20171228", version: "1.0.0.2", draft: window).id ?? 0
        let tally = Tally(enabled: true)
        let reuse = DeliverySnapshot.Reuse(slots: tally.slots)
        var snapshot = try await DeliverySnapshot.build(from: h.store, publicURL: "http://127.0.0.1", reuse: reuse)
        let now = Date(), later = now.addingTimeInterval(3600)
        func check(_ device: String, at: Date, admitted: Bool = false) throws {
            let body = Array(#"{"platform":"android","clientVersion":"10.2.3","deviceId":"\#(device)","apps":[{"id":"20171228","version":"0"}]}"#.utf8)
            let request = try body.withUnsafeBytes { try ClientRequest.parse($0) }
            let decisions = Targeting.decide(request, snapshot.targeting, now: at, explain: false) { _, _, _ in admitted }
            body.withUnsafeBytes { tally.record(request, decisions, snapshot: snapshot, now: at, body: $0) }
        }
        for _ in 0..<3 { try check("d-1", at: now) }
        XCTAssertEqual(tally.skipped, 2, "the same check twice more")
        try check("d-2", at: now)
        try check("d-1", at: later)
        XCTAssertEqual(tally.skipped, 2, "another device, another hour: counted")
        try check("d-1", at: now, admitted: true)
        XCTAssertEqual(tally.skipped, 2, "the time window admits it now, under the same snapshot: offered another task, counted")
        snapshot = try await DeliverySnapshot.build(from: h.store, publicURL: "http://127.0.0.1", reuse: reuse)
        try check("d-1", at: now)
        XCTAssertEqual(tally.skipped, 2, "a new snapshot: what the old one offered is not taken for what it offers")
        try check("d-1", at: now)
        XCTAssertEqual(tally.skipped, 3)
        try await tally.flush(to: h.store, now: now)
        try await tally.flush(to: h.store, now: later)
        let hours = try await h.store.healthHours(task: first)
        XCTAssertEqual(hours.map(\.checks), [2, 1], "both devices in the first hour, d-1 again in the next")
        let admitted = try await h.store.healthHours(task: windowTask)
        XCTAssertEqual(admitted.map(\.checks), [1], "the same body, offered the window's task")
    }

    /// Past its cap the tally makes no sketch, says so, and counts again once an hour is written and gone.
    func testTheTallyStopsAtItsCapAndSaysSo() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        var official = TaskDraft(); official.type = "official"
        _ = try await h.services.actions.createTask(by: ActingUser(name: "ci", role: .developer), appId: "20171228", version: "1.0.0.2", draft: official)
        let refused = Atomic<Int>(0)
        let tally = Tally(refused: { refused.add(1, ordering: .relaxed) }, enabled: true, maxSketches: 1)
        let snapshot = try await DeliverySnapshot.build(from: h.store, publicURL: "http://127.0.0.1", reuse: .init(slots: tally.slots))
        let now = Date(), earlier = now.addingTimeInterval(-3600)
        func check(at: Date) throws {
            let body = Array(#"{"platform":"android","clientVersion":"10.2.3","deviceId":"d-1","apps":[{"id":"20171228","version":"1.0.0.2"}]}"#.utf8)
            let request = try body.withUnsafeBytes { try ClientRequest.parse($0) }
            let decisions = Targeting.decide(request, snapshot.targeting, now: at, explain: false) { _, _, _ in true }
            body.withUnsafeBytes { tally.record(request, decisions, snapshot: snapshot, now: at, body: $0) }
        }
        try check(at: earlier)
        try check(at: now)
        XCTAssertEqual(tally.size.sketches, 1)
        XCTAssertEqual(tally.size.dropped, 1)
        XCTAssertEqual(refused.load(ordering: .relaxed), 1, "the metrics are told")
        try await tally.flush(to: h.store, now: now)
        XCTAssertEqual(tally.size.sketches, 0, "the earlier hour is written and forgotten")
        try check(at: now)
        XCTAssertEqual(tally.size.sketches, 1, "room again: the check refused before was not taken for counted")
    }
}
