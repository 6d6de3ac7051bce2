import CourierCore
import CourierDomain
@testable import CourierPostgres
import CourierStore
import CourierTestSupport
import Foundation
import Logging
import PostgresNIO
import XCTest
@testable import CourierWeb

/// A fresh database on the test cluster (`make test` starts one: tests/pg/cluster.sh, its admin
/// URL in COURIER_TEST_POSTGRES), dropped afterwards.
struct PostgresTestDatabase {
    let url: String
    let name: String
    let admin: String
    let blobs: String

    static func make() async throws -> PostgresTestDatabase {
        guard let admin = ProcessInfo.processInfo.environment["COURIER_TEST_POSTGRES"] else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("CI runs make test, which starts PostgreSQL for these tests") }
            throw XCTSkip("no PostgreSQL: run through `make test`, or set COURIER_TEST_POSTGRES to an admin URL")
        }
        let name = "courier_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await Self.admin(admin) { try await $0.query("CREATE DATABASE \(unescaped: name)") }
        let base = try XCTUnwrap(admin.range(of: "/", options: .backwards)).lowerBound
        return PostgresTestDatabase(url: String(admin[..<base]) + "/" + name, name: name, admin: admin, blobs: temporaryDirectory())
    }

    func store() async throws -> PostgresStore {
        try await PostgresStore(url: url, blobDirectory: blobs, logger: Logger(label: "test"))
    }

    func drop() async {
        try? await Self.admin(admin) { try await $0.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)") }
        try? FileManager.default.removeItem(atPath: blobs)
    }

    static func admin(_ url: String, _ body: (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: try PostgresURL(url).configuration, backgroundLogger: Logger(label: "test"))
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        try await body(client)
    }
}

/// The areas PostgresStore implements so far, held to the same contract as the SQLite store
/// (StoreContractTests runs the same functions on it), plus what only several writers show.
final class PostgresStoreTests: XCTestCase {
    func withStore(_ body: (PostgresStore, PostgresTestDatabase) async throws -> Void) async throws {
        let db = try await PostgresTestDatabase.make()
        do {
            let store = try await db.store()
            defer { store.shutdown() }
            try await body(store, db)
        } catch {
            await db.drop()
            throw error
        }
        await db.drop()
    }

    func testLeases() async throws { try await withStore { s, _ in try await AreaContracts.leases(s) } }
    func testAccounts() async throws { try await withStore { s, _ in try await AreaContracts.accounts(s) } }
    func testAudit() async throws { try await withStore { s, _ in try await AreaContracts.audit(s) } }
    func testCatalogue() async throws { try await withStore { s, _ in try await AreaContracts.catalogue(s) } }
    func testReleases() async throws { try await withStore { s, _ in try await AreaContracts.releases(s) } }
    func testHealth() async throws { try await withStore { s, _ in try await AreaContracts.health(s) } }
    /// Two nodes running the same ramp at once take each step once.
    func testRamps() async throws {
        try await withStore { a, db in
            let b = try await db.store()
            defer { b.shutdown() }
            try await AreaContracts.ramps(a, b)
        }
    }
    func testImports() async throws { try await withStore { s, _ in try await AreaContracts.imports(s) } }
    func testPatches() async throws { try await withStore { s, _ in try await AreaContracts.patches(s) } }
    func testCatalogueVersion() async throws {
        try await withStore { s, _ in
            await assertEqual(try await s.catalogueVersion(), 0)
            _ = try await s.change(by: .commandLine, "test.catalogue", subject: "x") { _ in ((), [:]) }
            await assertEqual(try await s.catalogueVersion(), 1)
            _ = try await s.change(by: .commandLine, "test.people", subject: "x", catalogue: false) { _ in ((), [:]) }
            await assertEqual(try await s.catalogueVersion(), 1)
        }
    }

