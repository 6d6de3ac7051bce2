import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Reviewer approval (SPEC §7): what waits, who may decide, what clients see meanwhile.
final class ApprovalTests: XCTestCase {
    /// The released harness plus a reviewer and an administrator, each with an all-scopes token.
    func harness() async throws -> (Harness, dev: String, reviewer: String, admin: String) {
        let (h, dev) = try await releasedHarness()
        try await h.addUser("rita", role: .reviewer)
        try await h.addUser("ada", role: .admin)
        let reviewer = try await h.services.actions.createToken(by: .commandLine, userName: "rita", scopes: "read,upload,release")
        let admin = try await h.services.actions.createToken(by: .commandLine, userName: "ada", scopes: "read,upload,release,admin")
        return (h, dev, reviewer, admin)
    }

    func testAnOfficialReleaseWaitsForAReviewerWhoDidNotAskForIt() async throws {
        let (h, devToken, reviewerToken, adminToken) = try await harness()
        defer { h.cleanUp() }
        try await h.test { client in
            let dev = APITests.Caller(client: client, token: devToken)
            let rita = APITests.Caller(client: client, token: reviewerToken)
            let ada = APITests.Caller(client: client, token: adminToken)
            let c = ReleaseTests.Client(client: client)
            await assertEqual(try await dev.call(.put, "/api/v1/settings", json: #"{"officialNeedsApproval":true}"#).status, .forbidden,
                              "only an administrator changes the rules")
            let rules = try await ada.call(.put, "/api/v1/settings", json: #"{"officialNeedsApproval":true}"#)
            XCTAssertEqual(rules.json["officialNeedsApproval"] as? Bool, true, rules.text)
            XCTAssertEqual(rules.json["grayNeedsApproval"] as? Bool, false)

            let created = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#)
            XCTAssertEqual(created.status, .created, created.text)
            XCTAssertEqual(created.json["status"] as? String, "awaitingApproval")
            let approval = try XCTUnwrap(created.json["approval"] as? [String: Any])
            XCTAssertEqual(approval["state"] as? String, "awaiting")
            XCTAssertEqual(approval["requestedBy"] as? String, "ci")
            let id = try XCTUnwrap(created.json["id"] as? Int)
            await assertEqual(try await c.versions(), [], "clients are not offered a release awaiting approval")
            await assertEqual(try await h.store.package("20171228", "1.0.0.1")?.status, .awaitingApproval)
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(id)/pause").status, .conflict, "nothing to pause yet")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(id)/approve", json: "{}").status, .forbidden,
                              "a developer does not approve")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(id)/rollback").status, .conflict)

            let noReason = try await rita.call(.post, "/api/v1/tasks/\(id)/reject", json: #"{"comment":"  "}"#)
            XCTAssertEqual(noReason.status, .unprocessableContent, "a rejection says why")
            XCTAssertEqual((noReason.json["error"] as? [String: Any])?["field"] as? String, "comment")
            let approved = try await rita.call(.post, "/api/v1/tasks/\(id)/approve",
                                               json: #"{"comment":"Checked on **staging** <script>alert(1)</script>"}"#)
            XCTAssertEqual(approved.status, .ok, approved.text)
            XCTAssertEqual(approved.json["status"] as? String, "releasing")
            let decided = try XCTUnwrap(approved.json["approval"] as? [String: Any])
            XCTAssertEqual(decided["state"] as? String, "approved")
            XCTAssertEqual(decided["decidedBy"] as? String, "rita")
            let html = decided["commentHtml"] as? String ?? ""
            XCTAssertTrue(html.contains("<strong>staging</strong>") && !html.contains("<script"), html)
            await assertEqual(try await c.versions(), ["1.0.0.1"], "approved: offered from the next request")
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(id)/approve", json: "{}").status, .conflict, "decided once")

            // An administrator's own release: another person must decide.
            let own = try await ada.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"official"}"#)
            let ownID = try XCTUnwrap(own.json["id"] as? Int)
            await assertEqual(try await ada.call(.post, "/api/v1/tasks/\(ownID)/approve", json: "{}").status, .forbidden,
                              "the creator cannot approve their own task")
            await assertEqual(try await c.versions(), ["1.0.0.1"])
            let rejected = try await rita.call(.post, "/api/v1/tasks/\(ownID)/reject", json: #"{"comment":"Breaks *login*"}"#)
            XCTAssertEqual(rejected.json["status"] as? String, "rejected", rejected.text)
            await assertEqual(try await c.versions(), ["1.0.0.1"], "a rejected task never releases")
            await assertEqual(try await ada.call(.post, "/api/v1/tasks/\(ownID)/resume").status, .conflict)
            await assertEqual(try await ada.call(.post, "/api/v1/tasks/\(ownID)/promote").status, .conflict)
            await assertEqual(try await h.store.package("20171228", "1.0.0.2")?.status, .rejected)
            // The package can be released again, through a new request.
            let retry = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"official"}"#)
            XCTAssertEqual(retry.json["status"] as? String, "awaitingApproval", retry.text)
            let retryID = try XCTUnwrap(retry.json["id"] as? Int)
            // Withdrawn by finishing it: it never releases and cannot be approved afterwards.
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(retryID)/finish").json["status"] as? String, "finished")
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(retryID)/approve", json: "{}").status, .conflict)
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(retryID)/rollback").status, .conflict,
                              "what never released cannot be rolled back")
            await assertEqual(try await h.store.package("20171228", "1.0.0.2")?.status, .toBeReleased,
                              "nothing of it ever released, and nothing waits")
            // A released package asked for again and refused keeps showing what clients get.
            let again = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#)
            XCTAssertEqual(again.status, .conflict, "its approved task is still releasing")
            _ = try await dev.call(.post, "/api/v1/tasks/\(id)/finish")
            let second = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#)
            let secondID = try XCTUnwrap(second.json["id"] as? Int, second.text)
            _ = try await rita.call(.post, "/api/v1/tasks/\(secondID)/reject", json: #"{"comment":"no"}"#)
            await assertEqual(try await h.store.package("20171228", "1.0.0.1")?.status, .finished, "as its released task says")
            await assertEqual(try await c.versions(), ["1.0.0.1"])

            let audit = try await h.store.auditEntries(subject: String(ownID), actionPrefix: "task.")
            XCTAssertEqual(audit.map(\.action), ["task.reject"])
            XCTAssertTrue(audit.last?.detail.contains("Breaks *login*") == true)
            await assertEqual(try await h.store.verifyAudit().firstBadRow, nil)
            let log = try await rita.call(.get, "/api/v1/audit?kind=task&user=rita")
            XCTAssertEqual(log.json["chainValid"] as? Bool, true, log.text)
            let logged = (log.json["entries"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            XCTAssertEqual(logged, ["task.reject", "task.reject", "task.approve"], "newest first, filtered by kind and user")
        }
    }

    func testAPromotionWaitsWhileTheGrayscaleReleaseGoesOn() async throws {
        let (h, devToken, reviewerToken, _) = try await harness()
        defer { h.cleanUp() }
        _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
        try await h.test { client in
            let dev = APITests.Caller(client: client, token: devToken)
            let rita = APITests.Caller(client: client, token: reviewerToken)
            let c = ReleaseTests.Client(client: client)
            let wl = try await dev.call(.post, "/api/v1/whitelists", json: #"{"name":"beta","kind":"user","values":["u-1"]}"#)
            let wlID = try XCTUnwrap(wl.json["id"] as? Int)
            let gray = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                                          json: #"{"type":"gray","mode":"whitelist","whitelistIds":[\#(wlID)]}"#)
            XCTAssertEqual(gray.json["status"] as? String, "releasing", "grayscale releases do not wait: \(gray.text)")
            let id = try XCTUnwrap(gray.json["id"] as? Int)
            await assertEqual(try await c.versions(user: "u-1"), ["1.0.0.2"])

            let promoted = try await dev.call(.post, "/api/v1/tasks/\(id)/promote")
            XCTAssertEqual(promoted.json["type"] as? String, "gray", promoted.text)
            XCTAssertEqual((promoted.json["approval"] as? [String: Any])?["request"] as? String, "promotion")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(id)/promote").status, .conflict, "one request at a time")
            await assertEqual(try await c.versions(user: "u-1"), ["1.0.0.2"], "the grayscale release goes on")
            await assertEqual(try await c.versions(user: "u-2"), [], "but is not official yet")

            let refused = try await rita.call(.post, "/api/v1/tasks/\(id)/reject", json: #"{"comment":"not yet"}"#)
            XCTAssertEqual(refused.json["status"] as? String, "releasing", refused.text)
            XCTAssertEqual(refused.json["type"] as? String, "gray")
            await assertEqual(try await c.versions(user: "u-1"), ["1.0.0.2"], "a rejected promotion leaves the grayscale release")
            await assertEqual(try await c.versions(user: "u-2"), [])

            // Paused after asking (a bug was found): the approval makes it official but leaves it paused.
            _ = try await dev.call(.post, "/api/v1/tasks/\(id)/promote")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(id)/pause").json["status"] as? String, "paused")
            let approved = try await rita.call(.post, "/api/v1/tasks/\(id)/approve", json: "")
            XCTAssertEqual(approved.json["type"] as? String, "official", approved.text)
            XCTAssertEqual(approved.json["status"] as? String, "paused", "approving does not resume a paused task")
            await assertEqual(try await c.versions(user: "u-2"), [])
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(id)/resume").json["status"] as? String, "releasing")
            await assertEqual(try await c.versions(user: "u-2"), ["1.0.0.2"], "approved and resumed: every client")
        }
    }

    /// 100 % of devices is everyone: with official releases needing a reviewer, it does too.
    func testAGrayscaleReleaseToEveryDeviceWaitsLikeAnOfficialOne() async throws {
        let (h, devToken, reviewerToken, _) = try await harness()
        defer { h.cleanUp() }
        _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
        try await h.test { client in
            let dev = APITests.Caller(client: client, token: devToken)
            let c = ReleaseTests.Client(client: client)
            let all = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"gray","mode":"percentage","percentage":100}"#)
            XCTAssertEqual(all.json["status"] as? String, "awaitingApproval", all.text)
            await assertEqual(try await c.versions(user: "u-2"), [], "nobody gets it before a reviewer approves")
            let allID = try XCTUnwrap(all.json["id"] as? Int)
            await assertEqual(try await APITests.Caller(client: client, token: reviewerToken).call(.post, "/api/v1/tasks/\(allID)/approve").status, .ok)

            let some = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"gray","mode":"percentage","percentage":20}"#)
            XCTAssertEqual(some.json["status"] as? String, "releasing", "a part of the devices does not wait: \(some.text)")
            let id = try XCTUnwrap(some.json["id"] as? Int)
            let raised = try await dev.call(.patch, "/api/v1/tasks/\(id)", json: #"{"percentage":100}"#)
            XCTAssertEqual(raised.status, .conflict, "raising it to everyone would pass the reviewer by")
            XCTAssertTrue(raised.text.contains("promote the task to official instead"), raised.text)
            await assertEqual(try await dev.call(.patch, "/api/v1/tasks/\(id)", json: #"{"percentage":99.99}"#).status, .ok)
        }
    }

    func testGrayscaleReleasesWaitWhenTheSecondSettingAsks() async throws {
        let (h, devToken, reviewerToken, _) = try await harness()
        defer { h.cleanUp() }
        _ = try await h.store.setApprovalRules(official: false, gray: true, by: .commandLine)
        try await h.test { client in
            let dev = APITests.Caller(client: client, token: devToken)
            let c = ReleaseTests.Client(client: client)
            let official = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#)
            XCTAssertEqual(official.json["status"] as? String, "releasing")
            let gray = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: #"{"type":"gray","mode":"percentage","percentage":100}"#)
            XCTAssertEqual(gray.json["status"] as? String, "awaitingApproval", gray.text)
            let id = try XCTUnwrap(gray.json["id"] as? Int)
            await assertEqual(try await c.versions(), ["1.0.0.1"])
            await assertEqual(try await dev.call(.patch, "/api/v1/tasks/\(id)", json: #"{"percentage":50}"#).status, .conflict)
            // A reviewer token without the release scope cannot decide.
            let readOnly = try await h.services.actions.createToken(by: .commandLine, userName: "rita", scopes: "read")
            await assertEqual(try await APITests.Caller(client: client, token: readOnly).call(.post, "/api/v1/tasks/\(id)/approve").status,
                              .forbidden)
            await assertEqual(try await APITests.Caller(client: client, token: reviewerToken).call(.post, "/api/v1/tasks/\(id)/approve").status, .ok)
            await assertEqual(try await c.versions(), ["1.0.0.2"])
        }
    }

    func testTheConsoleShowsWhoAskedWhoDecidedAndWhy() async throws {
        let (h, _, _, _) = try await harness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        try await h.test { client in
            let ada = try await Browser.signIn(client, "ada")
            let saved = try await ada.post("/settings/approval", [("officialNeedsApproval", "true")])
            XCTAssertEqual(saved.status, .seeOther)
            let settings = try await ada.get("/settings")
            XCTAssertTrue(settings.text.contains(#"id="officialNeedsApproval" checked"#), "the setting shows as saved")
            XCTAssertFalse(settings.text.contains(#"id="grayNeedsApproval" checked"#))

            let dev = try await Browser.signIn(client, "dev")
            let created = try await dev.post("/apps/20171228/packages/1.0.0.1/tasks", [("type", "official"), ("description", "Ship it")])
            XCTAssertEqual(created.status, .seeOther, created.text)
            let location = try XCTUnwrap(created.headers[.location])
            let page = try await dev.get(location)
            XCTAssertTrue(page.text.contains("Awaiting approval"), "status shown")
            XCTAssertTrue(page.text.contains("dev asked for approval of this official release"))
            XCTAssertFalse(page.text.contains(#"id="decide-form""#), "a developer gets no approve form")
            XCTAssertTrue(page.text.contains(#"id="op-finish""#) && page.text.contains("Withdraw"))
            XCTAssertFalse(page.text.contains(#"id="op-pause""#))
            let id = String(location.split(separator: "?").first?.split(separator: "/").last ?? "")
            await assertEqual(try await dev.post("/tasks/\(id)/approve", []).status, .forbidden)

            let rita = try await Browser.signIn(client, "rita")
            let list = try await rita.get("/approvals")
            XCTAssertTrue(list.text.contains(#"id="approval-\#(id)""#) && list.text.contains("Review"), list.text)
            let review = try await rita.get(location)
            XCTAssertTrue(review.text.contains(#"id="decide-form""#))
            let empty = try await rita.post("/tasks/\(id)/reject", [("comment", "")])
            XCTAssertEqual(empty.status, .unprocessableContent)
            XCTAssertTrue(empty.text.contains(#"id="error-comment""#), "the error sits next to the comment")
            let done = try await rita.post("/tasks/\(id)/approve", [("comment", "Looks *good* <img src=x onerror=alert(1)>")])
            XCTAssertEqual(done.status, .seeOther, done.text)
            let after = try await rita.get(location)
            XCTAssertTrue(after.text.contains("Approved by rita on"), after.text)
            XCTAssertTrue(after.text.contains("<em>good</em>") && !after.text.contains("<img"), "the comment is Markdown, rendered safely")
            XCTAssertTrue(after.text.contains("Official releasing"))
            await assertTrue(try await rita.get("/approvals").text.contains(#"id="no-approvals""#))
            XCTAssertTrue(after.text.contains("approve"), "the history lists the approval")
        }
    }

    /// Issue 15, 3.2: an approval is of what the reviewer saw. Raising the percentage or adding
    /// values to a list of an approved grayscale task sends it back for approval (clients are not
    /// offered the wider release meanwhile); lowering needs nothing.
    func testWideningAnApprovedGrayscaleReleaseWaitsForAReviewerAgain() async throws {
        let (h, devToken, reviewerToken, adminToken) = try await harness()
        defer { h.cleanUp() }
        try await h.test { client in
            let dev = APITests.Caller(client: client, token: devToken)
            let rita = APITests.Caller(client: client, token: reviewerToken)
            let ada = APITests.Caller(client: client, token: adminToken)
            let c = ReleaseTests.Client(client: client)
            await assertEqual(try await ada.call(.put, "/api/v1/settings", json: #"{"officialNeedsApproval":true,"grayNeedsApproval":true}"#).status, .ok)
            // Grayscale at 0.01 %, approved.
            let pct = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"gray","mode":"percentage","percentage":0.01}"#)
            let pctID = try XCTUnwrap(pct.json["id"] as? Int, pct.text)
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(pctID)/approve", json: "{}").json["status"] as? String, "releasing")
            func admitted() async throws -> Int {
                var n = 0
                for i in 0..<200 where try await c.versions(device: "d-\(i)") == ["1.0.0.1"] { n += 1 }
                return n
            }
            await assertEqual(try await admitted(), 0, "0.01 % of 200 devices")
            let raised = try await dev.call(.patch, "/api/v1/tasks/\(pctID)", json: #"{"percentage":99.99}"#)
            XCTAssertEqual(raised.json["status"] as? String, "awaitingApproval", raised.text)
            XCTAssertEqual((raised.json["approval"] as? [String: Any])?["request"] as? String, "widening")
            await assertEqual(try await admitted(), 0, "the wider share waits for the reviewer")
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(pctID)/approve", json: "{}").json["status"] as? String, "releasing")
            await assertTrue(try await admitted() > 190, "approved again: 99.99 %")
            let lowered = try await dev.call(.patch, "/api/v1/tasks/\(pctID)", json: #"{"percentage":50}"#)
            XCTAssertEqual(lowered.json["status"] as? String, "releasing", "narrowing needs no approval")
            // Nothing else of a task changes after creation: rules cannot be dropped, a time
            // window's count cannot be raised, a list cannot be swapped (refused, not ignored).
            for body in [#"{"percentage":50,"rules":[]}"#, #"{"userCount":1000000}"#, #"{"whitelistIds":[]}"#, #"{"type":"official"}"#] {
                let r = try await dev.call(.patch, "/api/v1/tasks/\(pctID)", json: body)
                XCTAssertEqual(r.status, .unprocessableContent, body)
                XCTAssertTrue(r.text.contains("Only a grayscale task's percentage can be changed"), r.text)
            }
            await assertEqual(try await dev.call(.get, "/api/v1/tasks/\(pctID)").json["percentage"] as? Double, 50)
            // While a promotion waits, the share cannot grow under the reviewer's eyes.
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(pctID)/promote").status, .ok)
            await assertEqual(try await dev.call(.patch, "/api/v1/tasks/\(pctID)", json: #"{"percentage":60}"#).status, .conflict)
            // A rejected promotion is no licence either.
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(pctID)/reject", json: #"{"comment":"not yet"}"#).status, .ok)
            let afterReject = try await dev.call(.patch, "/api/v1/tasks/\(pctID)", json: #"{"percentage":60}"#)
            XCTAssertEqual(afterReject.json["status"] as? String, "awaitingApproval", afterReject.text)
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(pctID)/approve", json: "{}").json["status"] as? String, "releasing")
            // A paused task widened stays paused: approval does not resume it, and it cannot be resumed before.
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(pctID)/pause").status, .ok)
            let pausedRaise = try await dev.call(.patch, "/api/v1/tasks/\(pctID)", json: #"{"percentage":70}"#)
            XCTAssertEqual(pausedRaise.json["status"] as? String, "paused", pausedRaise.text)
            XCTAssertEqual((pausedRaise.json["approval"] as? [String: Any])?["state"] as? String, "awaiting")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(pctID)/resume").status, .conflict)
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(pctID)/approve", json: "{}").json["status"] as? String, "paused")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(pctID)/resume").json["status"] as? String, "releasing")

            // A task on a list waits for its first approval: the list cannot grow under the reviewer's eyes.
            let early = try await dev.call(.post, "/api/v1/whitelists", json: #"{"name":"early","kind":"regex","values":["qa-tester-9"]}"#)
            let earlyID = try XCTUnwrap(early.json["id"] as? Int)
            let waiting = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                                             json: #"{"type":"gray","mode":"whitelist","whitelistIds":[\#(earlyID)]}"#)
            let waitingID = try XCTUnwrap(waiting.json["id"] as? Int, waiting.text)
            let grown = try await dev.call(.post, "/api/v1/whitelists/\(earlyID)/values", json: #"{"values":[".*"]}"#)
            XCTAssertEqual(grown.status, .conflict, grown.text)
            XCTAssertTrue(grown.text.contains("Task \(waitingID) uses this whitelist and waits for a reviewer"), grown.text)
            let review = try await Browser.signIn(client, "rita").get("/tasks/\(waitingID)").text
            XCTAssertTrue(review.contains("users on whitelist early (1 value)"), "the reviewer reads how many values the list holds")
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(waitingID)/finish").status, .ok)

            // Grayscale to a regex list, approved; then the list gains `.*`.
            let wl = try await dev.call(.post, "/api/v1/whitelists", json: #"{"name":"qa","kind":"regex","values":["qa-tester-1"]}"#)
            let wlID = try XCTUnwrap(wl.json["id"] as? Int)
            let listed = try await dev.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks",
                                            json: #"{"type":"gray","mode":"whitelist","whitelistIds":[\#(wlID)]}"#)
            let listedID = try XCTUnwrap(listed.json["id"] as? Int, listed.text)
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(listedID)/approve", json: "{}").json["status"] as? String, "releasing")
            await assertEqual(try await c.versions(user: "qa-tester-1", device: "d-x", installed: "1.0.0.1"), ["1.0.0.2"])
            await assertEqual(try await c.versions(user: "someone", device: "d-x", installed: "1.0.0.1"), [])
            let added = try await dev.call(.post, "/api/v1/whitelists/\(wlID)/values", json: #"{"values":[".*"]}"#)
            XCTAssertEqual(added.status, .ok, added.text)
            XCTAssertEqual(added.json["awaitingApproval"] as? [Int], [listedID], added.text)
            await assertEqual(try await c.versions(user: "someone", device: "d-x", installed: "1.0.0.1"), [], "the wider list waits for the reviewer")
            await assertEqual(try await dev.call(.get, "/api/v1/tasks/\(listedID)").json["status"] as? String, "awaitingApproval")
            await assertEqual(try await rita.call(.post, "/api/v1/tasks/\(listedID)/approve", json: "{}").json["status"] as? String, "releasing")
            await assertEqual(try await c.versions(user: "someone", device: "d-x", installed: "1.0.0.1"), ["1.0.0.2"])
            // Removing values narrows: no reviewer needed, the task goes on releasing to fewer.
            let b = try await Browser.signIn(client, "ci")
            await assertEqual(try await b.post("/whitelists/\(wlID)/remove", [("remove", ".*")]).status, .seeOther)
            await assertEqual(try await dev.call(.get, "/api/v1/tasks/\(listedID)").json["status"] as? String, "releasing")
            await assertEqual(try await c.versions(user: "someone", device: "d-y", installed: "1.0.0.1"), [])
            await assertEqual(try await c.versions(user: "qa-tester-1", device: "d-z", installed: "1.0.0.1"), ["1.0.0.2"])
            // While its promotion waits the task goes on releasing: its list cannot grow meanwhile.
            await assertEqual(try await dev.call(.post, "/api/v1/tasks/\(listedID)/promote").status, .ok)
            let duringPromotion = try await dev.call(.post, "/api/v1/whitelists/\(wlID)/values", json: #"{"values":["x-.*"]}"#)
            XCTAssertEqual(duringPromotion.status, .conflict, duringPromotion.text)
        }
    }
}
