import CourierCore
@testable import CourierStore
import CourierTestSupport
import Foundation
import XCTest
@testable import CourierWeb

/// Issue 19: what several nodes will need, as store operations (the next issue's PostgreSQL
/// store implements the same ones and these tests hold it to the same results).
final class NodeSeamTests: XCTestCase {
    func testTheCatalogueVersionGrowsWithEveryCatalogueChangeOnly() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        let start = try await h.store.catalogueVersion()
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        await assertEqual(try await h.store.catalogueVersion(), start + 2)
        try await h.addUser("dev", role: .developer)   // people are not the catalogue
        await assertEqual(try await h.store.catalogueVersion(), start + 2)
        // A refused change leaves it as it was (it is raised in the change's transaction).
        await assertThrows(try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Again", by: .commandLine))
        await assertEqual(try await h.store.catalogueVersion(), start + 2)
    }

    func testOneNodeHoldsALeaseUntilItExpiresOrIsGivenUp() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        let now = Date()
        await assertTrue(try await h.store.acquireLease("housekeeping", holder: "a", for: 60, now: now))
        await assertFalse(try await h.store.acquireLease("housekeeping", holder: "b", for: 60, now: now.addingTimeInterval(30)))
        await assertTrue(try await h.store.acquireLease("housekeeping", holder: "a", for: 60, now: now.addingTimeInterval(30)), "renewed")
        await assertFalse(try await h.store.acquireLease("housekeeping", holder: "b", for: 60, now: now.addingTimeInterval(80)),
                          "the renewal moved the expiry")
        await assertTrue(try await h.store.acquireLease("housekeeping", holder: "b", for: 60, now: now.addingTimeInterval(91)),
                         "taken over once expired")
        try await h.store.releaseLease("housekeeping", holder: "a")   // not a's any more: nothing happens
        await assertFalse(try await h.store.acquireLease("housekeeping", holder: "a", for: 60, now: now.addingTimeInterval(92)))
        try await h.store.releaseLease("housekeeping", holder: "b")
        await assertTrue(try await h.store.acquireLease("housekeeping", holder: "a", for: 60, now: now.addingTimeInterval(93)), "given up")
        // Many asking at once: exactly one gets it.
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<20 { group.addTask { try await h.store.acquireLease("sweep", holder: "n\(n)", for: 60) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(winners, 1)
    }

    func testTheDatabaseAdmitsExactlyTheFirstDevicesOfATimeWindow() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        let end = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        try await h.test { client in
            let r = try await APITests.Caller(client: client, token: token).call(
                .post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":20}"#)
            XCTAssertEqual(r.status, .created, r.text)
        }
        let tasks = try await h.store.allTasks()
        let task = try XCTUnwrap(tasks.first?.id)
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<120 { group.addTask { try await h.store.admit(task: task, device: "d-\(n)", limit: 20) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(admitted, 20)
        let recorded = try await h.store.admissions()
        XCTAssertEqual(recorded[task]?.count, 20)
        let first = try XCTUnwrap(recorded[task]?.first)
        await assertTrue(try await h.store.admit(task: task, device: first, limit: 20), "an admitted device stays admitted")
        _ = try await h.store.operate(task: task, .pause, by: .commandLine)
        await assertFalse(try await h.store.admit(task: task, device: "while-paused", limit: 1_000), "a paused window admits nobody new")
        _ = try await h.store.operate(task: task, .finish, by: .commandLine)
        await assertFalse(try await h.store.admit(task: task, device: "late", limit: 1_000), "an ended window admits nobody")
    }

    func testTheSweepSparesFilesAnotherNodeMayStillBeWriting() async throws {
        let h = try await Harness.make()
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
        let shared = try await h.store.sweep(grace: 3600)
        XCTAssertEqual(shared.orphanBlobs, 0, "both were touched within the grace period")
        XCTAssertTrue(FileManager.default.fileExists(atPath: written) && FileManager.default.fileExists(atPath: linked))
        let later = try await h.store.sweep(grace: 3600, now: Date().addingTimeInterval(7200))
        XCTAssertEqual(later.orphanBlobs, 2, "once untouched for the grace period, orphans go")
        XCTAssertTrue(FileManager.default.createFile(atPath: written, contents: Data("x".utf8)))
        let owned = try await h.store.sweep()
        XCTAssertEqual(owned.orphanBlobs, 1, "a node owning its folder sweeps every orphan at once")
    }
}
