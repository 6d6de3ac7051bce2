import CourierCore
@testable import CourierPostgres
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import GRDB
import Logging
import XCTest
@testable import CourierWeb

/// One backup format for both stores (issue 20): a SQLite store's backup restores into
/// PostgreSQL and a PostgreSQL store's into SQLite, with the same rows, blobs and audit chain;
/// a damaged backup or a database already in use restores nothing.
final class CrossStoreBackupTests: XCTestCase {
    /// Everything a store holds that a person or a device sees, as sorted JSON.
    static func dump(_ s: any Store) async throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        // SQLite keeps milliseconds, PostgreSQL microseconds: a move to SQLite rounds to the millisecond.
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode((date.timeIntervalSince1970 * 1000).rounded())
        }
        func j<T: Encodable>(_ v: T) throws -> String { String(decoding: try e.encode(v), as: UTF8.self) }
        var parts: [String] = []
        parts.append(try j(try await s.settings()))
        parts.append(try j(try await s.users()))
        parts.append(try j(try await s.tokens(of: nil).map { $0.0 }))
        parts.append(try j(try await s.allApps()))
        let packages = try await s.allPackages()
        parts.append(try j(packages))
        for p in packages { parts.append(try j(try await s.files(of: p.id!))) }
        parts.append(try j(try await s.allTasks()))
        parts.append(try j(try await s.whitelists().map { [try j($0.0), $0.1.sorted().joined(separator: ",")] }))
        parts.append(try j(try await s.auditEntries(limit: 10_000)))
        parts.append(try j(try await s.patches()))
        return parts.joined(separator: "\n")
    }

    func testASQLiteBackupRestoresIntoPostgreSQLAndBack() async throws {
        let db = try await PostgresTestDatabase.make()
        let root = temporaryDirectory()
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp(); try? FileManager.default.removeItem(atPath: root) }
        do {
            var draft = TaskDraft()
            draft.type = "official"
            _ = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.1", draft: draft)
            _ = try await h.store.createWhitelist(name: "testers", kind: .user, values: ["u1", "u2"], by: .commandLine)
            // The newest token deleted: its id is not given out again after the move.
            let doomed = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read")
            let doomedRow = try await h.store.token(secret: doomed)
            let doomedId = try XCTUnwrap(doomedRow?.0.id)
            try await h.store.db.write { try $0.execute(sql: "DELETE FROM apiToken WHERE id = ?", arguments: [doomedId]) }
            let original = try await Self.dump(h.store)
            _ = try await Backup.run(h.store, to: root + "/from-sqlite")

            // Into PostgreSQL: the same rows, the blobs in the shared folder, a chain that verifies.
            let pg = try await db.store()
            defer { pg.shutdown() }
            let m = try await pg.restore(from: root + "/from-sqlite")
            XCTAssertEqual(m.packages, 2)
            await assertEqual(try await Self.dump(pg), original)
            await assertTrue(try await pg.verifyAudit().isValid)
            for p in try await pg.allPackages() {
                XCTAssertEqual(FileManager.default.contents(atPath: pg.blobs.path(for: p.blob)),
                               FileManager.default.contents(atPath: h.store.blobs.path(for: p.blob)), "byte-identical .amr")
            }
            // It goes on from there: new ids after the restored ones, the chain linked to them.
            _ = try await pg.createUser(name: "after", passwordHash: "x", role: .developer, by: .commandLine)
            _ = try await pg.createApp(id: AppID(trusted: "20990001"), name: "New", by: .commandLine)
            await assertTrue(try await pg.verifyAudit().isValid)
            let next = try await pg.createToken(userName: "ci", scopes: [.read], by: .commandLine)
            let nextRow = try await pg.token(secret: next)
            XCTAssertGreaterThan(try XCTUnwrap(nextRow?.0.id), doomedId, "a deleted token's id is not given out again")
            // A second restore into a database in use is refused.
            await assertThrows(try await pg.restore(from: root + "/from-sqlite")) { XCTAssertTrue("\($0)".contains("already holds"), "\($0)") }

            // A rolled-back change leaves a gap in PostgreSQL's audit ids: SQLite keeps it, and verifies.
            await assertThrows(try await pg.change(by: .commandLine, "test.fail", subject: "x", catalogue: false) { c -> ((), detail: [String: String]) in
                try await PostgresStore.audit(c, by: .commandLine, "test.inner", subject: "x", detail: [:], logger: Logger(label: "t"))
                throw Conflict("no")
            })
            _ = try await pg.createUser(name: "after2", passwordHash: "x", role: .reviewer, by: .commandLine)
            let moved = try await Self.dump(pg)
            _ = try await pg.backup(to: root + "/from-pg")
            _ = try Backup.restore(from: root + "/from-pg", to: root + "/back")
            let back = try SQLiteStore(dataDirectory: root + "/back")
            await assertEqual(try await Self.dump(back), moved)
            await assertEqual(try await back.verifyAudit(), try await pg.verifyAudit())
            await assertTrue(try await back.verifyAudit().isValid)
            // SQLite goes on linking from the restored head.
            _ = try await back.createUser(name: "after3", passwordHash: "x", role: .reviewer, by: .commandLine)
            await assertTrue(try await back.verifyAudit().isValid)
            // A row deleted in the move would be found: SQLite checks the links it was given.
            let ids = try await back.auditEntries(limit: 10_000).compactMap(\.id).sorted()
            try await back.db.write { try $0.execute(sql: "DELETE FROM audit WHERE id = ?", arguments: [ids[3]]) }
            await assertEqual(try await back.verifyAudit().firstBadRow, ids[3])
        } catch {
            await db.drop()
            throw error
        }
        await db.drop()
    }

    /// Hashes are checked before anything is written: a damaged backup leaves the database
    /// empty and the blob folder as it was.
    func testADamagedBackupRestoresNothingIntoPostgreSQL() async throws {
        let db = try await PostgresTestDatabase.make()
        let root = temporaryDirectory()
        let (h, _) = try await releasedHarness()
        defer { h.cleanUp(); try? FileManager.default.removeItem(atPath: root) }
        do {
            let manifest = try await Backup.run(h.store, to: root + "/b")
            let pg = try await db.store()
            defer { pg.shutdown() }
            let blob = try XCTUnwrap(manifest.files.first { $0.path.hasPrefix("blobs/") })
            let path = root + "/b/" + blob.path
            var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
            bytes[bytes.count / 2] ^= 0xFF
            try bytes.write(to: URL(fileURLWithPath: path))
            await assertThrows(try await pg.restore(from: root + "/b")) { XCTAssertTrue("\($0)".contains(blob.path), "\($0)") }
            await assertEqual(try await pg.userCount(), 0)
            await assertEqual(try await pg.allPackages().count, 0)
            XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: db.blobs + "/blobs").filter { $0.hasSuffix(".amr") }, [])

            // Rows PostgreSQL refuses (a row the rules forbid, planted in the backup's database
            // and its manifest made to match): the transaction rolls back, the blobs go again.
            let fresh = try await Backup.run(h.store, to: root + "/c")
            let dbPath = root + "/c/courier.sqlite"
            let q = try DatabaseQueue(path: dbPath)
            try await q.write { try $0.execute(sql: "INSERT INTO user (name, passwordHash, role, createdAt, disabled) VALUES ('CI', 'x', 'reviewer', '2026-01-01 00:00:00.000', 0)") }
            try q.close()
            try rewriteManifest(root + "/c", fresh)
            await assertThrows(try await pg.restore(from: root + "/c")) { XCTAssertTrue("\($0)".contains("PostgreSQL refused"), "\($0)") }
            await assertEqual(try await pg.userCount(), 0)
            XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: db.blobs + "/blobs").filter { $0.hasSuffix(".amr") }, [])
        } catch {
            await db.drop()
            throw error
        }
        await db.drop()
    }

    /// The manifest's entry for the database, brought in line with a file changed on purpose.
    func rewriteManifest(_ dir: String, _ manifest: BackupManifest) throws {
        var m = manifest
        let db = try Backup.hashFile(dir + "/courier.sqlite", as: "courier.sqlite")
        m.files = m.files.map { $0.path == "courier.sqlite" ? db : $0 }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .iso8601
        try e.encode(m).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    }
}
