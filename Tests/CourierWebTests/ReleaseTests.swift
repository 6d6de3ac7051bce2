import CourierDomain
import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Release tasks through the JSON API and what clients are told (SPEC §4, §5, §8).
final class ReleaseTests: XCTestCase {
    func released(dir: String = temporaryDirectory()) async throws -> (Harness, String) { try await releasedHarness(dir: dir) }


    struct Client: Sendable {
        let client: any TestClientProtocol
        func update(_ body: String) async throws -> TestResponse {
            try await client.execute(uri: "/client/v1/update", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: body))
        }
        /// The versions answered (and whether as a rollback) for an Android 10.2.3 client.
        func versions(user: String = "u-1", device: String = "d-1", city: String = "Hangzhou", installed: String = "0") async throws -> [String] {
            let r = try await update(#"{"platform":"android","clientVersion":"10.2.3","deviceId":"\#(device)","userId":"\#(user)","city":"\#(city)","apps":[{"id":"20171228","version":"\#(installed)"}]}"#)
            XCTAssertEqual(r.status, .ok, r.text)
            return ((r.json["data"] as? [[String: Any]]) ?? []).map { e in
                (e["version"] as? String ?? "?") + ((e["rollback"] as? Bool) == true ? " rollback" : "")
            }
        }
    }

    func testTasksDecideWhatClientsGetFromTheVeryNextRequest() async throws {
        let (h, token) = try await released()
        defer { h.cleanUp() }
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            let c = Client(client: client)
            await assertEqual(try await c.versions(), [], "nothing released yet")

            let official = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks",
                                              json: ##"{"type":"official","description":"# First\n\nFixes *crashes* <b>x</b> [a](javascript:alert(1))"}"##)
            XCTAssertEqual(official.status, .created, official.text)
            XCTAssertEqual(official.json["status"] as? String, "releasing")
            let html = official.json["descriptionHtml"] as? String ?? ""
            XCTAssertTrue(html.contains("<h1>First</h1>") && html.contains("<em>crashes</em>"), html)
            XCTAssertFalse(html.contains("<b>") || html.contains("javascript:"), "raw HTML and unsafe links are removed: \(html)")
            await assertEqual(try await c.versions(), ["1.0.0.1"])
            await assertEqual(try await h.store.package("20171228", "1.0.0.1")?.status, .officialReleasing)

            let wl = try await api.call(.post, "/api/v1/whitelists", json: #"{"name":"beta","kind":"user","values":["u-1"," u-3 ",""]}"#)
            XCTAssertEqual(wl.status, .created, wl.text)
            XCTAssertEqual(wl.json["count"] as? Int, 2)
            let wlID = try XCTUnwrap(wl.json["id"] as? Int)
            let gray = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: """
                {"type":"gray","mode":"whitelist","whitelistIds":[\(wlID)],"rules":[{"field":"city","op":"in","values":["hangzhou"]}],"description":"beta"}
                """)
            XCTAssertEqual(gray.status, .created, gray.text)
            let task = try XCTUnwrap(gray.json["id"] as? Int)
            await assertEqual(try await c.versions(user: "u-1"), ["1.0.0.2"])
            await assertEqual(try await c.versions(user: "u-2"), ["1.0.0.1"], "not on the whitelist: the official")
            await assertEqual(try await c.versions(user: "u-1", city: "Beijing"), ["1.0.0.1"], "the rule must hold")
            let again = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"official"}"#)
            XCTAssertEqual(again.status, .conflict, "one unfinished task per package")

            await assertEqual(try await api.call(.post, "/api/v1/tasks/\(task)/pause").json["status"] as? String, "paused")
            await assertEqual(try await c.versions(user: "u-1", installed: "1.0.0.2"), [], "ahead of a paused task: left alone")
            await assertEqual(try await c.versions(user: "u-1"), ["1.0.0.1"])
            await assertEqual(try await api.call(.post, "/api/v1/tasks/\(task)/pause").status, .conflict)
            await assertEqual(try await api.call(.post, "/api/v1/tasks/\(task)/resume").json["status"] as? String, "releasing")
            let promoted = try await api.call(.post, "/api/v1/tasks/\(task)/promote")
            XCTAssertEqual(promoted.json["type"] as? String, "official")
            await assertEqual(try await c.versions(user: "u-9", city: "Beijing"), ["1.0.0.2"], "promoted: everyone")
            let preset = try await client.execute(uri: "/client/v1/preset/20171228.json", method: .get)
            XCTAssertEqual(((preset.json["data"] as? [[String: Any]])?.first)?["version"] as? String, "1.0.0.2")