    func testSeveralNodesStartingTogetherMigrateOnce() async throws {
        let db = try await PostgresTestDatabase.make()
        defer { Task { await db.drop() } }
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<4 { group.addTask { try await db.store() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        defer { stores.forEach { $0.shutdown() } }
        let applied = try await stores[0].all("SELECT COUNT(*) FROM courier_migration", as: Int64.self).first
        XCTAssertEqual(applied, Int64(PostgresSchema.migrations.count))
        await assertEqual(try await stores[3].userCount(), 0)
    }

    /// Two nodes admitting 120 devices to a window of 20 at once: exactly 20.
    func testATimeWindowAdmitsExactlyItsCountAcrossNodes() async throws {
        try await withStore { a, db in
            let b = try await db.store()
            defer { b.shutdown() }
            let task = try await Self.plantTimeWindow(a)
            let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for n in 0..<120 { group.addTask { try await (n % 2 == 0 ? a : b).admit(task: task, device: "d-\(n)", limit: 20, now: Date()) } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(admitted, 20)
            await assertEqual(try await a.all("SELECT COUNT(*) FROM admission", as: Int64.self).first, 20)
            await assertEqual(try await b.admittedDevices(task: task), 20, "the count the database keeps")
            let first = try await a.all("SELECT device_id FROM admission LIMIT 1", as: String.self).first ?? ""
            await assertTrue(try await b.admit(task: task, device: first, limit: 20, now: Date()), "an admitted device stays admitted")
            await assertFalse(try await b.admit(task: task, device: "late", limit: 20, now: Date().addingTimeInterval(7200)))
        }
    }

    /// Two nodes disabling the last two administrators at once: one of them stays.
    func testTheLastAdministratorStaysUnderConcurrentWriters() async throws {
        try await withStore { a, db in
            let b = try await db.store()
            defer { b.shutdown() }
            _ = try await a.createUser(name: "root", passwordHash: "x", role: .admin, by: .commandLine)
            _ = try await a.createUser(name: "root2", passwordHash: "x", role: .admin, by: .commandLine)
            for _ in 0..<5 {
                async let one: Bool = (try? await a.setDisabled("root", true, by: .commandLine)) != nil
                async let two: Bool = (try? await b.setDisabled("root2", true, by: .commandLine)) != nil
                let (x, y) = await (one, two)
                XCTAssertEqual([x, y].filter { $0 }.count, 1, "exactly one of the two was disabled")
                await assertEqual(try await a.users().filter { $0.role == .admin && !$0.disabled }.count, 1)
                _ = try await a.setDisabled(x ? "root" : "root2", false, by: .commandLine)
            }
            await assertTrue(try await a.verifyAudit().isValid)
        }
    }

    /// Sequences leave gaps (a rolled-back change); a gap is not a deleted row, a missing link is.
    func testTheAuditChainToleratesGapsAndFindsDeletedRows() async throws {
        try await withStore { s, _ in
            for n in 0..<4 { _ = try await s.createUser(name: "u\(n)", passwordHash: "x", role: .developer, by: .commandLine) }
            await assertThrows(try await s.createUser(name: "U1", passwordHash: "x", role: .developer, by: .commandLine))
            // A change whose transaction rolls back after its audit row took an id.
            await assertThrows(try await s.change(by: .commandLine, "test.fail", subject: "x", catalogue: false) { c -> ((), detail: [String: String]) in
                try await PostgresStore.audit(c, by: .commandLine, "test.inner", subject: "x", detail: [:], logger: Logger(label: "t"))
                throw Conflict("no")
            })
            _ = try await s.createUser(name: "u9", passwordHash: "x", role: .developer, by: .commandLine)
            let ids = try await s.all("SELECT id FROM audit ORDER BY id", as: Int64.self)
            XCTAssertEqual(ids.count, 5)
            XCTAssertNotEqual(ids.last, Int64(ids.count), "the sequence left a gap")
            await assertEqual(try await s.verifyAudit(), AuditVerification(rows: 5, firstBadRow: nil))
            try await s.client.query("DELETE FROM audit WHERE id = \(ids[2])")
            await assertEqual(try await s.verifyAudit(), AuditVerification(rows: 3, firstBadRow: ids[2], missing: true))
        }
        try await withStore { s, _ in
            for n in 0..<3 { _ = try await s.createUser(name: "u\(n)", passwordHash: "x", role: .developer, by: .commandLine) }
            let ids = try await s.all("SELECT id FROM audit ORDER BY id", as: Int64.self)
            try await s.client.query("DELETE FROM audit WHERE id = \(ids[2])")
            await assertEqual(try await s.verifyAudit(), AuditVerification(rows: 2, firstBadRow: ids[2], missing: true), "the tail")
            try await s.client.query(#"UPDATE audit SET "user" = 'mallory' WHERE id = \#(ids[1])"#)
            await assertEqual(try await s.verifyAudit(), AuditVerification(rows: 2, firstBadRow: ids[1]), "a changed row")
        }
    }

    /// The sign-in throttle counts on the database: guesses spread over two nodes are counted
    /// together, parallel ones included, and a success on one node clears the pair on both.
    func testTheSignInThrottleIsSharedByTheNodes() async throws {
        try await withStore { a, db in
            let b = try await db.store()
            defer { b.shutdown() }
            let nodes = [LoginThrottle(ledger: a.signInLedger), LoginThrottle(ledger: b.signInLedger)]
            func reserve(_ n: Int, _ name: String, _ address: String) async throws -> LoginThrottle.Ticket? {
                do {
                    if case .success(let t) = try await nodes[n % 2].reserve(name: name, address: address) { return t }
                } catch { XCTFail(String(reflecting: error)); throw error }
                return nil
            }
            // Forty parallel guesses for one name from one address, over both nodes: five pass.
            let passed = try await withThrowingTaskGroup(of: Bool.self) { group in
                for n in 0..<40 { group.addTask { try await reserve(n, "alice", "10.0.0.1") != nil } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(passed, 5)
            for n in 0..<2 { await assertNil(try await reserve(n, "alice", "10.0.0.1"), "locked on node \(n)") }
            await assertNotNil(try await reserve(1, "alice", "10.0.0.2"), "another address is not locked out")
            // A success through B clears bob's pair for A too.
            for n in 0..<4 { _ = try await reserve(n, "bob", "10.0.0.3") }
            let ok = try await reserve(1, "bob", "10.0.0.3")
            try await nodes[1].succeeded(try XCTUnwrap(ok))
            await assertNotNil(try await reserve(0, "bob", "10.0.0.3"), "B's success counted on A")
            // Twenty failures from one address, any names, close it on both nodes.
            for n in 0..<20 { _ = try await reserve(n, "name\(n)", "10.0.0.4") }
            for n in 0..<2 { await assertNil(try await reserve(n, "new\(n)", "10.0.0.4")) }
            // Rows older than the window go.
            let old = Date().addingTimeInterval(-3600)
            _ = try await a.reserveSignIn([("pair:old", 5)], window: 900, now: old)
            _ = try await a.reserveSignIn([("pair:other", 5)], window: 900, now: Date())
            await assertEqual(try await a.all("SELECT COUNT(*) FROM sign_in_attempt WHERE key = \(TokenHash.of("pair:old"))", as: Int64.self).first, 0)
        }
    }

    /// A database that cannot be reached is said in a sentence, in seconds, without the password.
    func testAnUnreachableDatabaseIsSaidPlainlyAndQuickly() async throws {
        let client = PostgresClient(configuration: try PostgresURL("postgres://courier:s3cret@127.0.0.1:1/courier").configuration,
                                    backgroundLogger: Logger(label: "test"))
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        let start = Date()
        await assertThrows(try await PostgresStore.reach(client, at: "postgres://courier@127.0.0.1:1/courier", within: 1, logger: Logger(label: "t"))) {
            XCTAssertTrue("\($0)".contains("Cannot reach PostgreSQL at postgres://courier@127.0.0.1:1/courier"), "\($0)")
            XCTAssertFalse("\($0)".contains("s3cret"))
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testTheURLIsReadAndItsPasswordNeverShown() throws {
        let u = try PostgresURL("postgres://courier:s%40cret@db.example:6432/courier?sslmode=require")
        XCTAssertEqual([u.host, u.username, u.database, u.password ?? ""], ["db.example", "courier", "courier", "s@cret"])
        XCTAssertEqual(u.port, 6432)
        XCTAssertTrue(u.requireTLS)
        XCTAssertEqual(u.redacted, "postgres://courier@db.example:6432/courier")
        XCTAssertFalse(try PostgresURL("postgres://c@h/d").requireTLS, "TLS is off unless asked for")
        for bad in ["mysql://a@b/c", "postgres://h/d", "postgres:///d", "postgres://a@h/d?sslmode=verify-full", "not a url"] {
            XCTAssertThrowsError(try PostgresURL(bad), bad)
        }
    }

    /// A releasing time window ending in an hour, planted by hand (the release area is not on
    /// PostgreSQL yet).
    static func plantTimeWindow(_ s: PostgresStore) async throws -> Int64 {
        try await s.client.query("INSERT INTO app (id, name, created_at) VALUES ('20171228', 'Checkout', now())")
        let package = try await s.all("""
            INSERT INTO package (app_id, version, version_key, type, extend_info, download_policy, install_policy, status, blob, size, md5,
                                 tar_offset, tar_size, file_count, created_at, created_by)
            VALUES ('20171228', '1.0.0.1', '00001.00000.00000.00001', 'normal', '{}', 'wifi', 'lazy', 'grayReleasing', 'b', 1, 'm', 0, 0, 0, now(), 'ci')
            RETURNING id
            """, as: Int64.self).first ?? 0
        return try await s.all("""
            INSERT INTO task (package_id, app_id, version, type, mode, whitelist_ids, end_time, user_count, rules, description_markdown,
                              status, rolled_back, created_by, created_at)
            VALUES (\(package), '20171228', '1.0.0.1', 'gray', 'timeWindow', '[]', \(Date().addingTimeInterval(3600)), 20, '[]', '',
                    'releasing', false, 'ci', now())
            RETURNING id
            """, as: Int64.self).first ?? 0
    }
}

/// The contract of each area, as functions of the area's protocol: StoreContractTests runs them
/// on the SQLite store, PostgresStoreTests on PostgreSQL.
enum AreaContracts {
    static func leases(_ store: some NodeStore) async throws {
        let now = Date()
        await assertTrue(try await store.acquireLease("housekeeping", holder: "a", for: 60, now: now))
        await assertFalse(try await store.acquireLease("housekeeping", holder: "b", for: 60, now: now.addingTimeInterval(30)))
        await assertTrue(try await store.acquireLease("housekeeping", holder: "a", for: 60, now: now.addingTimeInterval(30)), "renewed")
        await assertFalse(try await store.acquireLease("housekeeping", holder: "b", for: 60, now: now.addingTimeInterval(80)),
                          "the renewal moved the expiry")
        await assertTrue(try await store.acquireLease("housekeeping", holder: "b", for: 60, now: now.addingTimeInterval(91)),
                         "taken over once expired")
        try await store.releaseLease("housekeeping", holder: "a")   // not a's any more: nothing happens
        await assertFalse(try await store.acquireLease("housekeeping", holder: "a", for: 60, now: now.addingTimeInterval(92)))
        try await store.releaseLease("housekeeping", holder: "b")
        await assertTrue(try await store.acquireLease("housekeeping", holder: "a", for: 60, now: now.addingTimeInterval(93)), "given up")
        // Many asking at once: exactly one gets it.
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<20 { group.addTask { try await store.acquireLease("sweep", holder: "n\(n)", for: 60) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(winners, 1)
    }

    static func accounts(_ store: some AccountStore) async throws {
        let before = try await store.userCount()
        let root = try await store.createFirstAdmin(name: "root-\(before)", passwordHash: "h0")
        XCTAssertEqual(root.role, .admin)
        XCTAssertNotNil(root.id)
        await assertThrows(try await store.createFirstAdmin(name: "second", passwordHash: "h"), "only while no user exists")
        _ = try await store.createUser(name: "dan", passwordHash: "h1", role: .developer, by: .commandLine)
        await assertThrows(try await store.createUser(name: "Dan", passwordHash: "h", role: .developer, by: .commandLine)) {
            XCTAssertTrue("\($0)".contains("differ only in case"), "\($0)")
        }
        await assertEqual(try await store.user(named: "dan")?.passwordHash, "h1")
        await assertNil(try await store.user(named: "nobody"))
        // Sessions: found by their cookie, gone with sign-out, refused once the user is disabled.
        let dan = try unwrapped(try await store.user(named: "dan"))
        let (cookie, session) = try await store.createSession(userId: try XCTUnwrap(dan.id), lifetime: 3600)
        await assertEqual(try await store.session(cookie: cookie)?.0.csrfToken, session.csrfToken)
        await assertEqual(try await store.session(cookie: cookie)?.1.name, "dan")
        await assertNil(try await store.session(cookie: cookie + "x"))
        // Tokens: the secret opens, the hash is stored, revoking is once.
        let secret = try await store.createToken(userName: "dan", name: "CI", scopes: [.read, .upload], by: .commandLine)
        let found = try unwrapped(try await store.token(secret: secret))
        XCTAssertEqual(found.0.scopeSet, [.read, .upload])
        XCTAssertEqual(found.0.name, "CI")
        XCTAssertEqual(found.1.name, "dan")
        await assertTrue(try await store.tokenHashes().contains(TokenHash.of(secret)))
        try await store.touchToken(try XCTUnwrap(found.0.id), at: Date(timeIntervalSince1970: 1_800_000_000))
        let listed = try await store.tokens(of: "dan")
        XCTAssertEqual(listed.map(\.user), ["dan"])
        XCTAssertEqual(listed.first?.0.lastUsedAt, Date(timeIntervalSince1970: 1_800_000_000))
        let everyone = try await store.tokens(of: nil).count, rootTokens = try await store.tokens(of: root.name).count
        XCTAssertEqual(everyone, listed.count + rootTokens)
        await assertThrows(try await store.revokeToken(try XCTUnwrap(found.0.id), owner: "someone else", by: .commandLine))
        let revoked = try await store.revokeToken(try XCTUnwrap(found.0.id), owner: "dan", by: .commandLine)
        XCTAssertNotNil(revoked.revokedAt)
        await assertThrows(try await store.revokeToken(try XCTUnwrap(found.0.id), owner: nil, by: .commandLine)) { XCTAssertTrue($0 is Conflict) }
        // People: roles, disabling (signs out), the last administrator, passwords.
        _ = try await store.setRole("dan", .reviewer, by: .commandLine)
        await assertEqual(try await store.user(named: "dan")?.role, .reviewer)
        _ = try await store.setDisabled("dan", true, by: .commandLine)
        await assertNil(try await store.session(cookie: cookie), "disabling signs out")
        await assertThrows(try await store.setRole(root.name, .developer, by: .commandLine)) { XCTAssertTrue($0 is Conflict, "\($0)") }
        await assertThrows(try await store.setDisabled(root.name, true, by: .commandLine)) {
            XCTAssertTrue("\($0)".contains("\(root.name) is the last active administrator"), "\($0)")
        }
        await assertThrows(try await store.setRole("nobody", .admin, by: .commandLine)) { XCTAssertTrue($0 is NotFound) }
        _ = try await store.setDisabled("dan", false, by: .commandLine)
        let again = try await store.createToken(userName: "dan", scopes: [.read], by: .commandLine)
        _ = try await store.resetPassword("dan", passwordHash: "h2", revokeTokens: true, by: .commandLine)
        await assertEqual(try await store.user(named: "dan")?.passwordHash, "h2")
        await assertNotNil(try await store.token(secret: again)?.0.revokedAt, "reset with revoking")
        let (keep, _) = try await store.createSession(userId: try XCTUnwrap(dan.id), lifetime: 3600)
        let (other, _) = try await store.createSession(userId: try XCTUnwrap(dan.id), lifetime: 3600)
        try await store.changeOwnPassword("dan", passwordHash: "h3", keep: TokenHash.of(keep), by: .commandLine)
        await assertNotNil(try await store.session(cookie: keep), "the session that changed it stays")
        await assertNil(try await store.session(cookie: other), "every other session ends")
        try await store.deleteSession(cookie: keep)
        await assertNil(try await store.session(cookie: keep))
        await assertEqual(try await store.users().map(\.name), [root.name, "dan"].sorted())
    }

    static func audit(_ store: some AuditStore & AccountStore) async throws {
        let start = try await store.verifyAudit().rows
        _ = try await store.createUser(name: "amy", passwordHash: "h", role: .developer, by: ActingUser(name: "root", role: .admin))
        _ = try await store.setRole("amy", .reviewer, by: ActingUser(name: "root", role: .admin))
        _ = try await store.createToken(userName: "amy", name: "50%_off", scopes: [.read], by: ActingUser(name: "amy", role: .reviewer))
        let entries = try await store.auditEntries(limit: 3)
        XCTAssertEqual(entries.map(\.action), ["token.create", "user.role", "user.create"])
        await assertEqual(try await store.auditEntries(subject: "amy", actionPrefix: "user.").map(\.action), ["user.create", "user.role"])
        let head = try unwrapped(try await store.auditHead())
        XCTAssertEqual(head.row, entries.first?.id)
        await assertEqual(try await store.auditHash(row: head.row), head.hash)
        await assertEqual(try await store.verifyAudit(), AuditVerification(rows: start + 3, firstBadRow: nil))
        let byUser = try await store.auditPage(AuditFilter(user: "amy"), page: 1, perPage: 50)
        XCTAssertEqual(byUser.items.map(\.action), ["token.create"])
        await assertEqual(try await store.auditPage(AuditFilter(app: "amy", kind: "user"), page: 1, perPage: 1).total, 2)
        await assertEqual(try await store.auditPage(AuditFilter(app: "amy", kind: "user"), page: 9, perPage: 1).page, 2,
                          "a page past the end shows the last")
        await assertEqual(try await store.auditRows(AuditFilter(app: "AMY"), limit: 10).count, 3, "the app filter looks in the subject, any case")
        await assertEqual(try await store.auditRows(AuditFilter(app: "%"), limit: 10).count, 0, "a % is a %")
        let choices = try await store.auditChoices()
        XCTAssertTrue(Set(choices.users).isSuperset(of: ["amy", "root"]), "\(choices.users)")
        XCTAssertTrue(Set(choices.kinds).isSuperset(of: ["token", "user"]), "\(choices.kinds)")
    }
}

extension AreaContracts {
    /// A package of `version` committed the way an upload does: its `.amr` (here `content`)
    /// from the blob folder's tmp/, its files, the current signing key.
    static func commit(_ store: some CatalogueStore, _ version: String, type: PackageType = .normal, content: String? = nil,
                       fingerprint: String? = nil) async throws -> PackageRecord {
        let bytes = content ?? "amr of \(version)"
        let temp = store.blobs.temporaryPath(suffix: ".amr")
        XCTAssertTrue(FileManager.default.createFile(atPath: temp, contents: Data(bytes.utf8)))
        let v = try PackageVersion(validating: version)
        var p = PackageRecord(stored: "20171228", version: version, versionKey: PackageRecord.versionKey(v), type: type, createdBy: "ci")
        p.blob = TokenHash.of(bytes); p.size = Int64(bytes.utf8.count); p.md5 = "md5"; p.fileCount = 2
        let files = [PackageFileRecord(packageId: 0, path: "www/index.html", size: 10, sha256: "a", tarOffset: 512),
                     PackageFileRecord(packageId: 0, path: "www/app.js", size: 20, sha256: "b", tarOffset: 1024)]
        let key: String?
        if let fingerprint { key = fingerprint } else { key = try await store.settings().signingKeyFingerprint }
        return try await store.commitPackage(amrAt: temp, p, files: files, signedWith: key, by: .commandLine)
    }

    static func catalogue(_ store: some CatalogueStore) async throws {
        try await store.ping()
        await assertNil(try await store.settings().virtualDomain)
        await assertEqual(try await store.setVirtualDomain("h5app.example.com", by: .commandLine).virtualDomain, "h5app.example.com")
        _ = try await store.setVirtualDomain("h5app.example.com", by: .commandLine)   // the same again: nothing changes
        await assertThrows(try await store.setVirtualDomain("other.example.com", by: .commandLine)) { XCTAssertEqual(($0 as? Conflict)?.field, "virtualDomain") }
        _ = try await store.setGlobalLocation(host: "mcube.example.com", appKey: "k1", by: .commandLine)
        // Apps.
        let app = try await store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        XCTAssertEqual(app.id, "20171228")
        await assertThrows(try await store.createApp(id: AppID(trusted: "20171228"), name: "Again", by: .commandLine)) {
            XCTAssertEqual(($0 as? Conflict)?.field, "id")
        }
        await assertEqual(try await store.renameApp("20171228", name: "Checkout 2", by: .commandLine).name, "Checkout 2")
        await assertThrows(try await store.renameApp("20000001", name: "x", by: .commandLine)) { XCTAssertTrue($0 is NotFound) }
        // Packages: versions only go up, the first fixes the type, a refused one leaves no blob.
        let p1 = try await commit(store, "1.0.0.1")
        let p2 = try await commit(store, "1.0.0.2")
        await assertThrows(try await commit(store, "1.0.0.1", content: "refused")) { XCTAssertEqual(($0 as? FieldError)?.field, "version") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.blobs.path(for: TokenHash.of("refused"))))
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.blobs.path(for: p1.blob)))
        await assertThrows(try await commit(store, "1.0.0.3", type: .global)) { XCTAssertEqual(($0 as? FieldError)?.field, "type") }
        await assertThrows(try await commit(store, "1.0.0.3", fingerprint: "an old key")) { XCTAssertEqual(($0 as? FieldError)?.field, "file") }
        await assertEqual(try await store.app("20171228")?.type, .normal)
        await assertEqual(try await store.facts(of: "20171228").highestVersion?.description, "1.0.0.2")
        await assertEqual(try await store.packages(of: "20171228").map(\.version), ["1.0.0.2", "1.0.0.1"])
        let read = try unwrapped(try await store.package("20171228", "1.0.0.1"))
        XCTAssertEqual([read.blob, read.md5, read.createdBy, read.versionKey], [p1.blob, "md5", "ci", p1.versionKey])
        XCTAssertEqual(read.id, p1.id)
        let id = try unwrapped(p1.id)
        await assertEqual(try await store.files(of: id).map(\.path), ["www/app.js", "www/index.html"])
        let second = try await store.files(of: id, page: 2, perPage: 1)
        XCTAssertEqual([second.total, second.page, second.items.count], [2, 2, 1])
        XCTAssertEqual(second.items.first?.path, "www/index.html")
        await assertEqual(try await store.file(of: id, path: "www/app.js")?.tarOffset, 1024)
        await assertNil(try await store.file(of: id, path: "www/none.js"))
        let counts = try await store.packageCounts()
        XCTAssertEqual([counts.all, counts.global], [2, 0])
        await assertTrue(try await store.isBlobReferenced(p2.blob))
        await assertFalse(try await store.isBlobReferenced(TokenHash.of("nothing")))
        let listed = try await store.apps(search: "CHECK", page: 1)
        XCTAssertEqual(listed.items.map(\.id), ["20171228"])
        XCTAssertEqual(listed.items.first?.packageCount, 2)
        XCTAssertEqual(listed.items.first?.latestVersion, "1.0.0.2")
        XCTAssertEqual(listed.items.first?.latestStatus, .toBeReleased)
        await assertEqual(try await store.apps(search: "%", page: 1).total, 0, "a % is a %")
        await assertEqual(try await store.batchReleaseCandidates(search: "", limit: 10).map(\.newest.version), ["1.0.0.2"])
        await assertEqual(try await store.allApps().map(\.name), ["Checkout 2"])
        await assertTrue(try await store.allAppsStrictly().unreadable.isEmpty)
        await assertEqual(try await store.allPackages().count, 2)
        await assertTrue(try await store.packagesWithTasks().isEmpty, "no task names them")
        // The signing key switch rewrites packages' .amr facts in the same change.
        let resigned = ResignedPackage(packageId: id, oldBlob: p1.blob, blob: p1.blob, size: 99, md5: "m2", tarOffset: 7)
        let switched = try await store.withBlobLock {
            try await store.switchSigningKey(pem: "PEM", fingerprint: "fp2", resigned: [resigned], by: .commandLine)
        }
        XCTAssertEqual(switched.signingKeyFingerprint, "fp2")
        await assertEqual(try await store.settings().signingKeyPEM, "PEM")
        await assertEqual(try await store.package("20171228", "1.0.0.1")?.md5, "m2")
        await assertEqual(try await store.package("20171228", "1.0.0.1")?.size, 99)
        // The sweep: an orphan blob goes, referenced ones stay.
        let orphan = store.blobs.temporaryPath(suffix: ".amr")
        XCTAssertTrue(FileManager.default.createFile(atPath: orphan, contents: Data("orphan".utf8)))
        try store.blobs.adopt(orphan, sha256: TokenHash.of("orphan"))
        let swept = try await store.sweep()
        XCTAssertEqual(swept.orphanBlobs, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.blobs.path(for: p2.blob)))
        await assertEqual(try await store.setGlobalLocation(host: "other.example.com", appKey: "k2", by: .commandLine).globalHost,
                          "other.example.com", "no global package uses the location yet")
    }
}

extension AreaContracts {
    /// Release health (SPEC §5): reports counted once per device, kind and hour, by the hour; a
    /// failed trial reported both ways counts once; sketches merge idempotently; storage is pruned.
    static func health(_ store: some CatalogueStore & ReleaseStore & AuditStore) async throws {
        _ = try await store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        let p = try await commit(store, "1.0.0.1")
        let ci = ActingUser(name: "ci", role: .developer)
        let task = try unwrapped(try await store.createTask(TaskRecord(package: p, kind: .gray(.percentage(50), rules: []), description: "",
                                                                       createdBy: "ci"), by: ci).id)
        let now = Date()
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        for d in 0..<5 { _ = try await store.countEvent(task: task, "install_ok", device: "d\(d)", now: now) }
        _ = try await store.countEvent(task: task, "install_ok", device: "d0", now: now)          // a repeat
        _ = try await store.countEvent(task: task, "install_ok", device: "d0", now: now.addingTimeInterval(3600))   // the next hour
        _ = try await store.countEvent(task: task, "trial_failed", device: "d1", now: now)
        try await store.recordGaveUp([(task: task, device: DeviceKey.of("d1")), (task: task, device: DeviceKey.of("d2"))])
        _ = try await store.countEvent(task: task, "patch_failed", device: "d3", now: now)        // not a health kind
        await assertFalse(try await store.countEvent(task: task + 100, "install_ok", device: "d0", now: now), "an unknown task counts nothing")
        var hours = try await store.healthHours(task: task)
        XCTAssertEqual(hours.map(\.hour), [hour, hour + 1])
        XCTAssertEqual(hours.first?.installs, 5)
        XCTAssertEqual(hours.first?.trialFailed, 2, "d1 reported its failed trial twice (event and update request): once")
        XCTAssertEqual(hours.last?.installs, 1)
        XCTAssertEqual(ReleaseHealth(hours: hours).failures, 2)
        // Checks: two nodes' sketches of the same devices, one flushed twice, count once.
        var a = HyperLogLog(), b = HyperLogLog()
        for d in 0..<300 { a.insert("dev-\(d)") }
        for d in 200..<400 { b.insert("dev-\(d)") }
        let key = AdoptionKey(appId: "20171228", version: "1.0.0.1")
        try await store.mergeSketches(hour: hour, checks: [task: a, task + 100: a], adoption: [key: a])
        try await store.mergeSketches(hour: hour, checks: [task: a], adoption: [key: a])
        try await store.mergeSketches(hour: hour, checks: [task: b], adoption: [key: b])
        hours = try await store.healthHours(task: task)
        XCTAssertEqual(Double(hours.first?.checks ?? 0), 400, accuracy: 12)
        let adoption = try await store.adoption(app: "20171228", sinceHour: hour - 24)
        XCTAssertEqual(Double(adoption["1.0.0.1"]?.estimate ?? 0), 400, accuracy: 12)
        await assertEqual(try await store.adoption(app: "2017122", sinceHour: hour - 24).count, 0, "another app's prefix is not this app")
        // A day later the sketches go, the counters stay; thirty days later the counters go too.
        try await store.pruneHealth(now: now.addingTimeInterval(26 * 3600))
        await assertEqual(try await store.adoption(app: "20171228", sinceHour: 0).count, 0)
        await assertEqual(try await store.healthHours(task: task).count, 2)
        try await store.pruneHealth(now: now.addingTimeInterval(Double(ReleaseHealth.maxHours + 2) * 3600))
        await assertEqual(try await store.healthHours(task: task).count, 0)
        // Revoking: the released version's unfinished task is finished; once only; never for a version never released.
        let revoked = try await store.revoke("20171228", "1.0.0.1", reason: "broken", by: ci)
        XCTAssertEqual(revoked.reason, "broken")
        await assertEqual(try await store.revocations()[p.id ?? 0]?.revokedBy, "ci")
        await assertEqual(try await store.task(task)?.taskStatus, .finished)
        await assertThrows(try await store.revoke("20171228", "1.0.0.1", reason: "again", by: ci)) { XCTAssertTrue($0 is Conflict, "\($0)") }
        _ = try await commit(store, "1.0.0.2")
        await assertThrows(try await store.revoke("20171228", "1.0.0.2", reason: "never released", by: ci)) { XCTAssertTrue($0 is Conflict, "\($0)") }
        await assertThrows(try await store.revoke("20171228", "9.0.0.0", reason: "x", by: ci)) { XCTAssertTrue($0 is NotFound, "\($0)") }
        await assertEqual(try await store.revocations().count, 1)
        // The webhook: one row, replaced, removed.
        await assertNil(try await store.webhook())
        _ = try await store.setWebhook(url: "https://a.example/x", secret: "s1", by: .commandLine)
        _ = try await store.setWebhook(url: "https://b.example/y", secret: "s2", by: .commandLine)
        await assertEqual(try await store.webhook()?.url, "https://b.example/y")
        await assertEqual(try await store.webhook()?.secret, "s2")
        _ = try await store.setWebhook(url: nil, secret: "", by: .commandLine)
        await assertNil(try await store.webhook())
    }

    /// Scheduled ramps (SPEC §5) run by `Actions.runRamps` on two nodes (`a`, `b`; the same store
    /// for SQLite): a step runs once however many runs get to it, as user `courier`; the next step
    /// counts its delay from when the last one was taken; the health gate pauses with its numbers;
    /// a promotion waits for a reviewer when the settings ask for one.
    static func ramps(_ a: Store, _ b: Store) async throws {
        _ = try await a.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        let p = try await commit(a, "1.0.0.1")
        var record = TaskRecord(package: p, kind: .gray(.percentage(1), rules: []), description: "", createdBy: "ci")
        let start = Date().addingTimeInterval(-600)
        record.ramp = RampPlan(steps: [.init(percentage: 20, afterMinutes: 60), .init(percentage: 60, afterMinutes: 60),
                                       .init(percentage: nil, promote: true, afterMinutes: 60)], threshold: 5, since: start).json
        let id = try unwrapped(try await a.createTask(record, by: ActingUser(name: "ci", role: .developer)).id)
        let nodeA = Actions(store: a), nodeB = Actions(store: b)
        await assertEqual(try await nodeA.runRamps(now: start.addingTimeInterval(59 * 60)).count, 0, "not due yet")
        // Down for three hours: at start two nodes at once take one step, not two or three.
        let late = start.addingTimeInterval(3 * 3600)
        async let one = nodeA.runRamps(now: late)
        async let two = nodeB.runRamps(now: late)
        let taken = try await one.count + two.count
        XCTAssertEqual(taken, 1)
        var t = try await a.task(id)
        XCTAssertEqual(t?.percentage, 20)
        XCTAssertEqual(try t?.rampPlan()?.done, 1)
        await assertEqual(try await nodeB.runRamps(now: late.addingTimeInterval(59 * 60)).count, 0, "the next step counts from when this one was taken")
        let entries = try await a.auditEntries(subject: String(id), actionPrefix: "task.ramp")
        XCTAssertEqual(entries.map(\.user), ["courier"])
        // Failures past the threshold: the gate pauses it, says why, and takes no step.
        let now = Date()
        for d in 0..<40 { _ = try await a.countEvent(task: id, "install_ok", device: "ok\(d)", now: now) }
        for d in 0..<15 { _ = try await a.countEvent(task: id, "trial_failed", device: "bad\(d)", now: now) }
        let paused = try await nodeA.runRamps(now: late.addingTimeInterval(2 * 3600))
        XCTAssertEqual(paused.count, 1)
        t = try await a.task(id)
        XCTAssertEqual(t?.taskStatus, .paused)
        XCTAssertEqual(t?.percentage, 20, "no step was taken")
        let gate = try await a.auditEntries(subject: String(id), actionPrefix: "task.ramp").first { $0.detail.contains("gate") }
        XCTAssertTrue(gate?.detail.contains("15 failures in 55") == true, gate?.detail ?? "no gate row")
        await assertEqual(try await nodeB.runRamps(now: late.addingTimeInterval(3 * 3600)).count, 0, "a paused ramp stays paused")
        // Healthy again (many more installs), resumed: the steps go on; the promotion waits for a reviewer.
        for d in 0..<1500 { _ = try await a.countEvent(task: id, "install_ok", device: "more\(d)", now: now) }
        _ = try await a.setApprovalRules(official: true, gray: false, by: .commandLine)
        _ = try await a.operate(task: id, .resume, by: .commandLine)
        await assertEqual(try await nodeA.runRamps(now: late.addingTimeInterval(4 * 3600)).count, 1)
        await assertEqual(try await nodeB.runRamps(now: late.addingTimeInterval(6 * 3600)).count, 1)
        t = try await a.task(id)
        XCTAssertEqual(t?.approvalState, .awaiting, "the promotion waits for a reviewer")
        XCTAssertFalse(t?.isOfficial ?? true)
        await assertEqual(try await nodeA.runRamps(now: late.addingTimeInterval(9 * 3600)).count, 0, "every step was taken")
        // The gate also runs while the promotion waits for a reviewer (the grayscale release goes on meanwhile).
        for d in 0..<300 { _ = try await a.countEvent(task: id, "verify_failed", device: "worse\(d)", now: now) }
        await assertEqual(try await nodeB.runRamps(now: late.addingTimeInterval(10 * 3600)).count, 1)
        t = try await a.task(id)
        XCTAssertEqual(t?.taskStatus, .paused)
        XCTAssertEqual(t?.approvalState, .awaiting, "the promotion still waits; the reviewer sees the task paused")
        // Resumed by a person: the gate judges the hours after the resume, not what was accepted.
        _ = try await a.operate(task: id, .resume, by: .commandLine)
        await assertEqual(try await nodeA.runRamps(now: Date()).count, 0, "not paused again at once")
        await assertEqual(try await a.task(id)?.taskStatus, .releasing)

        // A share raised by hand past a step: the step is skipped, never lowering it; a task
        // promoted by hand is left alone (and stops nobody else's ramp).
        _ = try await a.setApprovalRules(official: false, gray: false, by: .commandLine)
        let p2 = try await commit(a, "1.0.0.2")
        var second = TaskRecord(package: p2, kind: .gray(.percentage(5), rules: []), description: "", createdBy: "ci")
        second.ramp = RampPlan(steps: [.init(percentage: 30, afterMinutes: 1), .init(percentage: 90, afterMinutes: 1)], since: start).json
        let id2 = try unwrapped(try await a.createTask(second, by: ActingUser(name: "ci", role: .developer)).id)
        _ = try await a.setPercentage(task: id2, 50, by: .commandLine)
        await assertEqual(try await nodeA.runRamps(now: Date()).count, 1)
        await assertEqual(try await a.task(id2)?.percentage, 50, "the 30 % step did not lower the share")
        _ = try await a.operate(task: id2, .promote, by: .commandLine)
        await assertEqual(try await nodeA.runRamps(now: Date().addingTimeInterval(3600)).count, 0, "an official task takes no step")
        await assertTrue(try await a.task(id2)?.isOfficial ?? false)
        // Grayscale releases need a reviewer: a step's wider share waits, and once approved it
        // is observed for the whole delay before the next step (the clock restarts).
        _ = try await a.setApprovalRules(official: false, gray: true, by: .commandLine)
        let p3 = try await commit(a, "1.0.0.3")
        var third = TaskRecord(package: p3, kind: .gray(.percentage(5), rules: []), description: "", createdBy: "ci")
        third.ramp = RampPlan(steps: [.init(percentage: 30, afterMinutes: 60), .init(percentage: 90, afterMinutes: 60)], since: start).json
        let id3 = try unwrapped(try await a.createTask(third, by: ActingUser(name: "ci", role: .developer)).id)
        let reviewer = ActingUser(name: "rev", role: .reviewer)
        _ = try await a.decide(task: id3, approve: true, comment: "go", by: reviewer)
        let soon = Date()
        await assertEqual(try await nodeA.runRamps(now: soon.addingTimeInterval(61 * 60)).count, 1)
        await assertEqual(try await a.task(id3)?.approvalState, .awaiting, "the wider share waits for a reviewer")
        _ = try await a.decide(task: id3, approve: true, comment: "wider", by: reviewer)
        await assertEqual(try await a.task(id3)?.percentage, 30)
        await assertEqual(try await nodeB.runRamps(now: Date().addingTimeInterval(30 * 60)).count, 0, "the approved share is watched for its delay first")
        await assertEqual(try await nodeB.runRamps(now: Date().addingTimeInterval(61 * 60)).count, 1)
        // A revoked version takes no new task.
        _ = try await a.operate(task: id, .finish, by: .commandLine)
        _ = try await a.revoke("20171228", "1.0.0.1", reason: "bad", by: .commandLine)
        await assertThrows(try await a.createTask(TaskRecord(package: p, kind: .official, description: "", createdBy: "ci"), by: .commandLine)) {
            XCTAssertTrue(($0 as? Conflict)?.description.contains("revoked") == true, "\($0)")
        }
    }

    static func releases(_ store: some CatalogueStore & ReleaseStore & ApprovalStore) async throws {
        _ = try await store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        let p1 = try await commit(store, "1.0.0.1"), p2 = try await commit(store, "1.0.0.2")
        let ci = ActingUser(name: "ci", role: .developer), reviewer = ActingUser(name: "rev", role: .reviewer)
        // Whitelists.
        let w = try await store.createWhitelist(name: "staff", kind: .user, values: ["u1", "u2"], by: ci)
        await assertThrows(try await store.createWhitelist(name: "staff", kind: .user, values: [], by: ci)) {
            XCTAssertEqual(($0 as? Conflict)?.field, "name", "\($0)")
        }
        let wid = try unwrapped(w.id)
        await assertEqual(try await store.addWhitelistValues(wid, ["u2", "u3"], by: ci) { _, _ in }.added, 1)
        await assertThrows(try await store.addWhitelistValues(wid, ["u4"], by: ci) { _, _ in throw FieldError("values", "no") })
        await assertEqual(try await store.removeWhitelistValues(wid, ["u1", "nobody"], by: ci), 1)
        let listed = try unwrapped(try await store.whitelist(wid))
        XCTAssertEqual(listed.1, ["u2", "u3"])
        XCTAssertEqual(listed.0.revision, 2)
        await assertEqual(try await store.whitelistSummaries().map(\.count), [2])
        await assertNil(try await store.whitelists(known: [wid: 2]).first?.1, "a list whose revision is known is not read again")
        await assertEqual(try await store.whitelists().first?.1, ["u2", "u3"])
        await assertThrows(try await store.addWhitelistValues(999_999, ["x"], by: ci) { _, _ in }) { XCTAssertTrue($0 is NotFound) }
        // A task's life: one unfinished per package, the package's status follows.
        let t1 = try await store.createTask(TaskRecord(package: p1, kind: .gray(.whitelist([wid]), rules: []), description: "first", createdBy: "ci"), by: ci)
        let id1 = try unwrapped(t1.id)
        XCTAssertEqual(t1.taskStatus, .releasing)
        await assertEqual(try await store.package("20171228", "1.0.0.1")?.status, .grayReleasing)
        await assertThrows(try await store.createTask(TaskRecord(package: p1, kind: .official, description: "", createdBy: "ci"), by: ci)) {
            XCTAssertTrue($0 is Conflict, "\($0)")
        }
        await assertThrows(try await store.deleteWhitelist(wid, by: ci)) { XCTAssertTrue("\($0)".contains("unfinished"), "\($0)") }
        await assertEqual(try await store.operate(task: id1, .pause, by: ci).taskStatus, .paused)
        await assertEqual(try await store.package("20171228", "1.0.0.1")?.status, .paused)
        await assertThrows(try await store.operate(task: id1, .pause, by: ci)) { XCTAssertTrue($0 is Conflict) }
        await assertThrows(try await store.setPercentage(task: id1, 50, by: ci)) { XCTAssertEqual(($0 as? Conflict)?.field, "percentage") }
        await assertThrows(try await store.deleteTask(id1, by: ci)) { XCTAssertTrue($0 is Conflict) }
        await assertEqual(try await store.operate(task: id1, .finish, by: ci).taskStatus, .finished)
        try await store.deleteTask(id1, by: ci)
        await assertNil(try await store.task(id1))
        await assertEqual(try await store.package("20171228", "1.0.0.1")?.status, .toBeReleased)
        try await store.deleteWhitelist(wid, by: ci)
        await assertNil(try await store.whitelist(wid))
        // Approval: a new grayscale task waits; its creator may not decide; a wider share waits again.
        _ = try await store.setApprovalRules(official: false, gray: true, by: ci)
        let t2 = try await store.createTask(TaskRecord(package: p2, kind: .gray(.percentage(5), rules: []), description: "", createdBy: "ci"), by: ci)
        let id2 = try unwrapped(t2.id)
        XCTAssertEqual(t2.approvalState, .awaiting)
        await assertEqual(try await store.countAwaitingApproval(), 1)
        await assertEqual(try await store.tasksAwaitingApproval().compactMap(\.id), [id2])
        await assertThrows(try await store.decide(task: id2, approve: true, comment: "mine", by: ActingUser(name: "ci", role: .reviewer))) {
            XCTAssertTrue($0 is Refused, "\($0)")
        }
        await assertEqual(try await store.decide(task: id2, approve: true, comment: "ok", by: reviewer).approvalState, .approved)
        await assertEqual(try await store.recentlyDecided(limit: 5).compactMap(\.id), [id2])
        await assertEqual(try await store.setPercentage(task: id2, 10, by: ci).approvalSubject, .widening)
        await assertEqual(try await store.decide(task: id2, approve: true, comment: "wider", by: reviewer).percentage, 10)
        // Client events: once per device, task, kind and hour; give-ups once per device.
        let now = Date()
        await assertTrue(try await store.countEvent(task: id2, "install_ok", device: "d1", now: now))
        await assertTrue(try await store.countEvent(task: id2, "install_ok", device: "d1", now: now))
        await assertTrue(try await store.countEvent(task: id2, "install_ok", device: "d2", now: now))
        await assertFalse(try await store.countEvent(task: 999_999, "install_ok", device: "d1", now: now))
        await assertEqual(try await store.recordGaveUp([(task: id2, device: 42), (task: id2, device: 42), (task: 999_999, device: 1)]).count, 1)
        await assertEqual(try await store.gaveUpDevices()[id2], [42])
        await assertEqual(try await store.eventCounts(task: id2), ["install_ok": 2, "failed": 1])
        // Three rows: two install reports and the give-up (counted by the hour as a failed trial, once with its own report).
        await assertEqual(try await store.pruneEventsSeen(now: now.addingTimeInterval(7200), batch: 1), 3)
        // Reading tasks.
        await assertEqual(try await store.tasks(of: "20171228").compactMap(\.id), [id2])
        await assertEqual(try await store.tasks(ids: [id2, 999_999]).keys.sorted(), [id2])
        await assertTrue(try await store.allTasksStrictly().undecodable.isEmpty)
        await assertEqual(try await store.allTasks().count, 1)
        // A time window: admissions recorded while it is open, counted and dropped when it ends.
        _ = try await store.operate(task: id2, .finish, by: ci)
        _ = try await store.setApprovalRules(official: false, gray: false, by: ci)
        let t3 = try await store.createTask(TaskRecord(package: p2, kind: .gray(.timeWindow(end: now.addingTimeInterval(3600), userCount: 5), rules: []),
                                                       description: "", createdBy: "ci"), by: ci)
        let id3 = try unwrapped(t3.id)
        try await store.recordAdmissions([(task: id3, device: "a"), (task: id3, device: "b"), (task: id3, device: "a")])
        await assertEqual(try await store.admissions()[id3], ["a", "b"])
        _ = try await store.operate(task: id3, .finish, by: ci)
        await assertNil(try await store.admissions()[id3])
        await assertEqual(try await store.task(id3)?.admittedCount, 2)
        try await store.recordAdmissions([(task: id3, device: "late")])
        await assertNil(try await store.admissions()[id3], "an ended window collects nobody")
    }
}

extension AreaContracts {
    static func imports(_ store: some ImportStore) async throws {
        let ci = ActingUser(name: "ci", role: .developer), now = Date()
        var draft = PackageDraft()
        draft.version = "1.0.0.1"
        let rows = [ImportRowRecord(importId: 0, n: 0, fileName: "20171228.zip", appId: "20171228", newApp: true, type: "normal", fileCount: 2,
                                    size: 10, draft: draft, error: nil),
                    ImportRowRecord(importId: 0, n: 1, fileName: "x.zip", appId: nil, newApp: false, type: nil, fileCount: 0, size: 0,
                                    draft: PackageDraft(), error: "not a zip")]
        let record = try await store.createImport(key: "k1", rows: rows, by: ci, now: now)
        let id = try unwrapped(record.id)
        await assertEqual(try await store.importRecord(id)?.status, "open")
        let read = try await store.importRows(id)
        XCTAssertEqual(read.map(\.n), [0, 1])
        XCTAssertEqual(read.first?.draft.version, "1.0.0.1")
        XCTAssertEqual(read.map(\.refused), [false, true])
        XCTAssertEqual(store.importFile(key: "k1", n: 3), store.importsDirectory + "/k1/3.zip")
        draft.version = "1.0.0.2"
        try await store.updateImportRow(id, n: 0, draft: draft, error: nil, by: ci, now: now)
        await assertEqual(try await store.importRows(id).first?.draft.version, "1.0.0.2")
        await assertThrows(try await store.updateImportRow(id, n: 1, draft: draft, error: nil, by: ci, now: now)) { XCTAssertTrue($0 is NotFound) }
        await assertThrows(try await store.updateImportRow(id, n: 0, draft: draft, error: nil, by: ci, now: now.addingTimeInterval(25 * 3600))) {
            XCTAssertTrue("\($0)".contains("expired"), "\($0)")
        }
        await assertTrue(try await store.beginImportSubmission(id, by: ci, now: now))
        await assertFalse(try await store.beginImportSubmission(id, by: ci, now: now), "a second click finds it taken")
        await assertThrows(try await store.updateImportRow(id, n: 0, draft: draft, error: nil, by: ci, now: now)) { XCTAssertTrue($0 is Conflict) }
        try await store.failImportRow(id, n: 0, error: "boom")
        await assertEqual(try await store.importRows(id).first?.error, "boom")
        await assertEqual(try await store.endImportSubmission(id)?.status, "open", "a row is left to create")
        // A submission cut short by a restart is open again; an expired import goes.
        let second = try unwrapped(try await store.createImport(key: "k2", rows: [], by: ci, now: now).id)
        await assertTrue(try await store.beginImportSubmission(second, by: ci, now: now))
        await assertEqual(try await store.sweepImports(now: now, startingUp: true), 0)
        await assertEqual(try await store.importRecord(second)?.status, "open")
        await assertEqual(try await store.sweepImports(now: now.addingTimeInterval(25 * 3600), startingUp: false), 2)
        await assertNil(try await store.importRecord(id))
    }

    static func patches(_ store: some PatchStore & CatalogueStore) async throws {
        _ = try await store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        let p1 = try await commit(store, "1.0.0.1"), p2 = try await commit(store, "1.0.0.2")
        let (id1, id2) = (try unwrapped(p1.id), try unwrapped(p2.id))
        await assertTrue(try await store.diff(from: id1, to: id2).isEmpty, "the same files")
        let blob = TokenHash.of("patch")
        let patch = PatchRecord(packageId: id2, basePackageId: id1, appId: "20171228", version: "1.0.0.2", base: "1.0.0.1", blob: blob,
                                size: 10, changedFiles: 1, removedFiles: 0)
        await assertFalse(try await store.recordPatch(patch, targetBlob: p2.blob, baseBlob: "another"), "built from a base since re-signed")
        await assertTrue(try await store.recordPatch(patch, targetBlob: p2.blob, baseBlob: p1.blob))
        await assertFalse(try await store.recordPatch(patch, targetBlob: p2.blob, baseBlob: p1.blob), "once")
        await assertEqual(try await store.patches().count, 1)
        await assertEqual(try await store.patches(of: "20171228").first?.changedFiles, 1)
        await assertEqual(try await store.patch("20171228", "1.0.0.2", from: "1.0.0.1")?.size, 10)
        await assertNil(try await store.patch("20171228", "1.0.0.2", from: "1.0.0.0"))
        await assertTrue(try await store.isBlobReferenced(blob))
        await assertEqual(try await store.deletePatches([(packageId: id2, basePackageId: id1)]), [blob])
        await assertEqual(try await store.patches().count, 0)
    }
}

/// XCTUnwrap for a value that has to be awaited first.
func unwrapped<T>(_ value: T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) throws -> T {
    try XCTUnwrap(value, message, file: file, line: line)
}
