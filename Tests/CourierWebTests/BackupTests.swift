import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import XCTest
@testable import CourierWeb

/// `courier backup` / `courier restore` (issue 10): a consistent copy, checked before it is restored.
final class BackupTests: XCTestCase {
    func testABackupRestoresTheSameCatalogueBlobsAndAuditChain() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        var draft = TaskDraft()
        draft.type = "official"
        _ = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.1", draft: draft)
        let backup = temporaryDirectory() + "/backup"
        let restored = temporaryDirectory() + "/data"
        defer { try? FileManager.default.removeItem(atPath: (backup as NSString).deletingLastPathComponent)
                try? FileManager.default.removeItem(atPath: (restored as NSString).deletingLastPathComponent) }

        let manifest = try await Backup.run(h.store, to: backup)
        XCTAssertEqual(manifest.packages, 2)
        XCTAssertEqual(manifest.tasks, 1)
        XCTAssertEqual(manifest.files.count, 3, "the database and two blobs")
        let verified = try Backup.verify(backup)
        XCTAssertEqual(verified.files, manifest.files)
        // The database holds the signing key: owner only; checking it leaves nothing beside it.
        let mode = (try FileManager.default.attributesOfItem(atPath: backup + "/courier.sqlite")[.posixPermissions] as? NSNumber)?.intValue
        XCTAssertEqual(mode, 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: backup).sorted(), ["blobs", "courier.sqlite", "manifest.json"])
        XCTAssertEqual(verified.auditRows, manifest.auditRows)
        await assertThrows(try await Backup.run(h.store, to: backup)) { XCTAssertTrue("\($0)".contains("not empty"), "\($0)") }

        _ = try Backup.restore(from: backup, to: restored)
        let copy = try SQLiteStore(dataDirectory: restored)
        await assertEqual(try await copy.allPackages().map(\.blob).sorted(), try await h.store.allPackages().map(\.blob).sorted())
        for p in try await copy.allPackages() {
            XCTAssertEqual(FileManager.default.contents(atPath: copy.blobs.path(for: p.blob)),
                           FileManager.default.contents(atPath: h.store.blobs.path(for: p.blob)), "byte-identical .amr")
        }
        await assertEqual(try await copy.allTasks().count, 1)
        await assertEqual(try await copy.auditEntries(limit: 1000).count, try await h.store.auditEntries(limit: 1000).count)
        await assertTrue(try await copy.verifyAudit().isValid)
        XCTAssertThrowsError(try Backup.restore(from: backup, to: restored), "the target must be new or empty")
    }

    func testTheManifestArrivesLastWhateverOrderTheFolderListsItsEntriesIn() async throws {
        // Issue 15, 1: renamed in listing order, the manifest (the mark of a finished backup)
        // could arrive before the database. Seen after each rename: no manifest until the rest is there.
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        let backup = temporaryDirectory() + "/backup"
        defer { try? FileManager.default.removeItem(atPath: (backup as NSString).deletingLastPathComponent) }
        let seen = LockedList()
        _ = try await Backup.run(h.store, to: backup) { moved in
            let names = Set(((try? FileManager.default.contentsOfDirectory(atPath: backup)) ?? []).filter { !$0.hasPrefix(".partial-") })
            seen.append((moved, names))
        }
        let steps = seen.all
        XCTAssertEqual(steps.map(\.0), Array(1...steps.count))
        XCTAssertEqual(steps.last?.1, ["blobs", "courier.sqlite", "manifest.json"])
        for (moved, names) in steps.dropLast() {
            XCTAssertFalse(names.contains("manifest.json"), "after \(moved) renames the manifest is already there: \(names)")
        }
    }

    func testADamagedOrIncompleteBackupIsRefusedAndRestoresNothing() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let manifest = try await Backup.run(h.store, to: root + "/b")
        let blob = try XCTUnwrap(manifest.files.first { $0.path.hasPrefix("blobs/") })

        // A changed byte in a blob.
        let path = root + "/b/" + blob.path
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Backup.restore(from: root + "/b", to: root + "/r1")) { XCTAssertTrue("\($0)".contains(blob.path), "\($0)") }
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: root + "/r1")) ?? [], [], "nothing restored")

        // A missing blob, and a folder without a manifest.
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try Backup.verify(root + "/b")) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
        try FileManager.default.removeItem(atPath: root + "/b/manifest.json")
        XCTAssertThrowsError(try Backup.verify(root + "/b")) { XCTAssertTrue("\($0)".contains("not a finished"), "\($0)") }
    }

    /// Issue 15, 3.9: a backup folder is input from outside. A blob replaced by a link, or by a
    /// FIFO (which used to hang the restore), is refused at once; a manifest naming a hidden
    /// path that meets a link left in the target is refused; the target must be really empty.
    func testARestoreFollowsNoLinkAndNeverWaitsOnAFIFO() async throws {
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp() }
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let manifest = try await Backup.run(h.store, to: root + "/b")
        let blob = try XCTUnwrap(manifest.files.first { $0.path.hasPrefix("blobs/") })
        let path = root + "/b/" + blob.path
        let original = try XCTUnwrap(FileManager.default.contents(atPath: path))

        // The same bytes behind a link: refused, not followed.
        try original.write(to: URL(fileURLWithPath: root + "/elsewhere.amr"))
        try FileManager.default.removeItem(atPath: path)
        XCTAssertEqual(symlink(root + "/elsewhere.amr", path), 0)
        XCTAssertThrowsError(try Backup.restore(from: root + "/b", to: root + "/r1")) { XCTAssertTrue("\($0)".contains("symbolic link"), "\($0)") }

        // A FIFO: refused at once (the restore used to wait forever for a writer).
        try FileManager.default.removeItem(atPath: path)
        XCTAssertEqual(mkfifo(path, 0o600), 0)
        XCTAssertThrowsError(try Backup.restore(from: root + "/b", to: root + "/r2")) { XCTAssertTrue("\($0)".contains("regular file"), "\($0)") }
        try FileManager.default.removeItem(atPath: path)
        try original.write(to: URL(fileURLWithPath: path))
        XCTAssertNoThrow(try Backup.verify(root + "/b"))

        // The blobs folder itself a link to a copy elsewhere: refused, not followed.
        try FileManager.default.moveItem(atPath: root + "/b/blobs", toPath: root + "/blobs-elsewhere")
        XCTAssertEqual(symlink(root + "/blobs-elsewhere", root + "/b/blobs"), 0)
        XCTAssertThrowsError(try Backup.restore(from: root + "/b", to: root + "/r4")) { XCTAssertTrue("\($0)".contains("not a folder of the backup"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/r4/courier.sqlite"))
        try FileManager.default.removeItem(atPath: root + "/b/blobs")
        try FileManager.default.moveItem(atPath: root + "/blobs-elsewhere", toPath: root + "/b/blobs")

        // A target holding a `.partial-*` link is not empty; a manifest may not name such a path.
        try FileManager.default.createDirectory(atPath: root + "/r3", withIntermediateDirectories: true)
        XCTAssertEqual(symlink(root + "/outside", root + "/r3/.partial-x"), 0)
        XCTAssertThrowsError(try Backup.restore(from: root + "/b", to: root + "/r3")) { XCTAssertTrue("\($0)".contains("not empty"), "\($0)") }
        XCTAssertFalse(Backup.safeRelative(".partial-x/courier.sqlite"))
        XCTAssertFalse(Backup.safeRelative("blobs//x"))
        XCTAssertTrue(Backup.safeRelative(blob.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/outside"), "nothing was written through the link")
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(Int, Set<String>)] = []
    var all: [(Int, Set<String>)] { lock.withLock { items } }
    func append(_ item: (Int, Set<String>)) { lock.withLock { items.append(item) } }
}
