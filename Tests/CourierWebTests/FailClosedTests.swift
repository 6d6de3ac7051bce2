import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Issue 15, part 2: a stored task, rule, whitelist or setting that this binary cannot read
/// makes its task offer nothing (never a wider release), says so on the task page and in
/// /metrics, and stays so after a restart.
final class FailClosedTests: XCTestCase {
    typealias Client = ReleaseTests.Client

    /// Official 1.0.0.1 for everyone, and a grayscale 1.0.0.2 for whitelist "beta" (u-1, u-2)
    /// in Hangzhou only. Answers the harness, the token and the gray task's ID.
    func grayInHangzhou() async throws -> (Harness, String, Int) {
        let (h, token) = try await releasedHarness()
        let task = Box(0)
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#).status, .created)
            let wl = try await api.call(.post, "/api/v1/whitelists", json: #"{"name":"beta","kind":"user","values":["u-1","u-2"]}"#)
            let wlID = try XCTUnwrap(wl.json["id"] as? Int)
            let gray = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: """
                {"type":"gray","mode":"whitelist","whitelistIds":[\(wlID)],"rules":[{"field":"city","op":"in","values":["Hangzhou"]}]}
                """)
            XCTAssertEqual(gray.status, .created, gray.text)
            task.value = try XCTUnwrap(gray.json["id"] as? Int)
            let c = Client(client: client)
            await assertEqual(try await c.versions(user: "u-1", city: "Hangzhou"), ["1.0.0.2"])
            await assertEqual(try await c.versions(user: "u-1", city: "Beijing"), ["1.0.0.1"])
        }
        return (h, token, task.value)
    }

    /// Edits the stored rows the way a newer (or damaged) database would have them, then restarts.
    func restarted(_ h: Harness, _ sql: String, _ task: Int) async throws -> Harness {
        try await h.store.db.write { db in try db.execute(sql: sql, arguments: [task]) }
        return try await Harness.make(dir: h.dir)
    }

    func assertOffersNothing(_ h: Harness, task: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        try await h.test { client in
            let c = Client(client: client)
            for city in ["Beijing", "Hangzhou"] {
                await assertEqual(try await c.versions(user: "u-1", city: city), ["1.0.0.1"], "\(what): the task offers nothing, the official stays",
                                  file: file, line: line)
                await assertEqual(try await c.versions(user: "u-9", city: city), ["1.0.0.1"], file: file, line: line)
            }
            try await h.addUser("root")
            let b = try await Browser.signIn(client, "root")
            let page = try await b.get("/tasks/\(task)")
            XCTAssertEqual(page.status, .ok, file: file, line: line)
            XCTAssertTrue(page.text.contains(#"id="task-unreadable""#), "\(what): the task page says the task cannot be read", file: file, line: line)
            XCTAssertFalse(page.text.contains(#"id="op-promote""#) || page.text.contains(#"id="op-pause""#) || page.text.contains(#"id="change-percentage""#),
                           "\(what): only finishing is offered", file: file, line: line)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), "\(what): /metrics counts it\n\(metrics.text.prefix(0))",
                          file: file, line: line)
        }
    }

    /// Issue 21: a revocation whose version cannot be read could name any version, the one
    /// offered included: its app offers nothing rather than offering a revoked version again.
    func testARevocationThatCannotBeReadMakesItsAppOfferNothing() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        let package = try await h.store.db.read { db in try Int64.fetchOne(db, sql: "SELECT packageId FROM task WHERE id = ?", arguments: [task]) }
        try await h.store.db.write { db in
            try db.execute(sql: "INSERT INTO revocation (packageId, appId, version, reason, revokedBy, revokedAt) VALUES (?, '20171228', '1.0.0.2-beta', 'x', 'ci', '2026-01-01 00:00:00')",
                           arguments: [package])
        }
        let restarted = try await Harness.make(dir: h.dir)
        try await restarted.test { client in
            let c = Client(client: client)
            await assertEqual(try await c.versions(user: "u-1", city: "Hangzhou"), [], "neither the grayscale release nor the official one")
            await assertEqual(try await c.versions(user: "u-9", city: "Beijing"), [])
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), "/metrics counts it")
        }
    }

    /// Issue 19: the settings kept as one JSON object (`moreSettings`) must read as one.
    func testAPackageWhoseStoredSettingsCannotBeReadIsOfferedToNobody() async throws {
        // Not an object; a setting this binary does not describe (a newer one wrote it); a column's
        // setting stored twice; a value its check refuses.
        for stored in ["[1]", #"{"fromANewerBinary":"x"}"#, #"{"mainUrl":"/www/other.html"}"#, #"{"downloadPolicy":"sometimes"}"#] {
            let (h, _, task) = try await grayInHangzhou()
            let sql = "UPDATE package SET moreSettings = '\(stored)' WHERE id = (SELECT packageId FROM task WHERE id = ?)"
            let after = try await restarted(h, sql, task)
            try await after.test { client in
                let c = Client(client: client)
                await assertEqual(try await c.versions(user: "u-1", city: "Hangzhou"), ["1.0.0.1"],
                                  "\(stored): the grayscale offers nothing, the official goes on")
                let metrics = try await client.execute(uri: "/metrics", method: .get)
                XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), stored)
            }
            h.cleanUp()
        }
    }

    func testARuleOnAnUnknownAttributeMakesTheTaskOfferNothing() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        let after = try await restarted(h, #"UPDATE task SET rules = '[{"field":"carrier","op":"in","values":["x"]}, {"field":"city","op":"in","values":["Hangzhou"]}]' WHERE id = ?"#, task)
        try await assertOffersNothing(after, task: task, "a rule on an unknown attribute")
        // Promoting would drop the rule it cannot read and release to everyone: refused.
        await assertThrows(try await after.store.operate(task: Int64(task), .promote, by: .alice)) { XCTAssertTrue("\($0)".contains("can only be finished"), "\($0)") }
        await assertThrows(try await after.store.setPercentage(task: Int64(task), 50, by: .alice))
        // A promotion asked for before (by a binary that could read it): approving it would drop the rule too.
        try await after.store.db.write { db in
            try db.execute(sql: "UPDATE task SET approval = 'awaiting', approvalFor = 'promotion', requestedBy = 'bob' WHERE id = ?", arguments: [task])
        }
        await assertThrows(try await after.store.decide(task: Int64(task), approve: true, comment: "", by: .alice)) {
            XCTAssertTrue("\($0)".contains("can only be rejected or finished"), "\($0)")
        }
        await assertEqual(try await after.store.operate(task: Int64(task), .finish, by: .alice).status, "finished")
    }

    func testAnUnknownTaskTypeIsNotReadAsOfficial() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        let after = try await restarted(h, "UPDATE task SET type = 'canary' WHERE id = ?", task)
        try await assertOffersNothing(after, task: task, "an unknown type")
    }

    func testWhitelistIDsThatDoNotDecodeAreNotAnEmptyList() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        let after = try await restarted(h, "UPDATE task SET whitelistIds = '{\"ids\":[1]}', rules = '[]' WHERE id = ?", task)
        try await assertOffersNothing(after, task: task, "whitelist IDs that do not decode")
    }

    func testUnknownModeStatusAndRulesThatDoNotDecode() async throws {
        for (what, sql) in [("an unknown mode", "UPDATE task SET mode = 'lottery' WHERE id = ?"),
                            ("rules that do not decode", "UPDATE task SET rules = 'city=Hangzhou' WHERE id = ?"),
                            ("a percentage out of range", "UPDATE task SET mode = 'percentage', percentage = 250 WHERE id = ?"),
                            ("an unknown status", "UPDATE task SET status = 'ramping' WHERE id = ?")] {
            let (h, _, task) = try await grayInHangzhou()
            let after = try await restarted(h, sql, task)
            try await assertOffersNothing(after, task: task, what)
            h.cleanUp()
        }
    }

    func testAWhitelistThatCannotBeReadMakesItsTasksOfferNothing() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        // A second list on the same task stays readable: the unreadable one must not just drop out.
        try await h.store.db.write { db in
            try db.execute(sql: "INSERT INTO whitelist (name, kind, createdAt, revision) VALUES ('future', 'segment', '2026-01-01 00:00:00', 0)")
            let id = db.lastInsertedRowID
            let beta = try Int64.fetchOne(db, sql: "SELECT id FROM whitelist WHERE name = 'beta'") ?? 0
            try db.execute(sql: "UPDATE task SET whitelistIds = ? WHERE id = ?", arguments: ["[\(id),\(beta)]", task])
        }
        let after = try await Harness.make(dir: h.dir)
        try await assertOffersNothing(after, task: task, "a whitelist of an unknown kind")
        await assertThrows(try await after.store.operate(task: Int64(task), .promote, by: .alice)) { XCTAssertTrue("\($0)".contains("whitelist"), "\($0)") }
    }

    func testTheLogSaysOnceThatAStoredReleaseCannotBeRead() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        try await h.store.db.write { db in try db.execute(sql: "UPDATE task SET type = 'canary' WHERE id = ?", arguments: [task]) }
        let log = LogLines()
        let after = try await Harness.make(dir: h.dir, logger: log.logger)
        try await after.services.delivery.rebuild()   // the same problem again: not logged twice
        let lines = log.all.filter { $0.contains("Cannot read a stored release; it offers nothing") }
        XCTAssertEqual(lines.count, 1, log.all.joined(separator: "\n"))
        XCTAssertTrue(lines.first?.contains("task \(task) (20171228 1.0.0.2)") == true, lines.joined())
        XCTAssertTrue(lines.first?.hasPrefix("error ") == true, lines.joined())
    }

    func testAnExpressionSavedBeforeTheSafeSubsetOffersNothing() async throws {
        // A regex list saved by an older binary that accepted any expression: this one refuses to
        // run it (it stalls backtracking engines), so the task that uses it offers nothing.
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        try await h.store.db.write { db in
            try db.execute(sql: "INSERT INTO whitelist (name, kind, createdAt, revision) VALUES ('legacy', 'regex', '2026-01-01 00:00:00', 0)")
            let id = db.lastInsertedRowID
            try db.execute(sql: "INSERT INTO whitelistValue (whitelistId, value) VALUES (?, ?)", arguments: [id, #"(\w+\s?)+b"#])
            try db.execute(sql: "UPDATE task SET whitelistIds = ?, rules = '[]' WHERE id = ?", arguments: ["[\(id)]", task])
        }
        let after = try await Harness.make(dir: h.dir)
        try await assertOffersNothing(after, task: task, "an expression the safe subset refuses")
        try await after.test { client in
            let slow = String(repeating: "a", count: 40) + "!"
            await assertEqual(try await Client(client: client).versions(user: slow, city: "Hangzhou"), ["1.0.0.1"])
        }
    }

    func testASettingsRowThatCannotBeReadOffersNothingAfterARestart() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        try await h.store.db.write { db in try db.execute(sql: "UPDATE settings SET updateReqRate = 'soon' WHERE id = 1") }
        let after = try await Harness.make(dir: h.dir)
        try await after.test { client in
            let c = Client(client: client)
            await assertEqual(try await c.versions(user: "u-1", city: "Hangzhou"), [], "neither the grayscale nor the official release")
            await assertEqual(try await c.versions(user: "u-9"), [])
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), String(metrics.text.prefix(0)))
            try await after.addUser("root")
            let b = try await Browser.signIn(client, "root")
            let ready = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(ready.status, .serviceUnavailable, "an operator's probe sees it")
            XCTAssertTrue(ready.text.contains("offers nothing: the settings cannot be read"), ready.text)
            // Pages that need the settings say so plainly, rather than guess them.
            let page = try await b.get("/tasks/\(task)")
            XCTAssertEqual(page.status, .internalServerError)
            XCTAssertTrue(page.text.contains("The stored settings cannot be read"), page.text)
        }
        // Narrowing needs no settings: a task can still be paused and finished; a promotion,
        // which reads the approval rules, is refused.
        await assertThrows(try await after.store.operate(task: Int64(task), .promote, by: .alice)) {
            XCTAssertTrue("\($0)".contains("settings cannot be read"), "\($0)")
        }
        await assertEqual(try await after.store.operate(task: Int64(task), .pause, by: .alice).status, "paused")
        await assertEqual(try await after.store.operate(task: Int64(task), .finish, by: .alice).status, "finished")
        await assertThrows(try await after.store.operate(task: Int64(task), .approve, by: .alice), "decisions have their own write")
    }

    func testAnExpressionThatCouldStallTheServerIsRefusedWithWhyInTheConsoleAndTheAPI() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let page = try await b.post("/whitelists", [("name", "qa"), ("kind", "regex"), ("values", "qa-1\n(\\w+\\s?)+b")])
            XCTAssertEqual(page.status, .unprocessableContent)
            let said = element(page.text, id: "error-values")
            XCTAssertTrue(said.contains("a nested quantifier") && said.contains("exponential time"), said)
            let api = try await APITests.Caller(client: client, token: token)
                .call(.post, "/api/v1/whitelists", json: #"{"name":"qa","kind":"regex","values":["(\\w+\\s?)+b"]}"#)
            XCTAssertEqual(api.status, .unprocessableContent, api.text)
            XCTAssertTrue(api.text.contains("a nested quantifier"), api.text)
            await assertEqual(try await h.store.whitelists().count, 0, "nothing saved")

            // Linear, but costly: lists that together would cost more than one request may take
            // to match are refused (one request asks every list at most once, so this bounds it).
            let costly = (0..<20).map { "\"(|.){100}(|.){100}(|.){60}\($0)!\"" }.joined(separator: ",")
            let refused = try await APITests.Caller(client: client, token: token)
                .call(.post, "/api/v1/whitelists", json: #"{"name":"heavy","kind":"regex","values":[\#(costly)]}"#)
            XCTAssertEqual(refused.status, .unprocessableContent, refused.text)
            XCTAssertTrue(refused.text.contains("too costly to match"), refused.text)
            let everyday = try await APITests.Caller(client: client, token: token)
                .call(.post, "/api/v1/whitelists", json: #"{"name":"qa","kind":"regex","values":["qa-tester-\\d+","(alice|bob)"]}"#)
            XCTAssertEqual(everyday.status, .created, everyday.text)
        }
    }

    func testWhichDevicesReportedIsForgottenOnceTheirHourHasPassedInBatches() async throws {
        // Issue 15, 3.7: events count once per device, task, kind and hour; the devices seen are
        // not kept past their hour (housekeeping prunes them a bounded batch at a time).
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        var draft = TaskDraft()
        draft.type = "official"
        let task = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.1", draft: draft).id ?? 0
        let hour = Date(timeIntervalSince1970: 3600 * 500_000)
        for i in 0..<5 { try await h.store.countEvent(task: task, "install_ok", device: "d-\(i)", now: hour) }
        try await h.store.countEvent(task: task, "install_ok", device: "d-0", now: hour.addingTimeInterval(60))
        await assertEqual(try await h.store.eventCounts(task: task)["install_ok"], 5, "once per device in the hour")
        await assertEqual(try await h.store.pruneEventsSeen(now: hour.addingTimeInterval(120), batch: 2), 0, "the hour is not over")
        await assertEqual(try await h.store.pruneEventsSeen(now: hour.addingTimeInterval(3600), batch: 2), 5, "three batches: 2, 2, 1")
        await assertEqual(try await h.store.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM eventSeen") }, 0)
        await assertEqual(try await h.store.eventCounts(task: task)["install_ok"], 5, "the counts stay")
    }

    func testAPackageWhoseClientRangeCannotBeReadOffersNothing() async throws {
        // Read leniently, a maximum that does not parse was dropped: clients above it were let in.
        let (h, _, _) = try await grayInHangzhou()
        defer { h.cleanUp() }
        try await h.store.db.write { db in try db.execute(sql: "UPDATE package SET androidMax = '10.0-rc' WHERE version = '1.0.0.1'") }
        let after = try await Harness.make(dir: h.dir)
        try await after.test { client in
            await assertEqual(try await Client(client: client).versions(user: "u-9"), [], "the official release's range cannot be read")
            await assertEqual(try await Client(client: client).versions(user: "u-1", city: "Hangzhou"), ["1.0.0.2"], "the other task goes on")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), String(metrics.text.prefix(0)))
        }
    }

    func testRowsThatDoNotDecodeOfferNothingAndNeitherStopNorFreezeTheRest() async throws {
        let (h, _, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        // A package policy and a task end time this binary cannot decode: the server still starts.
        try await h.store.db.write { db in
            try db.execute(sql: "UPDATE package SET downloadPolicy = 'sometimes' WHERE version = '1.0.0.2'")
        }
        let after = try await Harness.make(dir: h.dir)
        try await after.test { client in
            let c = Client(client: client)
            await assertEqual(try await c.versions(user: "u-1", city: "Hangzhou"), ["1.0.0.1"], "the grayscale offers nothing, the official goes on")
            await assertEqual(try await c.versions(user: "u-9"), ["1.0.0.1"])
        }
        try await after.store.db.write { db in
            try db.execute(sql: "UPDATE package SET downloadPolicy = 'wifi' WHERE version = '1.0.0.2'")
            try db.execute(sql: "UPDATE task SET endTime = 'soon' WHERE id = ?", arguments: [task])
        }
        let again = try await Harness.make(dir: h.dir)
        try await again.test { client in
            let c = Client(client: client)
            await assertEqual(try await c.versions(user: "u-1", city: "Hangzhou"), ["1.0.0.1"], "a task row that does not decode offers nothing")
            // While running: the bad row stays, and a pause of the official release still takes effect at once.
            let official = try await again.store.allTasksStrictly().tasks.first { $0.type == "official" }
            _ = try await again.store.operate(task: try XCTUnwrap(official?.id), .pause, by: .alice)
            await assertEqual(try await c.versions(user: "u-9"), [], "the snapshot is not frozen by the bad row")
            // Housekeeping passes over it too (it used to fail, and say so, every ten seconds).
            await assertEqual(try await again.services.actions.finishEndedWindows(now: Date().addingTimeInterval(86400)), 0)
        }
    }

    func testAnOfficialRowWithGrayscaleSettingsOrAnUnknownApprovalStateOffersNothing() async throws {
        for (what, sql) in [("an official task with a city rule", #"UPDATE task SET type = 'official', mode = '', whitelistIds = '[]', rules = '[{"field":"city","op":"in","values":["Beijing"]}]' WHERE id = ?"#),
                            ("an unknown approval state", "UPDATE task SET approval = 'maybe', approvalFor = 'release2' WHERE id = ?")] {
            let (h, _, task) = try await grayInHangzhou()
            let after = try await restarted(h, sql, task)
            try await after.test { client in
                await assertEqual(try await Client(client: client).versions(user: "u-1", city: "Hangzhou"), ["1.0.0.1"], what)
                await assertEqual(try await Client(client: client).versions(user: "u-7", city: "Beijing"), ["1.0.0.1"], what)
            }
            h.cleanUp()
        }
    }

    func testValuesOfAnotherTypeAreNeverReadAsOff() async throws {
        // SQLite keeps 'yes' in an integer column; read loosely it is 0: not rolled back, not disabled, no approval.
        let (h, token, task) = try await grayInHangzhou()
        defer { h.cleanUp() }
        try await h.store.db.write { db in
            try db.execute(sql: "UPDATE task SET rolledBack = 'yes' WHERE id = ?", arguments: [task])
            try db.execute(sql: "UPDATE user SET disabled = 'yes' WHERE name = 'ci'")
        }
        let after = try await Harness.make(dir: h.dir)
        try await after.test { client in
            await assertEqual(try await Client(client: client).versions(user: "u-1", city: "Hangzhou"), ["1.0.0.1"], "a rolled-back flag that is not 0 or 1")
            await assertEqual(try await APITests.Caller(client: client, token: token).call(.get, "/api/v1/apps").status, .unauthorized,
                              "a disabled flag that is not 0 is disabled")
        }
        try await after.addPackage("1.0.0.3")
        try await after.store.db.write { db in try db.execute(sql: "UPDATE settings SET officialNeedsApproval = 'yes' WHERE id = 1") }
        var draft = TaskDraft()
        draft.type = "official"
        await assertThrows(try await after.services.actions.createTask(by: .alice, appId: "20171228", version: "1.0.0.3", draft: draft),
                           "an approval rule that cannot be read refuses the release rather than skipping the reviewer") {
            XCTAssertTrue("\($0)".contains("The stored settings cannot be read"), "\($0)")
        }
    }

    func testAnAppOrPatchRowThatCannotBeReadStopsOnlyItself() async throws {
        let (h, _, _) = try await grayInHangzhou()
        defer { h.cleanUp() }
        _ = try await h.store.createApp(id: AppID(trusted: "20180101"), name: "Other", by: .commandLine)
        try await h.addPackage("1.0.0.1", app: "20180101")
        var draft = TaskDraft()
        draft.type = "official"
        _ = try await h.services.actions.createTask(by: .commandLine, appId: "20180101", version: "1.0.0.1", draft: draft)
        try await h.store.db.write { db in
            try db.execute(sql: "UPDATE app SET type = 'future' WHERE id = '20180101'")
            try db.execute(sql: """
                INSERT INTO patch (packageId, basePackageId, appId, version, base, blob, size, changedFiles, removedFiles, createdAt)
                SELECT a.id, b.id, '20171228', '1.0.0.2', '1.0.0.1', 'x', 1, 1, 0, 'garbage' FROM package a, package b
                WHERE a.appId = '20171228' AND a.version = '1.0.0.2' AND b.appId = '20171228' AND b.version = '1.0.0.1'
                """)
        }
        let after = try await Harness.make(dir: h.dir)
        try await after.test { client in
            let r = try await Client(client: client).update(#"{"platform":"android","clientVersion":"10.2.3","deviceId":"d","userId":"u-1","city":"Hangzhou","apps":[{"id":"20171228","version":"1.0.0.1"},{"id":"20180101","version":"0"}]}"#)
            let data = (r.json["data"] as? [[String: Any]]) ?? []
            XCTAssertEqual(data.map { "\($0["app_id"]!) \($0["version"]!)" }, ["20171228 1.0.0.2"], "the other app offers nothing, this one goes on")
            XCTAssertNil(data.first?["patch"], "a patch row that cannot be read is not offered")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), String(metrics.text.prefix(0)))
        }
    }

    func testSettingsThatCannotBeReadOfferNothing() async throws {
        let (h, _, _) = try await grayInHangzhou()
        defer { h.cleanUp() }
        // A settings row this binary cannot read (here: no longer where it looks for it).
        try await h.store.db.write { db in try db.execute(sql: "ALTER TABLE settings RENAME TO settingsOfANewerVersion") }
        try await h.services.delivery.rebuild()
        try await h.test { client in
            await assertEqual(try await ReleaseTests.Client(client: client).versions(user: "u-9"), [], "not even the official release")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertTrue(metrics.text.contains("courier_snapshot_unreadable 1"), String(metrics.text.prefix(0)))
        }
    }

    func testStrictReadingOfAGoodTaskStillWorks() throws {
        let p = try packageRecord("1.0.0.1", blob: "x")
        var t = TaskRecord(package: p, kind: .gray(.percentage(10), rules: [try TargetingRule(field: .city, op: .in, values: ["a"])]),
                           description: "", createdBy: "alice")
        XCTAssertNil(t.unreadable)
        XCTAssertEqual(t.releaseTask.unreadable, nil)
        t.rules = #"[{"field":"carrier","op":"in","values":["x"]}]"#
        XCTAssertEqual(t.unreadable, "a rule “carrier in” that this version of Courier does not know")
        XCTAssertFalse(t.releaseTask.isOfficial)
    }

    /// Changes in a burst (a hundred patches recorded one after another, a batch release) are
    /// coalesced: a rebuild reads everything committed before it starts, so those queued behind
    /// it share the next one, and each change is still in the snapshot when its caller goes on.
    func testABurstOfChangesIsCoalescedIntoFewRebuilds() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        func rebuilds() async throws -> Int {
            let text = Locked("")
            try await h.test { client in text.set(try await client.execute(uri: "/metrics", method: .get).text) }
            let line = text.get().split(separator: "\n").first { $0.hasPrefix("courier_snapshot_rebuilds_total{outcome=\"ok\"}") } ?? ""
            return Int(line.split(separator: " ").last ?? "") ?? -1
        }
        let before = try await rebuilds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<40 {
                group.addTask {
                    let list = try await h.store.createWhitelist(name: "burst-\(n)", kind: .user, values: ["u\(n)"], by: .commandLine)
                    // On return the list is in the snapshot, whoever's rebuild read it.
                    XCTAssertNotNil(h.services.delivery.snapshot.targeting.whitelists[list.id ?? -1], "list \(n)")
                }
            }
            try await group.waitForAll()
        }
        let ran = try await rebuilds() - before
        XCTAssertGreaterThan(ran, 0)
        XCTAssertLessThan(ran, 20, "forty changes at once took \(ran) rebuilds")
    }

}

/// A value set inside a test client's closure and read after it.
final class Locked<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T { lock.withLock { value } }
}
