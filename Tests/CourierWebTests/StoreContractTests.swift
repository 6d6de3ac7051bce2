import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import XCTest
@testable import CourierWeb

/// The `Store` protocol's contract, through the protocol only: what several nodes will need
/// (catalogue version, leases, admissions, a sweep that spares other writers) and the rules a
/// store keeps in its transactions (CourierCore's, stated as constraints too). A second backend
/// runs the same tests in a subclass whose `harness()` and `released()` build Courier on it
/// (issue 20: PostgreSQL; `Harness` then needs a choice of store).
class StoreContractTests: XCTestCase {
    /// The Courier under test; a backend's subclass returns one on its own database.
    func harness() async throws -> Harness { try await Harness.make() }
    func released() async throws -> (Harness, String) { try await releasedHarness() }
    func testTheCatalogueVersionGrowsWithEveryCatalogueChangeOnly() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        let start = try await h.services.store.catalogueVersion()
        _ = try await h.services.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.services.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        await assertEqual(try await h.services.store.catalogueVersion(), start + 2)
        try await h.addUser("dev", role: .developer)   // people are not the catalogue
        await assertEqual(try await h.services.store.catalogueVersion(), start + 2)
        // A refused change leaves it as it was (it is raised in the change's transaction).
        await assertThrows(try await h.services.store.createApp(id: AppID(trusted: "20171228"), name: "Again", by: .commandLine))
        await assertEqual(try await h.services.store.catalogueVersion(), start + 2)
    }

    func testOneNodeHoldsALeaseUntilItExpiresOrIsGivenUp() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.leases(h.services.store)
    }

    func testTheAccountsArea() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.accounts(h.services.store)
    }

    func testTheCatalogueArea() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.catalogue(h.services.store)
    }

    func testTheReleaseAndApprovalAreas() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.releases(h.services.store)
    }

    func testTheImportArea() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.imports(h.services.store)
    }

    func testThePatchArea() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.patches(h.services.store)
    }

    func testTheAuditArea() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.audit(h.services.store)
    }

    func testTheDatabaseAdmitsExactlyTheFirstDevicesOfATimeWindow() async throws {
        let (h, token) = try await released()
        defer { h.cleanUp() }
        let end = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        try await h.test { client in
            let r = try await APITests.Caller(client: client, token: token).call(
                .post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":20}"#)
            XCTAssertEqual(r.status, .created, r.text)
        }
        let tasks = try await h.services.store.allTasks()
        let task = try XCTUnwrap(tasks.first?.id)
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<120 { group.addTask { try await h.services.store.admit(task: task, device: "d-\(n)", limit: 20) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(admitted, 20)
        let recorded = try await h.services.store.admissions()
        XCTAssertEqual(recorded[task]?.count, 20)
        let first = try XCTUnwrap(recorded[task]?.first)
        await assertTrue(try await h.services.store.admit(task: task, device: first, limit: 20), "an admitted device stays admitted")
        _ = try await h.services.store.operate(task: task, .pause, by: .commandLine)
        await assertFalse(try await h.services.store.admit(task: task, device: "while-paused", limit: 1_000), "a paused window admits nobody new")
        _ = try await h.services.store.operate(task: task, .finish, by: .commandLine)
        await assertFalse(try await h.services.store.admit(task: task, device: "late", limit: 1_000), "an ended window admits nobody")
    }

    func testReleaseHealthIsCountedByTheHourOncePerDevice() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.health(h.services.store)
    }

    func testARampStepRunsOnceAndTheHealthGatePausesWithItsNumbers() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        try await AreaContracts.ramps(h.services.store, h.services.store)
    }

    /// The ramp's steps as the API takes them: each refusal names its field; the task answers its ramp.
    func testTheAPITakesARampAndRefusesBadSteps() async throws {
        let (h, token) = try await released()
        defer { h.cleanUp() }
        try await h.test { client in
            let caller = APITests.Caller(client: client, token: token)
            let path = "/api/v1/apps/20171228/packages/1.0.0.1/tasks"
            for (body, field) in [(#""percentage":10,"steps":[{"percentage":5,"afterMinutes":60}]"#, "steps"),
                                  (#""percentage":10,"steps":[{"percentage":50,"afterMinutes":0}]"#, "steps"),
                                  (#""percentage":10,"steps":[{"promote":true,"afterMinutes":60},{"percentage":50,"afterMinutes":60}]"#, "steps"),
                                  (#""percentage":10,"steps":[{"percentage":50,"afterMinutes":60}],"healthThreshold":0"#, "healthThreshold")] {
                let bad = try await caller.call(.post, path, json: #"{"type":"gray","mode":"percentage",\#(body)}"#)
                XCTAssertEqual(bad.status, .unprocessableContent, bad.text)
                XCTAssertTrue(bad.text.contains(#""field":"\#(field)""#), bad.text)
            }
            let tooMany = (1...11).map { #"{"percentage":\#($0 * 8),"afterMinutes":60}"# }.joined(separator: ",")
            let bad = try await caller.call(.post, path, json: #"{"type":"gray","mode":"percentage","percentage":1,"steps":[\#(tooMany)]}"#)
            XCTAssertTrue(bad.text.contains("at most 10"), bad.text)
            let official = try await caller.call(.post, path, json: #"{"type":"official","steps":[{"percentage":50,"afterMinutes":60}]}"#)
            XCTAssertEqual(official.status, .unprocessableContent, official.text)
            await assertEqual(try await h.services.store.allTasks().count, 0, "nothing was created")
            let r = try await caller.call(.post, path, json: """
                {"type":"gray","mode":"percentage","percentage":1,"healthThreshold":2.5,
                 "steps":[{"percentage":20,"afterMinutes":60},{"promote":true,"afterMinutes":1440}]}
                """)
            XCTAssertEqual(r.status, .created, r.text)
            XCTAssertTrue(r.text.contains(#""stepsTaken":0"#) && r.text.contains(#""healthThreshold":2.5"#), r.text)
            let tasks = try await h.services.store.allTasks()
            let id = try XCTUnwrap(tasks.first?.id)
            let health = try await caller.call(.get, "/api/v1/tasks/\(id)/health")
            XCTAssertEqual(health.status, .ok, health.text)
            XCTAssertTrue(health.text.contains(#""hours":[{"#) && health.text.contains(#""healthThreshold":2.5"#), health.text)
            let missing = try await caller.call(.get, "/api/v1/tasks/999999/health")
            XCTAssertEqual(missing.status, .notFound)
        }
    }

    func testTheSweepSparesFilesAnotherNodeMayStillBeWriting() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        let blobs = h.dir + "/blobs/ab"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        let written = blobs + "/ab" + String(repeating: "1", count: 62) + ".amr"
        let linked = blobs + "/ab" + String(repeating: "2", count: 62) + ".amr"
        XCTAssertTrue(FileManager.default.createFile(atPath: written, contents: Data("x".utf8)))
        // A file linked in now that was written long ago (an import's zip is linked, keeping its
        // modification time): the link is what counts.
        let old = h.dir + "/old.bin"
        XCTAssertTrue(FileManager.default.createFile(atPath: old, contents: Data("y".utf8)))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-86400)], ofItemAtPath: old)
        XCTAssertEqual(link(old, linked), 0)
        let shared = try await h.services.store.sweep(grace: 3600)
        XCTAssertEqual(shared.orphanBlobs, 0, "both were touched within the grace period")
        XCTAssertTrue(FileManager.default.fileExists(atPath: written) && FileManager.default.fileExists(atPath: linked))
        let later = try await h.services.store.sweep(grace: 3600, now: Date().addingTimeInterval(7200))
        XCTAssertEqual(later.orphanBlobs, 2, "once untouched for the grace period, orphans go")
        XCTAssertTrue(FileManager.default.createFile(atPath: written, contents: Data("x".utf8)))
        let owned = try await h.services.store.sweep()
        XCTAssertEqual(owned.orphanBlobs, 1, "a node owning its folder sweeps every orphan at once")
    }

    func testAnAppsVersionsOnlyGoUp() async throws {
        let (h, _) = try await released()
        defer { h.cleanUp() }
        let store: any Store = h.services.store
        let highestRead = try await store.package("20171228", "1.0.0.2")
        let highest = try XCTUnwrap(highestRead)
        var lower = highest
        lower.id = nil; lower.version = "1.0.0.1"; lower.versionKey = PackageRecord.versionKey(PackageVersion(parts: [1, 0, 0, 1]))
        lower.blob = String(repeating: "0", count: 64)
        let upload = store.blobs.temporaryPath(suffix: ".amr")
        XCTAssertTrue(FileManager.default.createFile(atPath: upload, contents: Data("amr".utf8)))
        let key = try await store.settings().signingKeyFingerprint
        await assertThrows(try await store.commitPackage(amrAt: upload, lower, files: [], signedWith: key, importRow: nil, by: .commandLine)) {
            XCTAssertTrue("\($0)".contains("greater than 1.0.0.2"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.blobs.path(for: lower.blob)), "the refused package's file is gone")
        await assertEqual(try await store.packages(of: "20171228").count, 2)
    }

    func testAPackageHasOneUnfinishedTaskAtATime() async throws {
        let (h, _) = try await released()
        defer { h.cleanUp() }
        let store: any Store = h.services.store
        let pRead = try await store.package("20171228", "1.0.0.2")
        let p = try XCTUnwrap(pRead)
        let official = TaskRecord(package: p, kind: .official, description: "", createdBy: "ci")
        let first = try await store.createTask(official, by: .commandLine)
        await assertThrows(try await store.createTask(official, by: .commandLine)) { XCTAssertTrue($0 is Conflict, "\($0)") }
        _ = try await store.operate(task: try XCTUnwrap(first.id), .finish, by: .commandLine)
        _ = try await store.createTask(official, by: .commandLine)   // once it ended, another may start
        await assertEqual(try await store.tasks(of: "20171228").count, 2)
    }

    func testTheLastActiveAdministratorStays() async throws {
        let h = try await harness()
        defer { h.cleanUp() }
        let store: any Store = h.services.store
        try await h.addUser("root", role: .admin)
        try await h.addUser("dev", role: .developer)
        await assertThrows(try await store.setRole("root", .developer, by: .commandLine)) { XCTAssertTrue($0 is Conflict, "\($0)") }
        await assertThrows(try await store.setDisabled("root", true, by: .commandLine)) { XCTAssertTrue($0 is Conflict, "\($0)") }
        _ = try await store.setRole("dev", .admin, by: .commandLine)
        _ = try await store.setDisabled("root", true, by: .commandLine)   // another one is active now
        await assertEqual(try await store.users().filter { $0.role == .admin && !$0.disabled }.map(\.name), ["dev"])
    }
}

/// The same rules hold against a writer that skips the store's checks (another process, a hand
/// fix in SQL): SQLite's schema states them (migration v16), and the store reports a breach as
/// a Conflict, not a server fault.
final class SQLiteConstraintTests: XCTestCase {
    func testTheSchemaRefusesWhatTheRulesRefuse() async throws {
        XCTAssertEqual(ReleaseTask.Status.ended, ["finished", "rejected"],
                       "v16's index taskOneUnfinishedPerPackage names the ended statuses: a new one needs a migration")
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.addUser("root", role: .admin)
        let store = h.store
        let lowerVersion = """
            INSERT INTO package (appId, version, versionKey, type, extendInfo, downloadPolicy, installPolicy, status, blob, size, md5,
                                 tarOffset, tarSize, fileCount, createdAt, createdBy)
            SELECT appId, '1.0.0.0', '00001.00000.00000.00000', type, extendInfo, downloadPolicy, installPolicy, status, blob, size, md5,
                   tarOffset, tarSize, fileCount, createdAt, createdBy FROM package WHERE version = '1.0.0.1'
            """
        let secondTask = """
            INSERT INTO task (packageId, appId, version, type, mode, whitelistIds, rules, descriptionMarkdown, status, rolledBack, createdBy, createdAt)
            SELECT packageId, appId, version, type, mode, whitelistIds, rules, descriptionMarkdown, 'paused', 0, createdBy, createdAt FROM task
            """
        let p = try await store.package("20171228", "1.0.0.2")
        _ = try await store.createTask(TaskRecord(package: try XCTUnwrap(p), kind: .official, description: "", createdBy: "ci"), by: .commandLine)
        // By hand (another process, a fix in SQL): refused by the schema.
        await assertThrows(try await store.db.write { db in try db.execute(sql: lowerVersion) }) {
            XCTAssertTrue("\($0)".contains("greater than"), "\($0)")
        }
        await assertThrows(try await store.db.write { db in try db.execute(sql: secondTask) }) { XCTAssertTrue("\($0)".contains("UNIQUE"), "\($0)") }
        await assertThrows(try await store.db.write { db in try db.execute(sql: "UPDATE user SET disabled = 1 WHERE role = 'admin'") }) {
            XCTAssertTrue("\($0)".contains("last active administrator"), "\($0)")
        }
        // Through a change whose checks missed it: what the person is told, and nothing written.
        func write(_ sql: String) async throws { try await store.change(by: .commandLine, "test.breach", subject: "x") { db in try db.execute(sql: sql); return ((), [:]) } }
        await assertThrows(try await write(lowerVersion)) { XCTAssertEqual(($0 as? FieldError)?.field, "version", "\($0)") }
        await assertThrows(try await write(secondTask)) { XCTAssertEqual($0 as? Conflict, UnfinishedTaskRule.breached, "\($0)") }
        await assertThrows(try await write("UPDATE user SET disabled = 1 WHERE role = 'admin'")) { XCTAssertTrue($0 is Conflict, "\($0)") }
        await assertEqual(try await store.db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM task") }, 1)
        await assertEqual(try await store.packages(of: "20171228").count, 2)
        await assertEqual(try await store.auditEntries(subject: "x", actionPrefix: "test.").count, 0)
        // With two active administrators, one may go, not both.
        try await h.addUser("root2", role: .admin)
        try await store.db.write { db in try db.execute(sql: "UPDATE user SET disabled = 1 WHERE name = 'root'") }
        await assertThrows(try await store.db.write { db in try db.execute(sql: "UPDATE user SET role = 'developer' WHERE name = 'root2'") })
    }
}