            let rolled = try await api.call(.post, "/api/v1/tasks/\(task)/rollback")
            XCTAssertEqual(rolled.json["rolledBack"] as? Bool, true)
            await assertEqual(try await c.versions(user: "u-9", installed: "1.0.0.2"), ["1.0.0.1 rollback"])
            await assertEqual(try await c.versions(user: "u-9", installed: "0"), ["1.0.0.1"])
            let afterRollback = try await client.execute(uri: "/client/v1/preset/20171228.json", method: .get)
            XCTAssertEqual(((afterRollback.json["data"] as? [[String: Any]])?.first)?["version"] as? String, "1.0.0.1")
            await assertEqual(try await h.store.package("20171228", "1.0.0.2")?.status, .finished)

            // Clients report what happened; the task shows the counts.
            let event = try await client.execute(uri: "/client/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                 body: ByteBuffer(string: #"{"deviceId":"d-1","appId":"20171228","version":"1.0.0.2","event":"install_ok"}"#))
            XCTAssertEqual(event.status, .noContent, event.text)
            await assertEqual(try await api.call(.get, "/api/v1/tasks/\(task)").json["events"] as? [String: Int], ["install_ok": 1])
            _ = try await client.execute(uri: "/client/v1/events", method: .post, headers: [.contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"deviceId":"d-2","appId":"20171228","version":"1.0.0.2","event":"install_ok"}"#))
            await assertEqual(try await api.call(.get, "/api/v1/tasks/\(task)").json["events"] as? [String: Int], ["install_ok": 2])
            // Issue 15, 3.7: the same report again within the hour adds nothing; one without a device is refused.
            for _ in 0..<5 {
                _ = try await client.execute(uri: "/client/v1/events", method: .post, headers: [.contentType: "application/json"],
                                             body: ByteBuffer(string: #"{"deviceId":"d-2","appId":"20171228","version":"1.0.0.2","event":"install_ok"}"#))
            }
            await assertEqual(try await api.call(.get, "/api/v1/tasks/\(task)").json["events"] as? [String: Int], ["install_ok": 2])
            await assertEqual(try await client.execute(uri: "/client/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                       body: ByteBuffer(string: #"{"appId":"20171228","version":"1.0.0.2","event":"install_ok"}"#)).status,
                              .badRequest)
            await assertTrue(try await h.store.countEvent(task: Int64(task), "install_ok", device: "d-2", now: Date().addingTimeInterval(3600)))
            await assertEqual(try await api.call(.get, "/api/v1/tasks/\(task)").json["events"] as? [String: Int], ["install_ok": 3], "the next hour counts again")
            // A task deleted after the snapshot named it (the soak found this as a 500): a 400, nothing counted.
            await assertFalse(try await h.store.countEvent(task: 999_999, "install_ok", device: "d-1"))

            // A whitelist an unfinished task uses cannot go; a finished task can be deleted.
            let first = try XCTUnwrap(official.json["id"] as? Int)
            let gray2 = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                                           json: #"{"type":"gray","mode":"whitelist","whitelistIds":[\#(wlID)]}"#)
            XCTAssertEqual(gray2.status, .created, gray2.text)
            let inUse = try await api.call(.delete, "/api/v1/whitelists/\(wlID)")
            XCTAssertEqual(inUse.status, .conflict)
            XCTAssertTrue(inUse.text.contains("\(gray2.json["id"] as? Int ?? -1)"), inUse.text)
            await assertEqual(try await api.call(.delete, "/api/v1/tasks/\(first)").status, .conflict, "only finished tasks are deleted")
            await assertEqual(try await api.call(.post, "/api/v1/tasks/\(first)/finish").status, .ok)
            await assertEqual(try await api.call(.delete, "/api/v1/tasks/\(first)").status, .noContent)

            let actions = try await h.store.auditEntries().map(\.action)
            for a in ["task.create", "whitelist.create", "task.pause", "task.resume", "task.promote", "task.rollback", "task.delete"] {
                XCTAssertTrue(actions.contains(a), a)
            }
            await assertTrue(try await h.store.verifyAudit().isValid)
        }
    }

    func testTaskAndWhitelistRefusalsNameTheField() async throws {
        let (h, token) = try await released()
        defer { h.cleanUp() }
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            func field(_ r: TestResponse) -> String? { (r.json["error"] as? [String: Any])?["field"] as? String }
            let badRegex = try await api.call(.post, "/api/v1/whitelists", json: #"{"name":"re","kind":"regex","values":["ok","(bad"]}"#)
            XCTAssertEqual(badRegex.status, .unprocessableContent)
            XCTAssertTrue(badRegex.text.contains("(bad"), badRegex.text)
            for (body, expected) in [(#"{"type":"sometimes"}"#, "type"), (#"{"type":"gray"}"#, "mode"),
                                     (#"{"type":"gray","mode":"percentage","percentage":0}"#, "percentage"),
                                     (#"{"type":"gray","mode":"whitelist","whitelistIds":[999]}"#, "whitelistIds"),
                                     (#"{"type":"gray","mode":"timeWindow","endTime":"2020-01-01T00:00:00Z","userCount":5}"#, "endTime"),
                                     (#"{"type":"gray","mode":"timeWindow","endTime":"2099-01-01T00:00:00Z","userCount":5}"#, "endTime"),
                                     (#"{"type":"gray","mode":"percentage","percentage":5,"rules":[{"field":"city","op":"between","values":["a","b"]}]}"#, "rules.0"),
                                     (#"{"type":"official","mode":"percentage","percentage":5}"#, "type"),
                                     (#"{"type":"official","rules":[{"field":"network","op":"in","values":["WIFI"]}]}"#, "type")] {
                let r = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: body)
                XCTAssertEqual(r.status, .unprocessableContent, body)
                XCTAssertEqual(field(r), expected, "\(body): \(r.text)")
            }
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/9.9.9.9/tasks", json: #"{"type":"official"}"#).status, .notFound)
            await assertEqual(try await h.store.allTasks().count, 0, "nothing half-made")
        }
    }

    func testBadClientRequestsGet400NeverA500() async throws {
        let (h, _) = try await released()
        defer { h.cleanUp() }
        try await h.test { client in
            let c = Client(client: client)
            let apps = (0..<10_000).map { #"{"id":"\#(String(10_000_000 + $0))","version":"0"}"# }.joined(separator: ",")
            for body in ["not json", "[]", #"{"platform":"windows","clientVersion":"1"}"#, #"{"platform":"android","clientVersion":10}"#,
                         #"{"platform":"android","clientVersion":"x.y"}"#, #"{"platform":"android","clientVersion":"1","apps":{}}"#,
                         #"{"platform":"android","clientVersion":"1","apps":[{"id":"20171228","version":"1.0"}]}"#,
                         #"{"platform":"android","clientVersion":"1","all":"yes"}"#,
                         #"{"platform":"android","clientVersion":"1","apps":[\#(apps)]}"#,
                         String(repeating: " ", count: 10 << 20)] {
                let r = try await c.update(body)
                XCTAssertEqual(r.status, .badRequest, String(body.prefix(80)))
                XCTAssertNotNil(r.json["error"] as? String, String(body.prefix(80)))
            }
            let badEvent = try await client.execute(uri: "/client/v1/events", method: .post, body: ByteBuffer(string: #"{"event":"exploded"}"#))
            XCTAssertEqual(badEvent.status, .badRequest)
        }
    }

    func testATimeWindowAdmitsExactlyTheFirstDevicesAndRemembersThemAfterARestart() async throws {
        let dir = temporaryDirectory()
        let (h, token) = try await released(dir: dir)
        defer { h.cleanUp() }
        let end = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        let box = Box<Set<String>>([])
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            let r = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks",
                                       json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":50}"#)
            XCTAssertEqual(r.status, .created, r.text)
            let c = Client(client: client)
            let admitted = try await withThrowingTaskGroup(of: Set<String>.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var mine: Set<String> = []
                        for n in stride(from: worker, to: 300, by: 8) where try await c.versions(device: "d-\(n)") == ["1.0.0.1"] {
                            mine.insert("d-\(n)")
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.formUnion($1) }
            }
            XCTAssertEqual(admitted.count, 50)
            box.value = admitted
            await assertEqual(try await api.call(.get, "/api/v1/tasks/\(r.json["id"] as? Int ?? 0)").json["admitted"] as? Int, 50)
        }
        let restarted = try await Harness.make(dir: dir)
        try await restarted.test { client in
            let c = Client(client: client)
            for device in box.value.sorted().prefix(10) { await assertEqual(try await c.versions(device: device), ["1.0.0.1"], device) }
            await assertEqual(try await c.versions(device: "d-new"), [], "the window is full after a restart too")
        }
    }
}

final class ReleaseConsoleTests: XCTestCase {
    func testWhitelistsAndTasksThroughTheConsole() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let bad = try await b.post("/whitelists", [("name", "testers"), ("kind", "regex"), ("values", "qa-.*\n(oops")])
            XCTAssertEqual(bad.status, .unprocessableContent)
            XCTAssertTrue(bad.text.contains(#"id="error-values""#) && bad.text.contains("“(oops”"), bad.text)
            XCTAssertTrue(bad.text.contains("(oops</textarea>") && bad.text.contains(#"value="testers""#), "typed values kept")
            XCTAssertEqual(Actions.parseValues("u-1\r\nu-2, u-3\n\nu-1", kind: "user"), ["u-1", "u-2", "u-3"], "a browser's CRLF separates values")
            XCTAssertEqual(Actions.parseValues("qa-\\d{1,3}\r\nu-[0-9]{2,}", kind: "regex"), [#"qa-\d{1,3}"#, "u-[0-9]{2,}"],
                           "an expression's comma does not split it")
            let made = try await b.post("/whitelists", [("name", "beta"), ("kind", "user"), ("values", "u-1, u-2\r\nu-2\r\n")])
            XCTAssertEqual(made.status, .seeOther)
            let madeURL = try XCTUnwrap(made.headers[.location])
            let listURL = String(madeURL.split(separator: "?")[0])
            let createdPage = try await b.get(madeURL).text
            XCTAssertTrue(createdPage.contains(">2 values<"), "duplicates dropped, the count shown")
            XCTAssertTrue(createdPage.contains("Whitelist beta was created with 2 values; 1 duplicate was dropped."), createdPage)
            let added = try await b.post(listURL + "/values", [("values", "u-3,u-1")])
            await assertTrue(try await b.get(try XCTUnwrap(added.headers[.location])).text
                .contains("1 new value added; 1 duplicate was dropped (repeated, or already in the list)."))

            let form = try await b.get("/apps/20171228/packages/1.0.0.2/tasks/new")
            XCTAssertEqual(form.status, .ok)
            XCTAssertTrue(form.text.contains(">beta</label>") || form.text.contains("> beta</label>"), "whitelists offered: \(form.text)")
            let refused = try await b.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "gray"), ("mode", "percentage"), ("percentage", "150"),
                                                                                   ("ruleField.0", "city"), ("ruleOp.0", "in"), ("ruleValues.0", "Hangzhou"),
                                                                                   ("description", "*Beta* <script>alert(1)</script>")])
            XCTAssertEqual(refused.status, .unprocessableContent)
            XCTAssertTrue(refused.text.contains(#"id="error-percentage""#))
            XCTAssertTrue(refused.text.contains(#"value="150""#) && refused.text.contains(#"value="Hangzhou""#), "typed values kept")
            let preview = try await b.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "gray"), ("preview", "true"),
                                                                                   ("description", "*Beta* <script>alert(1)</script> [x](javascript:alert(1))")])
            XCTAssertTrue(preview.text.contains("<em>Beta</em>"), "the preview is rendered by the server")
            XCTAssertFalse(preview.text.contains("<script>alert(1)") || preview.text.contains(#"href="javascript:"#))
            await assertEqual(try await h.store.allTasks().count, 0, "a preview creates nothing")

            let wl = try await h.store.whitelists().first?.0.id ?? 0
            let created = try await b.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "gray"), ("mode", "whitelist"), ("whitelistIds", String(wl)),
                                                                                   ("ruleField.0", "city"), ("ruleOp.0", "in"), ("ruleValues.0", "Hangzhou"),
                                                                                   ("description", "# Beta")])
            XCTAssertEqual(created.status, .seeOther, created.text)
            let taskURL = try XCTUnwrap(created.headers[.location]?.split(separator: "?").first.map(String.init))
            let page = try await b.get(try XCTUnwrap(created.headers[.location])).text
            XCTAssertTrue(page.contains("a grayscale release of 1.0.0.2, offered to clients now."), "the notice says what happened")
            XCTAssertTrue(page.contains("Android 10.0 and up, users on whitelist beta (3 values), city in Hangzhou"), page)
            XCTAssertTrue(page.contains("<h1>Beta</h1>"))
            XCTAssertTrue(page.contains(#"id="op-pause""#) && page.contains(#"id="op-promote""#) && !page.contains(#"id="op-delete""#))
            await assertTrue(try await b.get("/apps/20171228/packages/1.0.0.2").text.contains("Grayscale releasing"))
            await assertEqual(try await b.post(taskURL + "/pause", []).status, .seeOther)
            let paused = try await b.get(taskURL).text
            XCTAssertTrue(paused.contains(#"id="op-resume""#) && paused.contains("alice") && paused.contains("pause"))
            let second = try await b.get("/apps/20171228/packages/1.0.0.2/tasks/new").text
            XCTAssertTrue(second.contains(#"id="open-task""#), "the form says why another task cannot be created")
            let inUse = try await b.post(listURL + "/delete", [])
            XCTAssertEqual(inUse.status, .conflict)
            XCTAssertTrue(inUse.text.contains("unfinished task"), inUse.text)

            // A notice is shown only when this server wrote it: a link cannot speak in the console's voice.
            let forged = try await b.get(listURL + "?notice=Your%20session%20expired.%20Sign%20in%20at%20evil.example&ns=AAAA")
            XCTAssertFalse(forged.text.contains("evil.example"), forged.text)
            await assertFalse(try await b.get("/whitelists?notice=Sign%20in%20at%20evil.example").text.contains("evil.example"))
            let notice = try XCTUnwrap(added.headers[.location])
            XCTAssertTrue(notice.contains("ns="), notice)
            await assertFalse(try await b.get(notice.replacingOccurrences(of: "notice=1", with: "notice=9")).text.contains("9 new value"),
                              "an altered notice is not shown")
            await assertTrue(try await b.get(notice).text.contains("1 new value added"))
            try await h.addUser("bob")
            let bob = try await Browser.signIn(client, "bob")
            await assertFalse(try await bob.get(notice).text.contains("1 new value added"),
                              "a notice made for alice (whose words could be a whitelist's name) is not shown to bob")

            // An official task with grayscale settings filled in is refused, not stripped.
            let official = try await b.post("/apps/20171228/packages/1.0.0.1/tasks", [("type", "official"), ("mode", "whitelist"),
                                                                                    ("whitelistIds", String(wl)), ("ruleField.0", "city"),
                                                                                    ("ruleOp.0", "in"), ("ruleValues.0", "Hangzhou")])
            XCTAssertEqual(official.status, .unprocessableContent)
            XCTAssertTrue(official.text.contains(#"id="error-type""#) && official.text.contains("whitelists, advanced rules"), official.text)
        }
    }
}

extension ReleaseConsoleTests {
    func testAPercentageChangeKeepsWhatWasTypedAndTheHistorySaysFromWhatToWhat() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        var official = TaskDraft()
        official.type = "official"
        let first = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.1", draft: official)
        var gray = TaskDraft()
        gray.type = "gray"
        gray.mode = "percentage"
        gray.percentage = "10"
        let task = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.2", draft: gray)
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let url = "/tasks/\(task.id ?? 0)"
            let refused = try await b.post(url + "/percentage", [("percentage", "150")])
            XCTAssertEqual(refused.status, .unprocessableContent)
            XCTAssertTrue(refused.text.contains(#"id="error-percentage""#) && refused.text.contains(#"name="percentage" value="150""#), refused.text)
            await assertEqual(try await b.post(url + "/percentage", [("percentage", "30")]).status, .seeOther)
            let page = try await b.get(url).text
            XCTAssertTrue(page.contains("Changed the percentage (1.0.0.2) from 10 % to 30 %."), page)
            XCTAssertTrue(page.contains("lowering it stops offering"), "the question fits a lower percentage too")

            // Deleting a rolled-back task ends its rollback: the question says so.
            await assertEqual(try await b.post(url + "/promote", []).status, .seeOther)
            await assertEqual(try await b.post(url + "/rollback", []).status, .seeOther, "a rollback finishes the task")
            let ended = try await b.get(url).text
            XCTAssertTrue(ended.contains("Its rollback ends with it: clients that have 1.0.0.2 are no longer told to go back."), ended)
            await assertFalse(try await b.get("/tasks/\(first.id ?? 0)").text.contains("Its rollback ends"))
        }
    }
}

final class BatchReleaseTests: XCTestCase {
    func testOneFormReleasesTheNewestVersionOfEachChosenAppAndListsEachOutcome() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.addUser("rita", role: .reviewer)
        for id in ["30000001", "30000002", "30000003"] {
            _ = try await h.store.createApp(id: AppID(trusted: id), name: "App \(id)", by: .commandLine)
        }
        try await h.addPackage("1.0.0.1", app: "30000001")
        try await h.addPackage("1.0.0.1", app: "30000002")
        var official = TaskDraft()
        official.type = "official"
        _ = try await h.services.actions.createTask(by: .commandLine, appId: "30000002", version: "1.0.0.1", draft: official)
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let apps = try await b.get("/apps").text
            XCTAssertTrue(apps.contains(#"id="batch-release""#))
            let app = try await b.get("/apps/20171228").text
            XCTAssertTrue(app.contains(#"href="/apps/20171228/packages/1.0.0.2/tasks/new""#), "the app page offers its newest version")

            let form = try await b.get("/releases/batch").text
            XCTAssertTrue(form.contains(#"id="app-20171228""#) && form.contains(#"id="app-30000001""#), form)
            XCTAssertTrue(form.contains(#"value="gray" id="type-gray" checked"#), "grayscale is the default, as on a package's own form")
            XCTAssertTrue(form.contains("data-confirm-official="), "an official release asks first")
            let mixed = try await b.post("/releases/batch", [("apps", "20171228"), ("type", "official"), ("mode", "whitelist"),
                                                             ("percentage", "5"), ("ruleField.0", "network"), ("ruleOp.0", "in"), ("ruleValues.0", "WIFI")])
            XCTAssertEqual(mixed.status, .unprocessableContent, "grayscale settings are never dropped silently")
            XCTAssertTrue(mixed.text.contains(#"id="error-type""#) && mixed.text.contains("percentage, advanced rules"), mixed.text)
            await assertEqual(try await h.store.allTasks().count, 1, "nothing created")
            XCTAssertFalse(form.contains(#"id="app-30000002""#), "an app whose newest version is releasing is not offered")
            XCTAssertFalse(form.contains(#"id="app-30000003""#), "an app without packages is not offered")
            let narrowed = try await b.get("/releases/batch?q=App%2030000001").text
            XCTAssertTrue(narrowed.contains(#"id="app-30000001""#) && !narrowed.contains(#"id="app-20171228""#))

            let none = try await b.post("/releases/batch", [("type", "gray"), ("mode", "percentage"), ("percentage", "12.5")])
            XCTAssertEqual(none.status, .unprocessableContent)
            XCTAssertTrue(none.text.contains(#"id="error-apps""#) && none.text.contains(#"value="12.5""#), "the refusal keeps what was typed")
            let badSettings = try await b.post("/releases/batch", [("apps", "20171228"), ("type", "gray"), ("mode", "percentage"), ("percentage", "0")])
            XCTAssertEqual(badSettings.status, .unprocessableContent)
            XCTAssertTrue(badSettings.text.contains(#"id="error-percentage""#))
            XCTAssertTrue(badSettings.text.contains(#"id="app-20171228" aria-label="Release 20171228" checked"#), "the chosen apps stay chosen")
            await assertEqual(try await h.store.allTasks().count, 1, "nothing created by a refused form")

            let preview = try await b.post("/releases/batch", [("apps", "20171228"), ("type", "official"), ("description", "**Bold**"), ("preview", "true")])
            XCTAssertTrue(preview.text.contains("<strong>Bold</strong>"))
            await assertEqual(try await h.store.allTasks().count, 1, "a preview creates nothing")

            // 30000002 (releasing) and 99999999 (unknown) are sent as a tampered form would.
            let done = try await b.post("/releases/batch", [("apps", "20171228"), ("apps", "30000001"), ("apps", "30000002"), ("apps", "99999999"),
                                                            ("type", "gray"), ("mode", "percentage"), ("percentage", "10"), ("description", "Batch")])
            XCTAssertEqual(done.status, .ok, done.text)
            XCTAssertTrue(done.text.contains("2 created, 2 not created"), done.text)
            XCTAssertEqual(done.text.components(separatedBy: #"id="batch-result""#).count, 2, "one result section")
            XCTAssertTrue(done.text.contains("official releasing, not to be released or release finished"), done.text)
            XCTAssertTrue(done.text.contains("99999999 does not exist"), done.text)
            let tasks = try await h.store.allTasks()
            XCTAssertEqual(Set(tasks.filter { $0.createdBy == "alice" }.map { "\($0.appId) \($0.version)" }), ["20171228 1.0.0.2", "30000001 1.0.0.1"])
            let audit = try await h.store.auditEntries().filter { $0.action == "task.create" && $0.user == "alice" }
            XCTAssertEqual(audit.count, 2, "each task is recorded by the write path")

            let reviewer = try await Browser.signIn(client, "rita")
            await assertEqual(try await reviewer.get("/releases/batch").status, .forbidden)
            await assertFalse(try await reviewer.get("/apps").text.contains(#"id="batch-release""#))
            await assertFalse(try await reviewer.get("/apps/20171228").text.contains("tasks/new"))
        }
    }
}

final class GlobalAndSchedulerTests: XCTestCase {
    func testGlobalFilesOfTheOfficialReleaseAreServedUnderTheAppKey() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.setGlobalLocation(host: "mcube.example.com", appKey: "53E5279071442_test", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "77777777"), name: "Shared", by: .commandLine)
        let zip = h.store.blobs.temporaryPath(suffix: ".zip")
        try ZipBuilder([.init("77777777/mcube.example.com/53E5279071442_test/lib/common.js", "window.shared = 1;\n")]).write(to: zip)
        var draft = PackageDraft(fields: FormFields(Dictionary(uniqueKeysWithValues: packageFields())))
        draft.version = "1.0.0.1"
        draft.type = "global"
        draft.mainUrl = ""
        _ = try await h.services.actions.addPackage(by: .commandLine, appId: "77777777", draft: draft, zipPath: zip)
        try await h.test { client in
            await assertEqual(try await client.execute(uri: "/53E5279071442_test/lib/common.js", method: .get).status, .notFound,
                              "not before an official release")
            var official = TaskDraft()
            official.type = "official"
            let task = try await h.services.actions.createTask(by: .commandLine, appId: "77777777", version: "1.0.0.1", draft: official)
            for uri in ["/53E5279071442_test/lib/common.js", "/mcube/53E5279071442_test/lib/common.js"] {
                let r = try await client.execute(uri: uri, method: .get)
                XCTAssertEqual(r.status, .ok, uri)
                XCTAssertEqual(r.text, "window.shared = 1;\n")
                XCTAssertEqual(r.headers[.contentType], "text/javascript; charset=utf-8")
                XCTAssertEqual(r.headers[.cacheControl], "no-cache", "the URL names no version")
                XCTAssertTrue(r.headers[.contentSecurityPolicy]?.hasPrefix("sandbox") == true)
            }
            await assertEqual(try await client.execute(uri: "/53E5279071442_test/lib/other.js", method: .get).status, .notFound)
            await assertEqual(try await client.execute(uri: "/other_key/lib/common.js", method: .get).status, .notFound)
            _ = try await h.services.actions.operate(by: .commandLine, task: task.id ?? 0, .rollback)
            await assertEqual(try await client.execute(uri: "/53E5279071442_test/lib/common.js", method: .get).status, .notFound,
                              "rolled back: no official release left")
        }
    }

    func testATimeWindowTaskFinishesByItselfAtItsEndTime() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        try await h.addPackage("1.0.0.1")
        var draft = TaskDraft()
        draft.type = "gray"; draft.mode = "timeWindow"; draft.userCount = "10"
        draft.endTime = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-60))
        let t = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.1", draft: draft,
                                                        now: Date().addingTimeInterval(-3600))
        await assertEqual(try await h.services.actions.finishEndedWindows(now: Date().addingTimeInterval(-120)), 0, "not yet")
        await assertEqual(try await h.services.actions.finishEndedWindows(), 1)
        await assertEqual(try await h.store.task(t.id ?? 0)?.status, "finished")
        await assertEqual(try await h.store.package("20171228", "1.0.0.1")?.status, .finished)
        await assertEqual(try await h.store.auditEntries().first?.user, "(scheduler)")
    }

    /// Issue 15, 3.7: a time window admits at most 1,000,000 devices; when it ends its devices are
    /// dropped (from the database and from memory) and its count is kept.
    func testAnEndedTimeWindowKeepsItsCountNotItsDevices() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            let end = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
            let tooMany = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks",
                                             json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":1000001}"#)
            XCTAssertEqual((tooMany.json["error"] as? [String: Any])?["field"] as? String, "userCount", tooMany.text)
            let created = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks",
                                             json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":1000000}"#)
            let id = try XCTUnwrap(created.json["id"] as? Int, created.text)
            let c = ReleaseTests.Client(client: client)
            for i in 0..<3 { await assertEqual(try await c.versions(device: "w-\(i)"), ["1.0.0.1"]) }
            await assertEqual(try await h.store.admissions()[Int64(id)]?.count, 3)
            await assertEqual(try await api.call(.post, "/api/v1/tasks/\(id)/finish").json["admitted"] as? Int, 3)
            await assertNil(try await h.store.admissions()[Int64(id)], "the devices are dropped")
            try await h.store.recordAdmissions([(Int64(id), "late")])
            await assertNil(try await h.store.admissions()[Int64(id)], "an admission reserved before the end is not written after it")
            XCTAssertEqual(h.services.delivery.ledger.count(Int64(id)), 0, "and forgotten in memory")
            await assertEqual(try await api.call(.get, "/api/v1/tasks/\(id)").json["admitted"] as? Int, 3, "the count stays")
            // A time window promoted to official drops its devices too.
            let window = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                                            json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":10}"#)
            let windowID = try XCTUnwrap(window.json["id"] as? Int, window.text)
            await assertEqual(try await c.versions(device: "w-9"), ["1.0.0.2"])
            await assertEqual(try await api.call(.post, "/api/v1/tasks/\(windowID)/promote").json["type"] as? String, "official")
            await assertNil(try await h.store.admissions()[Int64(windowID)], "a promoted window keeps no devices")
        }
    }
}

extension Harness {
    /// Adds package `version` of app 20171228 (the sample zip, Android 10.0 and up).
    func addPackage(_ version: String, app: String = "20171228") async throws {
        let zip = store.blobs.temporaryPath(suffix: ".zip")
        try samplePackage(app).write(to: zip)
        var draft = PackageDraft(fields: FormFields(Dictionary(uniqueKeysWithValues: packageFields())))
        draft.version = version
        _ = try await services.actions.addPackage(by: .commandLine, appId: app, draft: draft, zipPath: zip)
    }
}

/// A value tests share between closures.
final class Box<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ v: T) { stored = v }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// App 20171228 with packages 1.0.0.1 and 1.0.0.2 (Android 10.0 and up) and a CI token.
func releasedHarness(dir: String = temporaryDirectory()) async throws -> (Harness, String) {
        let h = try await Harness.make(dir: dir)
        try await h.addUser("ci", role: .developer)
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        for version in ["1.0.0.1", "1.0.0.2"] { try await h.addPackage(version) }
        let token = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read,upload,release")
        return (h, token)
    }
