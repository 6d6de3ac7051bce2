import CourierCore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierSQLite
import CourierStore
@testable import CourierWeb

/// Issue 16: every page that names a task links it, the apps list says what each app releases,
/// a reviewer sees what a request would change, and the audit log is findable by app.
/// Every `href` of a page, unescaped as a browser reads them.
func links(_ html: String) -> [String] {
    html.components(separatedBy: #"href=""#).dropFirst().compactMap { $0.components(separatedBy: "\"").first }
        .map { $0.replacingOccurrences(of: "&amp;", with: "&") }
}

/// The HTML of the element with `id`, up to the first end of a row, paragraph or definition.
func element(_ html: String, id: String) -> String {
    guard let start = html.range(of: #"id="\#(id)""#) else { return "" }
    let rest = html[start.lowerBound...]
    let end = ["</tr>", "</p>", "</dd>"].compactMap { rest.range(of: $0)?.lowerBound }.min() ?? rest.endIndex
    return String(rest[..<end])
}

final class FindingReleasesTests: XCTestCase {
    func testAGrayscaleReleaseIsFoundFromTheAppsListAndOperatedFromItsPackage() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice", role: .developer)
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let apps = try await b.get("/apps").text
            XCTAssertTrue(element(apps, id: "app-20171228").contains("To be released"), apps)
            XCTAssertTrue(element(apps, id: "app-20171228").contains(#"href="/apps/20171228/packages/1.0.0.2""#), "the newest version links its package")

            let created = try await b.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "gray"), ("mode", "percentage"),
                                                                                   ("percentage", "10"), ("description", "Beta")])
            XCTAssertEqual(created.status, .seeOther, created.text)
            let notice = try await b.get(try XCTUnwrap(created.headers[.location])).text
            XCTAssertTrue(element(notice, id: "notice").contains("Task 1 created: a grayscale release of 1.0.0.2"), notice)
            XCTAssertTrue(notice.contains(#"<p class="notice" id="notice">"#), "a release offered now is a success")

            // The apps list: status linked to the task, what is live officially.
            let list = try await b.get("/apps").text
            let row = element(list, id: "app-20171228")
            XCTAssertTrue(row.contains("Grayscale releasing") && row.contains(#"href="/tasks/1""#), row)
            XCTAssertTrue(row.contains("<td>—</td>"), "nothing is official yet")

            // The app page: each package's current task, what runs.
            let app = try await b.get("/apps/20171228").text
            XCTAssertTrue(app.contains(#"<a href="/tasks/1" class="task-link">task 1</a>"#), app)
            XCTAssertTrue(element(app, id: "live-gray").contains("1.0.0.2: grayscale, 10 % of devices, grayscale releasing (task 1)"), app)
            XCTAssertTrue(element(app, id: "live-official").contains("none"))

            // The package page lists its tasks with their state, and each link opens.
            let package = try await b.get("/apps/20171228/packages/1.0.0.2").text
            let taskRow = element(package, id: "task-row-1")
            XCTAssertTrue(taskRow.contains("Grayscale · 10 % of devices") && taskRow.contains("Grayscale releasing"), package)
            for link in links(package) where link.hasPrefix("/tasks/") {
                await assertEqual(try await b.get(link).status, .ok, link)
            }
            XCTAssertTrue(links(package).contains("/tasks/1"))

            // From there: pause, promote, then roll back the first official release.
            await assertEqual(try await b.post("/tasks/1/pause", []).status, .seeOther)
            await assertTrue(try await b.get("/apps/20171228/packages/1.0.0.2").text.contains("Paused"))
            await assertEqual(try await b.post("/tasks/1/resume", []).status, .seeOther)
            let promoted = try await b.post("/tasks/1/promote", [])
            let afterPromotion = try await b.get(try XCTUnwrap(promoted.headers[.location])).text
            XCTAssertTrue(element(afterPromotion, id: "notice").contains("now an official release"), afterPromotion)
            let listed = try await b.get("/apps").text
            XCTAssertTrue(element(listed, id: "app-20171228").contains("<td>1.0.0.2</td>"), "live officially")
            let task = try await b.get("/tasks/1").text
            XCTAssertTrue(task.contains("No earlier official version exists: devices that have 1.0.0.2 keep it"),
                          "rolling back the first official release says what it does")
            await assertEqual(try await b.post("/tasks/1/rollback", []).status, .seeOther)
            let rolledBack = try await b.get("/apps").text
            XCTAssertTrue(element(rolledBack, id: "app-20171228").contains("<td>—</td>"), "nothing official after the rollback")
            let packagePage = try await b.get("/apps/20171228/packages/1.0.0.2").text
            XCTAssertTrue(element(packagePage, id: "task-row-1").contains("Rolled back"))
        }
    }

    func testARollbackNamesTheOfficialVersionClientsGoBackTo() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice", role: .developer)
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            for v in ["1.0.0.1", "1.0.0.2"] {
                await assertEqual(try await b.post("/apps/20171228/packages/\(v)/tasks", [("type", "official"), ("description", "x")]).status, .seeOther)
            }
            let task = try await b.get("/tasks/2").text
            XCTAssertTrue(task.contains("Clients that have it are told to go back to 1.0.0.1, the previous official version."), task)
        }
    }

    func testAReviewerSeesWhatARequestWouldChangeAndARejectionIsFoundFromThePackage() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        try await h.addUser("rita", role: .reviewer)
        _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
        try await h.addPackage("1.0.0.4")
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            // A grayscale release of 1.0.0.1, its promotion asked for; then an official release of 1.0.0.4.
            await assertEqual(try await dev.post("/apps/20171228/packages/1.0.0.1/tasks", [("type", "gray"), ("mode", "percentage"),
                                                                                         ("percentage", "5"), ("description", "x")]).status, .seeOther)
            let page = try await dev.get("/tasks/1").text
            XCTAssertTrue(page.contains("Promote to official (will wait for a reviewer)"), "the button says it will wait")
            XCTAssertTrue(page.contains("It will wait for a reviewer"))
            let promoted = try await dev.post("/tasks/1/promote", [])
            let waiting = try await dev.get(try XCTUnwrap(promoted.headers[.location])).text
            XCTAssertTrue(waiting.contains(#"<p class="notice waiting" id="notice">"#), "waiting is not styled as a success")
            XCTAssertTrue(element(waiting, id: "notice").contains("awaiting approval"))
            let official = try await dev.post("/apps/20171228/packages/1.0.0.4/tasks", [("type", "official"), ("description", "x")])
            let created = try await dev.get(try XCTUnwrap(official.headers[.location])).text
            XCTAssertTrue(element(created, id: "notice").contains("Task 2 created — awaiting approval"), created)
            XCTAssertFalse(created.contains(#"id="nav-approvals-count""#), "a developer gets no badge")

            // The reviewer: the badge, the rows with settings and what is live, the warning.
            let rita = try await Browser.signIn(client, "rita")
            let approvals = try await rita.get("/approvals").text
            XCTAssertTrue(element(approvals, id: "nav-approvals-count").contains(">2<"), approvals)
            let facts = approvals.components(separatedBy: #"id="approval-1-facts""#).last!.components(separatedBy: "</tr>").first!
            XCTAssertTrue(facts.contains("10.0 – any later version") && facts.contains("/www/index.html"), facts)
            XCTAssertTrue(facts.contains("Approving makes 1.0.0.1 an official release: every client in the package&#39;s range gets it, not only the 5 % of devices it reaches now.")
                          || facts.contains("Approving makes 1.0.0.1 an official release: every client in the package's range gets it, not only the 5 % of devices it reaches now."), facts)
            XCTAssertTrue(facts.contains("Open main page") && facts.contains("/fallback/20171228/1.0.0.1/www/index.html"))
            XCTAssertTrue(facts.contains("1.0.0.1: grayscale · 5 % of devices") == false, "a request is not listed as its own competitor")
            XCTAssertTrue(approvals.contains("Task 2 (official release of 1.0.0.4) also waits for a reviewer."), approvals)
            XCTAssertTrue(approvals.contains("If both are approved, clients in range get 1.0.0.4, the higher version."))

            let review = try await rita.get("/tasks/1").text
            XCTAssertTrue(element(review, id: "review-warnings").contains("Task 2 (official release of 1.0.0.4) also waits"), review)
            XCTAssertTrue(review.contains(#"id="open-main-page""#) && review.contains("Preload (install when downloaded)"))
            XCTAssertTrue(review.contains(#"id="decide-form""#))
            // Approving 1.0.0.4 first: the promotion of 1.0.0.1 is then below what is live.
            await assertEqual(try await rita.post("/tasks/2/approve", [("comment", "")]).status, .seeOther)
            let below = try await rita.get("/tasks/1").text
            XCTAssertTrue(below.contains("1.0.0.1 is below 1.0.0.4, the official version clients get now"), below)
            XCTAssertTrue(element(below, id: "review-live-official").contains("1.0.0.4 (task 2)"))
            await assertEqual(try await rita.post("/tasks/1/reject", [("comment", "Not *this* one")]).status, .seeOther)

            // The developer finds the rejection, its reviewer and comment, from the app and package pages.
            let app = try await dev.get("/apps/20171228").text
            XCTAssertTrue(app.contains("Promotion to official rejected by rita"), app)
            let package = try await dev.get("/apps/20171228/packages/1.0.0.1").text
            XCTAssertTrue(element(package, id: "task-row-1").contains("Promotion to official rejected by rita"), package)
            XCTAssertTrue(package.contains("Not <em>this</em> one"))
            let decided = try await rita.get("/approvals").text
            XCTAssertTrue(element(decided, id: "decided-1").contains(#"href="/tasks/1""#), decided)
            XCTAssertFalse(decided.contains(#"id="nav-approvals-count""#), "nothing waits: no badge")
        }
    }

    func testARejectedReleaseSaysSoOnItsPackage() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        try await h.addUser("rita", role: .reviewer)
        _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            await assertEqual(try await dev.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "official"), ("description", "x")]).status, .seeOther)
            let awaiting = try await dev.get("/apps/20171228/packages/1.0.0.2").text
            XCTAssertTrue(element(awaiting, id: "approval-banner").contains("Release awaiting approval (asked by dev"), awaiting)
            let rita = try await Browser.signIn(client, "rita")
            await assertEqual(try await rita.post("/tasks/1/reject", [("comment", "Broken on **iOS**")]).status, .seeOther)
            let package = try await dev.get("/apps/20171228/packages/1.0.0.2").text
            XCTAssertTrue(package.contains(#"id="approval-banner""#) && package.contains("Release rejected by rita"), package)
            XCTAssertTrue(package.contains(#"id="approval-banner-task""#) && package.contains("Broken on <strong>iOS</strong>"))
            let apps = try await dev.get("/apps").text
            XCTAssertTrue(element(apps, id: "app-20171228").contains("Release rejected") && element(apps, id: "app-20171228").contains("/tasks/1"))
        }
    }

    func testFormsAndResultsSayWhenAReleaseWillWaitForAReviewer() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            let plain = try await dev.get("/apps/20171228/packages/1.0.0.1/tasks/new").text
            XCTAssertFalse(plain.contains(#"id="approval-hint""#), "nothing waits while approval is off")
            XCTAssertTrue(plain.contains("Release 20171228 1.0.0.1 officially? Every client"))
            _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
            let form = try await dev.get("/apps/20171228/packages/1.0.0.1/tasks/new").text
            XCTAssertTrue(element(form, id: "approval-hint").contains("An official release (or a grayscale one to 100 %) will wait for a reviewer"), form)
            XCTAssertTrue(form.contains("Ask for an official release of 20171228 1.0.0.1? It will wait for a reviewer"))
            let batchForm = try await dev.get("/releases/batch").text
            XCTAssertTrue(batchForm.contains("Each will wait for a reviewer"), batchForm)
            let batch = try await dev.post("/releases/batch", [("apps", "20171228"), ("type", "official"), ("description", "x")])
            XCTAssertTrue(batch.text.contains("Task 1 created</a> — awaiting approval"), batch.text)
            XCTAssertTrue(element(batch.text, id: "batch-awaiting").contains("1 of them await approval"))
        }
    }

    func testTheSmallerThingsOfTheWalk() async throws {
        let dir = temporaryDirectory()
        let h = try await Harness.make(dir: dir)
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            let settings = try await b.get("/settings").text
            XCTAssertFalse(settings.contains("data-confirm=\"The virtual domain cannot be changed"), "the checkbox asks, not a dialog too")
            let badHost = try await b.post("/settings/global", [("globalHost", "https://x"), ("appKey", "53E5279071442_test")])
            XCTAssertTrue(element(badHost.text, id: "error-globalHost").contains("for example mcube.example.com"), badHost.text)
            let users = try await b.get("/users").text
            XCTAssertTrue(element(users, id: "role-summaries").contains("approves or rejects the releases others asked for")
                          || users.contains("approves or rejects the releases others asked for"), users)
            try await h.addPackage("1.0.0.1")
            let form = try await b.get("/apps/20171228/packages/1.0.0.1/tasks/new").text
            for id in ["whitelist-fields", "time-window-fields", "percentage-fields"] {
                XCTAssertTrue(form.contains(#"id="\#(id)""#), "each mode's fields are grouped for the page to show one: \(id)")
            }
            XCTAssertTrue(form.contains("end time, in UTC (not your local time)") && form.contains(#"id="endTime-local""#))
            XCTAssertTrue(form.contains(#"data-field="network""#) && form.contains(#"value="WIFI""#), "network values are offered")
            let app = try await b.post("/apps", [("id", "20180101"), ("name", "Other")])
            let appPage = try await b.get(try XCTUnwrap(app.headers[.location])).text
            XCTAssertTrue(element(appPage, id: "notice").contains("App 20180101 (Other) was created."), appPage)
        }
    }

    func testWhatTheConsoleSaysFollowsWhatClientsAreAnswered() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice", role: .developer)
        try await h.addPackage("1.0.0.3")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let c = ReleaseTests.Client(client: client)
            // A grayscale release of an older version while the newest waits: the list finds the running one.
            await assertEqual(try await b.post("/apps/20171228/packages/1.0.0.1/tasks", [("type", "gray"), ("mode", "percentage"),
                                                                                       ("percentage", "10"), ("description", "x")]).status, .seeOther)
            let list = try await b.get("/apps").text
            let row = element(list, id: "app-20171228")
            XCTAssertTrue(row.contains("Grayscale releasing") && row.contains("1.0.0.1 · ") && row.contains(#"href="/tasks/1""#), row)
            XCTAssertTrue(row.contains(#"href="/apps/20171228/packages/1.0.0.3""#), "the newest version is listed too")
            await assertEqual(try await b.post("/tasks/1/finish", []).status, .seeOther)

            // Official 1.0.0.1 then 1.0.0.2: rolling back 1.0.0.1 sends its clients up to 1.0.0.2.
            for v in ["1.0.0.1", "1.0.0.2"] {
                await assertEqual(try await b.post("/apps/20171228/packages/\(v)/tasks", [("type", "official"), ("description", "x")]).status, .seeOther)
            }
            let first = try await b.get("/tasks/2").text
            XCTAssertTrue(first.contains("Roll back 1.0.0.1? Clients that have it are offered 1.0.0.2, the official version above it."), first)
            XCTAssertTrue(element(first, id: "review-effect").contains("clients in range now get 1.0.0.2, a higher official version"), first)
            await assertEqual(try await b.post("/tasks/2/rollback", []).status, .seeOther)
            await assertEqual(try await c.versions(installed: "1.0.0.1"), ["1.0.0.2"], "what the page said")
            let rolled = try await b.get("/tasks/2").text
            XCTAssertTrue(element(rolled, id: "review-effect").contains("clients that have it are offered 1.0.0.2, the official version above it"))
            // Rolling back 1.0.0.2 now: nothing official remains below it (1.0.0.1 was rolled back).
            await assertEqual(try await b.post("/tasks/3/rollback", []).status, .seeOther)
            await assertEqual(try await c.versions(installed: "1.0.0.2"), [], "nothing to go back to")
            let app = try await b.get("/apps/20171228").text
            XCTAssertTrue(app.contains(#"<span class="status rejected">Rolled back</span>"#), "a rolled-back release is not shown as finished")
            let package = try await b.get("/apps/20171228/packages/1.0.0.2").text
            XCTAssertTrue(element(package, id: "package-status").contains("Rolled back"), package)
        }
    }

    func testARequestBelowTheLiveOfficialVersionSaysItChangesNothing() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        try await h.addUser("rita", role: .reviewer)
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            await assertEqual(try await dev.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "official"), ("description", "x")]).status, .seeOther)
            _ = try await h.store.setApprovalRules(official: true, gray: true, by: .commandLine)
            await assertEqual(try await dev.post("/apps/20171228/packages/1.0.0.1/tasks", [("type", "official"), ("description", "x")]).status, .seeOther)
            let rita = try await Browser.signIn(client, "rita")
            let page = try await rita.get("/tasks/2").text
            XCTAssertTrue(element(page, id: "review-effect").contains("Approving changes nothing for clients in range: they get 1.0.0.2"), page)
            XCTAssertTrue(element(page, id: "review-warnings").contains("1.0.0.1 is below 1.0.0.2"), page)
            // A grayscale task widened: while the wider share waits, the task offers nothing; rejected, it ends.
            await assertEqual(try await dev.post("/tasks/2/finish", []).status, .seeOther)
            let withdrawn = try await rita.get("/approvals").text
            XCTAssertTrue(element(withdrawn, id: "decided-2").contains("Withdrawn by dev"), withdrawn)
            _ = try await h.store.setApprovalRules(official: false, gray: false, by: .commandLine)
            try await h.addPackage("1.0.0.3")
            await assertEqual(try await dev.post("/apps/20171228/packages/1.0.0.3/tasks", [("type", "gray"), ("mode", "percentage"),
                                                                                         ("percentage", "5"), ("description", "x")]).status, .seeOther)
            _ = try await h.store.setApprovalRules(official: false, gray: true, by: .commandLine)
            let raised = try await dev.post("/tasks/3/percentage", [("percentage", "20")])
            let notice = try await dev.get(try XCTUnwrap(raised.headers[.location])).text
            XCTAssertTrue(element(notice, id: "notice").contains("this task offers 1.0.0.3 to no client until a reviewer approves it"), notice)
            XCTAssertTrue(element(notice, id: "review-effect").contains("Meanwhile this task offers 1.0.0.3 to no client."), notice)
            await assertEqual(try await rita.post("/tasks/3/reject", [("comment", "Too wide")]).status, .seeOther)
            let rejected = try await rita.get("/tasks/3").text
            XCTAssertTrue(element(rejected, id: "review-effect").contains("the wider share was rejected"), rejected)
        }
    }

    func testANoticeCannotBeRestyledOrReplayedWithAnotherText() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            let made = try await dev.post("/apps/20171228/packages/1.0.0.1/tasks", [("type", "official"), ("description", "x")])
            let url = try XCTUnwrap(made.headers[.location])
            XCTAssertTrue(url.contains("nw=1"))
            await assertTrue(try await dev.get(url).text.contains(#"id="notice""#), "the notice as made is shown")
            let plain = url.replacingOccurrences(of: "&nw=1", with: "").replacingOccurrences(of: "notice=", with: "notice=%01")
            await assertFalse(try await dev.get(plain).text.contains(#"id="notice""#), "restyled: not shown")
            let unflagged = url.replacingOccurrences(of: "&nw=1", with: "")
            await assertFalse(try await dev.get(unflagged).text.contains(#"id="notice""#), "the style is signed")
            // A batch release with no approval rule says nothing of approvals.
            _ = try await h.store.setApprovalRules(official: false, gray: false, by: .commandLine)
            let batch = try await dev.post("/releases/batch", [("apps", "20171228"), ("type", "gray"), ("mode", "percentage"),
                                                               ("percentage", "5"), ("description", "x")])
            XCTAssertTrue(batch.text.contains("1 created"), batch.text)
            XCTAssertFalse(batch.text.contains(#"id="batch-awaiting""#), "0 awaiting is not a notice")
        }
    }

    func testTheAuditLogFilteredByAppHoldsItsTasksApprovalsAndRollbacks() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("dev", role: .developer)
        try await h.addUser("rita", role: .reviewer)
        _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20180101"), name: "Other", by: .commandLine)
        try await h.test { client in
            let dev = try await Browser.signIn(client, "dev")
            await assertEqual(try await dev.post("/apps/20171228/packages/1.0.0.2/tasks", [("type", "official"), ("description", "x")]).status, .seeOther)
            let rita = try await Browser.signIn(client, "rita")
            await assertEqual(try await rita.post("/tasks/1/approve", [("comment", "")]).status, .seeOther)
            await assertEqual(try await dev.post("/tasks/1/rollback", []).status, .seeOther)
            let log = try await dev.get("/audit?app=20171228").text
            for action in ["task.create", "task.approve", "task.rollback", "package.add"] {
                XCTAssertTrue(log.contains(action), "\(action) is found by app")
            }
            XCTAssertFalse(log.contains("20180101"), "another app's rows are not")
            XCTAssertTrue(log.contains("Rolled back the official release (1.0.0.2).") && log.contains("Approved the release (1.0.0.2), asked for by dev."),
                          "details read as sentences")
            XCTAssertTrue(log.contains("Created task 1: an official release, awaiting approval."), log)
            XCTAssertTrue(log.contains(#"<a href="/tasks/1">task 1</a>"#) && log.contains(#"<a href="/apps/20171228/packages/1.0.0.2">"#),
                          "subjects link to what they name")
            let csv = try await dev.get("/audit.csv?app=20171228").text
            XCTAssertTrue(csv.contains(#""{""app"":""20171228"","#), "the export keeps the JSON")
            let other = try await dev.get("/audit?app=20180101").text
            XCTAssertFalse(other.contains("task.approve"))
            await assertEqual(try await h.store.verifyAudit().isValid, true, "the chain holds")
            // The app column is checked against the hashed detail: moving a row to another app breaks the chain.
            try await h.store.db.write { db in try db.execute(sql: "UPDATE audit SET appId = '20180101' WHERE action = 'task.rollback'") }
            await assertEqual(try await h.store.verifyAudit().isValid, false, "a changed app column is caught")
        }
    }
}

/// Issue 16 §3: the add-package form reuses the newest package's settings, keeps what was typed,
/// and reports the fields and the zip in one round.
final class PackageFormReuseTests: XCTestCase {
    func testTheFormStartsFromTheNewestPackageAndKeepsWhatWasTyped() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("alice", role: .developer)
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            let form = try await b.get("/apps/20171228/packages/new").text
            XCTAssertTrue(element(form, id: "started-from").contains("start from version 1.0.0.2"), form)
            XCTAssertTrue(form.contains(#"id="version" name="version" value="1.0.0.3""#))
            XCTAssertTrue(form.contains(#"id="mainUrl" name="mainUrl" value="/www/index.html""#), "the main entrance is reused")
            XCTAssertTrue(form.contains(#"id="androidMin" name="androidMin" value="10.0""#))
            XCTAssertTrue(form.contains("{&quot;asyncReqRate&quot;:&quot;1800&quot;}"), "extended info is reused")
            XCTAssertTrue(form.contains(#"value="preload" checked"#) && form.contains(#"value="all" checked"#), "policies are reused")

            // A wrong version and a zip for another app: both reported at once, nothing stored.
            let wrongZip = samplePackage("20180101").bytes()
            let both = try await b.upload("/apps/20171228/packages",
                                          packageFields(version: "1.0.0.1", extra: [("extendInfo", #"{"k":"v"}"#)]), file: wrongZip, filename: "other.zip")
            XCTAssertEqual(both.status, .unprocessableContent)
            XCTAssertTrue(element(both.text, id: "error-version").contains("greater than"), both.text)
            XCTAssertTrue(element(both.text, id: "error-file").contains("20180101/, a different app ID"), both.text)
            XCTAssertTrue(both.text.contains("{&quot;k&quot;:&quot;v&quot;}"), "what was typed is kept")
            await assertEqual(try await h.store.packages(of: "20171228").count, 2)
            XCTAssertEqual(h.tempCount, 0, "no temp file stays")

            // A good zip refused for a field: the form says, beside the file input, to choose it again.
            let fieldOnly = try await b.upload("/apps/20171228/packages", packageFields(version: "1.0.0.3", extra: [("extendInfo", "not json")]),
                                               file: samplePackage().bytes(), filename: "checkout-1.0.0.3.zip")
            XCTAssertEqual(fieldOnly.status, .unprocessableContent)
            XCTAssertTrue(element(fieldOnly.text, id: "choose-again").contains("Choose the file again (checkout-1.0.0.3.zip)"), fieldOnly.text)
            XCTAssertTrue(fieldOnly.text.contains(#"value="1.0.0.3""#) && fieldOnly.text.contains("not json"))

            // Without the confirmation, the zip is checked too.
            let unconfirmed = try await b.upload("/apps/20171228/packages",
                                                 packageFields(version: "1.0.0.3").filter { $0.0 != "confirm" }, file: wrongZip)
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-confirm""#) && unconfirmed.text.contains(#"id="error-file""#), unconfirmed.text)

            // Accepted: the package page says so.
            let added = try await b.upload("/apps/20171228/packages", packageFields(version: "1.0.0.3"), file: samplePackage().bytes())
            XCTAssertEqual(added.status, .seeOther, added.text)
            let page = try await b.get(try XCTUnwrap(added.headers[.location])).text
            XCTAssertTrue(element(page, id: "notice").contains("Version 1.0.0.3 was added"), page)
        }
    }
}
