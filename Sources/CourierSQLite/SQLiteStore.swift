import CourierCore
import CourierStore
import Crypto
import Foundation
import GRDB
import Logging


/// Courier's state: one SQLite database (WAL) plus the blob directory beside it.
public final class SQLiteStore: Store {
    /// Only this module touches the database: every change is a named write below (one
    /// transaction with its audit row), every read a named query.
    let db: DatabasePool
    public let blobs: BlobStore
    /// Batch imports' files until they are submitted: `imports/{key}/{n}.zip`.
    public let importsDirectory: String
    /// Told after every committed change to apps, packages or settings.
    public let changes = CatalogueChanges()
    /// One line per committed change (who, what, on what, the request's ID), when a server runs.
    let logger: Logger?

    public init(dataDirectory: String, logger: Logger? = nil) throws {
        self.logger = logger
        let dir = URL(fileURLWithPath: dataDirectory, isDirectory: true)
        try PrivateDirectory.prepare(dir.path)
        // The database holds the signing key: only Courier's user may read it. SQLite gives its
        // -wal and -shm files the database file's mode, so creating that file 0600 covers them.
        let dbPath = dir.appendingPathComponent("courier.sqlite").path
        let fd = open(dbPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("Cannot open \(dbPath): \(String(cString: strerror(errno))).") }
        fchmod(fd, 0o600)
        close(fd)
        for suffix in ["-wal", "-shm"] { chmod(dbPath + suffix, 0o600) }
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA foreign_keys = ON") }
        db = try DatabasePool(path: dbPath, configuration: config)
        try Self.migrator.migrate(db)
        blobs = try BlobStore(root: dir)
        importsDirectory = dir.appendingPathComponent("imports").path
        try PrivateDirectory.prepare(importsDirectory)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "settings") { t in
                t.primaryKey("id", .integer).check { $0 == 1 }
                t.column("virtualDomain", .text)
                t.column("globalHost", .text)
                t.column("appKey", .text)
                t.column("signingKeyPEM", .text)
                t.column("signingKeyFingerprint", .text)
            }
            try db.execute(sql: "INSERT INTO settings (id) VALUES (1)")
            try db.create(table: "user") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("passwordHash", .text).notNull()
                t.column("role", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "session") { t in
                t.primaryKey("idHash", .text)
                t.column("userId", .integer).notNull().references("user", onDelete: .cascade)
                t.column("csrfToken", .text).notNull()
                t.column("expiresAt", .datetime).notNull()
            }
            try db.create(table: "apiToken") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("userId", .integer).notNull().references("user", onDelete: .cascade)
                t.column("tokenHash", .text).notNull().unique()
                t.column("scopes", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "app") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("type", .text)
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "package") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("appId", .text).notNull().references("app", onDelete: .restrict)
                t.column("version", .text).notNull()
                t.column("versionKey", .text).notNull()
                t.column("type", .text).notNull()
                t.column("androidMin", .text)
                t.column("androidMax", .text)
                t.column("iosMin", .text)
                t.column("iosMax", .text)
                t.column("mainUrl", .text)
                t.column("extendInfo", .text).notNull()
                t.column("downloadPolicy", .text).notNull()
                t.column("installPolicy", .text).notNull()
                t.column("status", .text).notNull()
                t.column("blob", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("md5", .text).notNull()
                t.column("tarOffset", .integer).notNull()
                t.column("tarSize", .integer).notNull()
                t.column("fileCount", .integer).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("createdBy", .text).notNull()
                t.uniqueKey(["appId", "version"])
            }
            try db.create(table: "packageFile") { t in
                t.column("packageId", .integer).notNull().references("package", onDelete: .cascade)
                t.column("path", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("sha256", .text).notNull()
                t.column("tarOffset", .integer).notNull()
                t.primaryKey(["packageId", "path"])
            }
        }
        m.registerMigration("v2-audit") { db in
            try db.create(table: "audit") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .text).notNull()
                t.column("user", .text).notNull()
                t.column("action", .text).notNull()
                t.column("subject", .text).notNull()
                t.column("detail", .text).notNull()
                t.column("hash", .text).notNull()
            }
        }
        registerReleaseMigrations(&m)
        registerImportMigrations(&m)
        registerUserMigrations(&m)
        registerApprovalMigrations(&m)
        registerTokenMigrations(&m)
        // Each write that touches a task finds the package's tasks (one unfinished task per
        // package, the package's status); the snapshot reads the packages tasks name.
        m.registerMigration("v9-task-package-index") { db in
            try db.create(index: "taskByPackage", on: "task", columns: ["packageId"])
        }
        // Issue 15: a finished time window keeps its count, not its devices; client events count
        // once per device, task, kind and hour.
        m.registerMigration("v10-bounded-admissions-and-events") { db in
            try db.alter(table: "task") { t in t.add(column: "admittedCount", .integer) }
            try db.create(table: "eventSeen") { t in
                t.column("hour", .integer).notNull()
                t.column("taskId", .integer).notNull()
                t.column("event", .text).notNull()
                t.column("deviceId", .text).notNull()
                t.primaryKey(["hour", "taskId", "event", "deviceId"])
            }
            // Admissions of tasks that are no longer open time windows (ended, or promoted):
            // counted, then dropped.
            let closed = "SELECT id FROM task WHERE NOT (mode = 'timeWindow' AND status NOT IN ('finished', 'rejected'))"
            try db.execute(sql: """
                UPDATE task SET admittedCount = (SELECT COUNT(*) FROM admission WHERE admission.taskId = task.id)
                WHERE id IN (\(closed)) AND (mode = 'timeWindow' OR EXISTS (SELECT 1 FROM admission WHERE admission.taskId = task.id))
                """)
            try db.execute(sql: "DELETE FROM admission WHERE taskId IN (\(closed))")
        }
        // Issue 16: the log filtered by app finds the app's tasks (their subject is the task's ID).
        m.registerMigration("v11-audit-app") { db in
            try db.alter(table: "audit") { t in t.add(column: "appId", .text) }
            try db.execute(sql: """
                UPDATE audit SET appId = substr(subject, 1, instr(subject || ' ', ' ') - 1)
                WHERE action IN ('app.create', 'app.rename', 'package.add', 'task.create')
                """)
            // A task's later rows name it by ID: its app comes from the task, or for a task already
            // deleted from the row that created it.
            try db.execute(sql: """
                UPDATE audit SET appId = COALESCE(
                    (SELECT appId FROM task WHERE task.id = CAST(audit.subject AS INTEGER)),
                    (SELECT substr(c.subject, 1, instr(c.subject || ' ', ' ') - 1) FROM audit c
                     WHERE c.action = 'task.create' AND json_extract(c.detail, '$.task') = audit.subject))
                WHERE action LIKE 'task.%' AND action != 'task.create' AND subject GLOB '[0-9]*'
                """)
            try db.create(index: "auditByApp", on: "audit", columns: ["appId", "id"])
        }
        // Issue 17: the update check interval is a setting (SPEC §4), no longer a constant; the
        // versions a device gave up are remembered per task (by a 64-bit key of the device ID).
        m.registerMigration("v12-client-protocol") { db in
            try db.alter(table: "settings") { t in
                t.add(column: "updateReqRate", .integer).notNull().defaults(to: SettingsRecord.defaultUpdateReqRate)
            }
            try db.create(table: "gaveUp") { t in
                t.column("taskId", .integer).notNull().references("task", onDelete: .cascade)
                t.column("deviceKey", .integer).notNull()
                t.primaryKey(["taskId", "deviceKey"])
            }
        }
        // Issue 18: patches between versions, built in the background.
        m.registerMigration("v13-patches") { db in try Self.createPatchTable(db) }
        // Settings described after the package table (`PackageField.hasColumn == false`) are kept
        // here as one JSON object: a new setting needs no migration.
        m.registerMigration("v14-package-more-settings") { db in
            try db.alter(table: "package") { t in t.add(column: "moreSettings", .text).notNull().defaults(to: "{}") }
        }
        registerNodeMigrations(&m)
        // The rules a change obeys (CourierCore) are checked in its transaction, where SQLite's
        // one writer makes the check and the write one step. These constraints say the same in
        // the schema, so that no writer (another process, a second backend's port of a write,
        // a hand-made SQL fix) can break them; a change that would is a Conflict (`change`).
        m.registerMigration("v16-rules-as-constraints") { db in
            // One unfinished task per package (the ended statuses: ReleaseTask.Status.ended; a
            // test holds the two lists together). A database that already breaks it (written by
            // hand) says so, rather than failing on a bare constraint error.
            if let (package, count) = try Row.fetchOne(db, sql: """
                SELECT packageId, COUNT(*) FROM task WHERE status NOT IN ('finished', 'rejected') GROUP BY packageId HAVING COUNT(*) > 1
                """).map({ ($0[0] as Int64, $0[1] as Int) }) {
                throw StoreError("Package \(package) has \(count) unfinished tasks, and Courier allows one: finish all but one (courier task, or the console of the version that wrote them), or restore a backup, then start again.")
            }
            try db.execute(sql: "CREATE UNIQUE INDEX taskOneUnfinishedPerPackage ON task(packageId) WHERE status NOT IN ('finished', 'rejected')")
            // An app's versions only go up (versionKey sorts like the version: AppFacts.checkNext).
            // A trigger's message is `field|text` when it concerns a form field (`change`).
            try db.execute(sql: """
                CREATE TRIGGER packageVersionRises BEFORE INSERT ON package
                WHEN EXISTS (SELECT 1 FROM package WHERE appId = NEW.appId AND versionKey >= NEW.versionKey)
                BEGIN SELECT RAISE(ABORT, 'version|The version must be greater than the app''s highest version.'); END
                """)
            // An active administrator always stays (AdministratorRule).
            try db.execute(sql: """
                CREATE TRIGGER userKeepsAnAdministrator AFTER UPDATE OF role, disabled ON user
                WHEN OLD.role = 'admin' AND OLD.disabled = 0
                 AND NOT EXISTS (SELECT 1 FROM user WHERE role = 'admin' AND disabled = 0)
                BEGIN SELECT RAISE(ABORT, 'The last active administrator stays: add or enable another administrator first.'); END
                """)
        }
        // Each audit row names the one before it, as on PostgreSQL, where a rolled-back append
        // leaves a gap in the ids: a backup moved between the stores keeps its ids and links,
        // and verifies on either (rows from before stay linked by their contiguous ids).
        m.registerMigration("v17-audit-links") { db in
            try db.alter(table: "audit") { t in t.add(column: "previousId", .integer) }
        }
        // Issue 21: release health by the hour, sketches of the devices that checked, ramps.
        m.registerMigration("v18-release-health") { db in
            try db.alter(table: "task") { t in t.add(column: "ramp", .text).notNull().defaults(to: "") }
            try db.create(table: "taskHour") { t in
                t.column("taskId", .integer).notNull().references("task", onDelete: .cascade)
                t.column("hour", .integer).notNull()
                t.column("event", .text).notNull()
                t.column("count", .integer).notNull()
                t.primaryKey(["taskId", "hour", "event"])
            }
            try db.create(table: "sketch") { t in
                t.column("kind", .text).notNull()
                t.column("subject", .text).notNull()
                t.column("hour", .integer).notNull()
                t.column("registers", .text).notNull()
                t.primaryKey(["kind", "subject", "hour"])
            }
            // Revoked versions: never offered again; their devices are sent back (SPEC §5).
            try db.create(table: "revocation") { t in
                t.primaryKey("packageId", .integer).references("package", onDelete: .cascade)
                t.column("appId", .text).notNull()
                t.column("version", .text).notNull()
                t.column("reason", .text).notNull()
                t.column("revokedBy", .text).notNull()
                t.column("revokedAt", .datetime).notNull()
            }
            // The webhook (SPEC §5): one row, its URL and the secret its POSTs are signed with.
            try db.create(table: "webhook") { t in
                t.primaryKey("id", .integer).check { $0 == 1 }
                t.column("url", .text).notNull()
                t.column("secret", .text).notNull()
                t.column("setBy", .text).notNull()
                t.column("setAt", .datetime).notNull()
            }
        }
        return m
    }

    /// What a breach of v16's constraints tells the person: the field and text of a trigger's
    /// `field|text` message, else its text as a Conflict.
    static func refusal(_ e: DatabaseError) -> Error {
        guard e.extendedResultCode == .SQLITE_CONSTRAINT_TRIGGER else { return UnfinishedTaskRule.breached }
        let message = e.message ?? "The change breaks one of Courier's rules."
        guard let bar = message.firstIndex(of: "|") else { return Conflict(message) }
        return FieldError(String(message[..<bar]), String(message[message.index(after: bar)...]))
    }

    /// One change: `body` writes, then its audit row is appended, in one transaction; listeners
    /// hear of catalogue changes once it is committed.
    func change<T: Sendable>(by actor: ActingUser, _ action: String, subject: String, catalogue: Bool = true,
                   _ body: @escaping @Sendable (Database) throws -> (T, detail: [String: String])) async throws -> T {
        let result: T
        do {
            result = try await db.write { db -> T in
                let (value, detail) = try body(db)
                try audit(db, by: actor, action, subject: subject, detail: detail)
                if catalogue { try SQLiteStore.bumpCatalogueVersion(db) }
                return value
            }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_FULL {
            throw StorageFull("the change")   // the transaction was rolled back
        } catch let e as DatabaseError where e.extendedResultCode == .SQLITE_CONSTRAINT_TRIGGER
                                          || (e.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE && e.message?.contains("task.packageId") == true) {
            // v16's constraints: the checks before the write let it through, so they and the
            // schema disagree (a bug) or another writer got in between: worth a line in the log.
            logger?.warning("a stored rule refused a change", metadata: ["action": "\(action)", "subject": "\(subject)",
                                                                        "rule": "\(e.message ?? "")"])
            throw Self.refusal(e)
        }
        // The audit detail stays out of the log: it is in the database, and the log is shipped elsewhere.
        logger?.info("change", metadata: ["user": "\(actor.name)", "action": "\(action)", "subject": "\(subject)",
                                          "hb.request.id": "\(ChangeLog.requestID ?? "-")"])
        if catalogue { await changes.announce() }
        return result
    }

    public func sweep(grace: TimeInterval, now: Date) async throws -> (tempFiles: Int, orphanBlobs: Int) {
        let before = now.addingTimeInterval(-grace)
        let temps = blobs.clearTemporaryFiles(untouchedSince: grace > 0 ? before : nil)
        let referenced = try await db.read { db in try Self.referencedBlobs(db) }
        let orphans = blobs.removeAll(except: referenced, untouchedSince: grace > 0 ? before : nil)
        return (temps, orphans)
    }
}
