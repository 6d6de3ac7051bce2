import CourierCore
import CourierStore
import Crypto
import Foundation
import GRDB

/// What a backup holds, written last (`manifest.json`): a folder without it is not a backup.
public struct BackupManifest: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public let path: String
        public let size: UInt64
        public let sha256: String
    }
    public var format = 1
    public var createdAt: Date
    public var apps: Int
    public var packages: Int
    public var tasks: Int
    public var auditRows: Int
    public var files: [File]
}

public struct BackupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// `courier backup` and `courier restore` (issue 10): the database by SQLite's online backup
/// (a consistent snapshot while the server keeps writing) and every blob that snapshot refers
/// to, each file listed with its SHA-256.
public enum Backup {
    static let manifestName = "manifest.json"
    static let databaseName = "courier.sqlite"

    /// Backs `store` up into `dir` (absent or empty). A blob removed while it is being copied
    /// (a key replacement re-signs every package) makes the attempt start over from a fresh
    /// snapshot, up to `attempts` times.
    /// `afterMove` is told how many entries are in place after each rename (tests stop the
    /// process there).
    public static func run(_ store: SQLiteStore, to dir: String, attempts: Int = 5,
                           afterMove: (@Sendable (Int) -> Void)? = nil) async throws -> BackupManifest {
        try await run(blobs: store.blobs, to: dir, attempts: attempts, afterMove: afterMove) { path in
            let copy = try DatabaseQueue(path: path)
            try await store.db.backup(to: copy)
            // The copy stands alone: no WAL beside it (a reader, `restore`'s check, then leaves no
            // -wal or -shm file), and only its owner reads it (it holds the signing key).
            _ = try await copy.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode=DELETE") }
            try copy.close()
        }
    }

    /// Backs up any store: `snapshot` writes one consistent copy of its database, in this
    /// format (a SQLite file: `BackupDatabase` for a store on another engine), to the path it is
    /// given; the blobs that copy uses are then copied from `blobs`.
    public static func run(blobs store: BlobStore, to dir: String, attempts: Int = 5, afterMove: (@Sendable (Int) -> Void)? = nil,
                           snapshot: (String) async throws -> Void) async throws -> BackupManifest {
        try prepareEmpty(dir)
        var lastMissing = ""
        for _ in 0..<attempts {
            let staging = dir + "/.partial-" + UUID().uuidString
            try PrivateDirectory.prepare(staging)
            defer { try? FileManager.default.removeItem(atPath: staging) }
            try await snapshot(staging + "/" + databaseName)
            chmod(staging + "/" + databaseName, 0o600)
            let copy = try DatabaseQueue(path: staging + "/" + databaseName)
            let (blobs, counts) = try await copy.read { db in
                (try SQLiteStore.referencedBlobs(db),
                 (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM app") ?? 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM package") ?? 0,
                  try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM task") ?? 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit") ?? 0))
            }
            try copy.close()
            var files = [try hashFile(staging + "/" + databaseName, as: databaseName)]
            var missing: String?
            for blob in blobs.sorted() {
                let relative = store.relativePath(for: blob)
                let target = staging + "/" + relative
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
                guard let file = try copyFile(store.path(for: blob), to: target, as: relative) else { missing = blob; break }
                guard file.sha256 == blob else { throw BackupError("Blob \(blob) does not match its hash (\(file.sha256)): the data folder is damaged.") }
                files.append(file)
            }
            if let missing { lastMissing = missing; continue }
            // The copies' folders reach the disk before the manifest says the backup is whole.
            for dir in Array(Set(files.dropFirst().map { (staging + "/" + $0.path as NSString).deletingLastPathComponent })) + [staging + "/blobs"]
            where FileManager.default.fileExists(atPath: dir) {
                guard fsyncPath(dir) else { throw BackupError("Cannot flush \(dir) to disk: \(String(cString: strerror(errno))).") }
            }
            let manifest = BackupManifest(createdAt: Date(), apps: counts.0, packages: counts.1, tasks: counts.2, auditRows: counts.3, files: files)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            try writeFile(try encoder.encode(manifest), to: staging + "/" + manifestName)
            // Move the finished copy into place, the manifest last: it is the mark of a finished
            // backup, so a backup stopped between two renames must not show it before the rest.
            let names = try FileManager.default.contentsOfDirectory(atPath: staging).filter { $0 != manifestName }.sorted() + [manifestName]
            for (moved, name) in names.enumerated() {
                if name == manifestName, !fsyncPath(dir) {
                    throw BackupError("Cannot flush \(dir) to disk: \(String(cString: strerror(errno))).")
                }
                guard rename(staging + "/" + name, dir + "/" + name) == 0 else {
                    throw BackupError("Cannot move \(name) into \(dir): \(String(cString: strerror(errno))).")
                }
                afterMove?(moved + 1)
            }
            _ = fsyncPath(dir)
            return manifest
        }
        throw BackupError("Blob \(lastMissing) kept disappearing while it was copied (is the signing key being replaced over and over?); try again.")
    }

    /// Checks a backup: the manifest, every file's size and hash, the database's integrity, and
    /// that every package's blob is there.
    public static func verify(_ dir: String) throws -> BackupManifest {
        guard let data = try readManifest(dir + "/" + manifestName) else {
            throw BackupError("\(dir) has no \(manifestName): it is not a finished Courier backup.")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let manifest = try? decoder.decode(BackupManifest.self, from: data), manifest.format == 1 else {
            throw BackupError("\(dir)/\(manifestName) is not a Courier backup manifest.")
        }
        var listed = Set<String>()
        for f in manifest.files {
            guard safeRelative(f.path) else { throw BackupError("The manifest names \(f.path), which is outside the backup.") }
            // Every folder on the way is a folder of the backup, not a link to elsewhere.
            var folder = dir
            for part in f.path.split(separator: "/").dropLast() {
                folder += "/" + part
                var st = stat()
                guard lstat(folder, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                    throw BackupError("\(folder) is not a folder of the backup (a link or something else): nothing is restored.")
                }
            }
            guard let actual = try hashFile(dir + "/" + f.path, as: f.path, required: false) else {
                throw BackupError("\(f.path) is missing from the backup.")
            }
            guard actual.size == f.size, actual.sha256 == f.sha256 else {
                throw BackupError("\(f.path) differs from the manifest (size \(actual.size), sha256 \(actual.sha256)): the backup is damaged.")
            }
            listed.insert(f.path)
        }
        guard listed.contains(databaseName) else { throw BackupError("The backup has no database.") }
        let db = try DatabaseQueue(path: dir + "/" + databaseName, configuration: { var c = Configuration(); c.readonly = true; return c }())
        defer { try? db.close() }
        let (integrity, blobs) = try db.read { db in
            (try String.fetchAll(db, sql: "PRAGMA integrity_check"), try SQLiteStore.referencedBlobs(db))
        }
        guard integrity == ["ok"] else { throw BackupError("The backed-up database fails its integrity check: \(integrity.prefix(3).joined(separator: "; ")).") }
        for blob in blobs where !listed.contains(BlobStore.relativePath(for: blob)) {
            throw BackupError("Blob \(blob), used by a package, is not in the backup.")
        }
        return manifest
    }

    /// Restores a verified backup into `data` (absent or empty).
    public static func restore(from dir: String, to data: String) throws -> BackupManifest {
        let manifest = try verify(dir)
        try prepareEmpty(data, allowingPartials: false)
        do {
            for f in manifest.files {
                let target = data + "/" + f.path
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
                guard let copied = try copyFile(dir + "/" + f.path, to: target, as: f.path), copied.sha256 == f.sha256 else {
                    throw BackupError("\(f.path) changed while it was restored.")
                }
            }
            _ = fsyncPath(data)
        } catch {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: data)) ?? [] {
                try? FileManager.default.removeItem(atPath: data + "/" + name)
            }
            throw error
        }
        return manifest
    }

    // MARK: Files

    /// `dir` absent or empty, as a real folder (not a link). A backup's target may keep the
    /// `.partial-*` staging folders of interrupted attempts; a restore's target must be empty.
    static func prepareEmpty(_ dir: String, allowingPartials: Bool = true) throws {
        var st = stat()
        if lstat(dir, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw BackupError("\(dir) is not a folder; choose a new folder.") }
            let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { !(allowingPartials && $0.hasPrefix(".partial-")) }
            guard names.isEmpty else { throw BackupError("\(dir) is not empty; choose a new folder.") }
        }
        try PrivateDirectory.prepare(dir)
    }

    /// A path the manifest may name: relative, without `.`, `..` or hidden segments (a
    /// `.partial-*` name could meet a link left in the target folder).
    static func safeRelative(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0.hasPrefix(".") }
    }

    /// Reads `source` once, hashing it, and copies it to `target` (0600, fsynced) when one is
    /// given; nil when the source does not exist.
    static func copyFile(_ source: String, to target: String?, as name: String) throws -> BackupManifest.File? {
        // A backup folder is input from outside: a link is not followed, and a FIFO or device
        // is refused at once (O_NONBLOCK keeps the open of a FIFO from waiting for a writer).
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard input >= 0 else {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw BackupError("\(source) is a symbolic link; a backup holds only regular files.") }
            throw BackupError("Cannot read \(source): \(String(cString: strerror(errno))).")
        }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw BackupError("\(source) is not a regular file; a backup holds only regular files.")
        }
        var output: Int32 = -1
        if let target {
            // A new file only, never through a link someone left in the target folder.
            output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard output >= 0 else { throw BackupError("Cannot write \(target): \(String(cString: strerror(errno))).") }
        }
        defer { if output >= 0 { close(output) } }
        var hasher = SHA256()
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw BackupError("Cannot read \(source): \(String(cString: strerror(errno))).") }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            var done = 0
            while output >= 0, done < n {
                let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + done, n - done) }
                guard w > 0 else { throw BackupError("Cannot write \(target ?? ""): \(String(cString: strerror(errno))).") }
                done += w
            }
            size += UInt64(n)
        }
        if output >= 0, fsync(output) != 0 {
            throw BackupError("Cannot flush \(target ?? "") to disk: \(String(cString: strerror(errno))).")
        }
        return BackupManifest.File(path: name, size: size, sha256: hasher.finalize().map { String(format: "%02x", $0) }.joined())
    }

    static func hashFile(_ path: String, as name: String, required: Bool) throws -> BackupManifest.File? {
        guard let file = try copyFile(path, to: nil, as: name) else {
            if required { throw BackupError("Cannot read \(path): it does not exist.") }
            return nil
        }
        return file
    }

    static func hashFile(_ path: String, as name: String) throws -> BackupManifest.File {
        guard let f = try hashFile(path, as: name, required: true) else { throw BackupError("Cannot read \(path).") }
        return f
    }

    /// The manifest's bytes (nil when absent): a regular file, not a link, at most 256 MiB.
    static func readManifest(_ path: String) throws -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw BackupError("Cannot read \(path): \(errno == ELOOP ? "it is a symbolic link" : String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw BackupError("\(path) is not a regular file.") }
        guard st.st_size <= 256 << 20 else { throw BackupError("\(path) is too large to be a Courier backup manifest.") }
        var data = Data(count: Int(st.st_size))
        let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n == Int(st.st_size) else { throw BackupError("Cannot read \(path).") }
        return data
    }

    static func writeFile(_ data: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupError("Cannot write \(path).") }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count }
        guard ok, fsync(fd) == 0 else { throw BackupError("Cannot write \(path): \(String(cString: strerror(errno))).") }
    }

    static func fsyncPath(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return fsync(fd) == 0
    }
}

extension Backup {
    /// Copies a verified backup's blobs into a (shared) blob folder: each through `tmp/` and a
    /// rename, checked against the manifest's hash. A blob already there is kept. Returns the
    /// blobs it added, for the caller to take back if the rest of the restore fails.
    public static func restoreBlobs(from dir: String, manifest: BackupManifest, into blobs: BlobStore) throws -> [String] {
        var added: [String] = []
        do {
            for f in manifest.files where f.path != databaseName {
                guard BlobStore.relativePath(for: f.sha256) == f.path else {
                    throw BackupError("\(f.path) is not where the backup keeps a blob: nothing is restored.")
                }
                if let there = try hashFile(blobs.path(for: f.sha256), as: f.path, required: false), there.sha256 == f.sha256 {
                    // Kept, and made young: a node starting meanwhile must not sweep it as an old orphan.
                    utimes(blobs.path(for: f.sha256), nil)
                    continue
                }
                let temp = blobs.temporaryPath(suffix: ".restore")
                guard let copied = try copyFile(dir + "/" + f.path, to: temp, as: f.path), copied.sha256 == f.sha256 else {
                    unlink(temp)
                    throw BackupError("\(f.path) changed while it was restored.")
                }
                do { try blobs.adopt(temp, sha256: f.sha256) } catch {
                    unlink(temp)
                    throw BackupError("Cannot move \(f.path) into \(blobs.root.path): \(String(cString: strerror(errno))).")
                }
                added.append(f.sha256)
            }
        } catch {
            for blob in added { blobs.remove(blob) }
            throw error
        }
        return added
    }

    /// The backup's database file in `dir`.
    public static func databasePath(in dir: String) -> String { dir + "/" + databaseName }
}

/// One value of a backup's table, as another store's engine needs it: dates and flags are
/// told apart (SQLite keeps them as text and integers).
public enum BackupValue: Sendable, Equatable {
    case null, integer(Int64), real(Double), text(String), date(Date), bool(Bool)
}

/// A backup's database as plain tables, so that a store on another engine (PostgreSQL) can
/// write its backup in this format and restore one: same file, whichever store made it.
public final class BackupDatabase: Sendable {
    let queue: DatabaseQueue

    /// The tables a backup carries, parents before children. `lease` is not one: a lease belongs
    /// to the running nodes, not to the data.
    public static let tables = ["settings", "user", "session", "apiToken", "app", "package", "packageFile", "audit", "whitelist",
                                "whitelistValue", "task", "admission", "taskEvent", "eventSeen", "gaveUp", "batchImport",
                                "batchImportRow", "patch", "catalogueVersion", "taskHour", "sketch", "revocation", "webhook"]
    static let notCarried: Set = ["lease", "grdb_migrations", "sqlite_sequence"]

    private init(_ queue: DatabaseQueue) throws {
        self.queue = queue
        // Every table of the schema is carried or knowingly left out: a new table not listed
        // above would otherwise vanish from backups made by another store.
        let names = try queue.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        let unknown = Set(names).subtracting(Self.tables).subtracting(Self.notCarried)
        guard unknown.isEmpty else { throw BackupError("The backup format does not carry the tables \(unknown.sorted()).") }
    }

    /// A new database at `path` with Courier's whole schema and no rows, to fill.
    public static func create(at path: String) throws -> BackupDatabase {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupError("Cannot create \(path): \(String(cString: strerror(errno))).") }
        Glibc.close(fd)
        let queue = try DatabaseQueue(path: path)
        try SQLiteStore.migrator.migrate(queue)
        try queue.write { db in
            for table in tables.reversed() { try db.execute(sql: "DELETE FROM \(table.quotedDatabaseIdentifier)") }
            try db.execute(sql: "DELETE FROM sqlite_sequence")
        }
        return try BackupDatabase(queue)
    }

    /// A verified backup's database, to read.
    public static func open(_ path: String) throws -> BackupDatabase {
        var c = Configuration()
        c.readonly = true
        return try BackupDatabase(DatabaseQueue(path: path, configuration: c))
    }

    public func close() throws { try queue.close() }

    /// The columns of `table`, in order.
    public func columns(of table: String) throws -> [String] {
        try queue.read { db in try db.columns(in: table).map(\.name) }
    }

    /// Every row of `table` in its primary key's order, `size` at a time, values in `columns(of:)`'s order.
    public func forEachBatch(of table: String, size: Int = 500, _ body: ([[BackupValue]]) async throws -> Void) async throws {
        let declared = try await queue.read { db in try db.columns(in: table).map { $0.type.uppercased() } }
        var after: Int64 = .min
        while true {
            let from = after
            let batch: [(Int64, [BackupValue])] = try await queue.read { db in
                try Row.fetchAll(db, sql: "SELECT rowid, * FROM \(table.quotedDatabaseIdentifier) WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                 arguments: [from, size]).map { row in
                    (row[0], try declared.indices.map { try Self.value(row[$0 + 1] as DatabaseValue, declared: declared[$0]) })
                }
            }
            guard let last = batch.last else { return }
            after = last.0
            try await body(batch.map(\.1))
        }
    }

    static func value(_ v: DatabaseValue, declared: String) throws -> BackupValue {
        switch v.storage {
        case .null: return .null
        case .int64(let i): return declared == "BOOLEAN" ? .bool(i != 0) : .integer(i)
        case .double(let d): return .real(d)
        case .string(let s):
            guard declared == "DATETIME" else { return .text(s) }
            guard let date = Date.fromDatabaseValue(v) else { throw BackupError("The backup holds a date that cannot be read: \(s.prefix(40)).") }
            return .date(date)
        case .blob: throw BackupError("The backup holds binary data where Courier keeps none.")
        }
    }

    /// Adds `rows` (values in `columns`' order) to `table`, in one transaction.
    public func insert(into table: String, columns: [String], rows: [[BackupValue]]) throws {
        let sql = "INSERT INTO \(table.quotedDatabaseIdentifier) (\(columns.map(\.quotedDatabaseIdentifier).joined(separator: ", "))) VALUES ("
            + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        try queue.write { db in
            let statement = try db.makeStatement(sql: sql)
            for row in rows {
                try statement.execute(arguments: StatementArguments(row.map { v -> DatabaseValue in
                    switch v {
                    case .null: return .null
                    case .integer(let i): return i.databaseValue
                    case .real(let d): return d.databaseValue
                    case .text(let s): return s.databaseValue
                    case .date(let d): return d.databaseValue
                    case .bool(let b): return b.databaseValue
                    }
                }))
            }
        }
    }

    /// The last id given out in each table that numbers its rows (deleted rows' ids included:
    /// they are not given out again), by table.
    public func sequences() throws -> [String: Int64] {
        try queue.read { db in
            Dictionary(try Row.fetchAll(db, sql: "SELECT name, seq FROM sqlite_sequence").map { ($0[0] as String, $0[1] as Int64) },
                       uniquingKeysWith: max)
        }
    }

    /// Sets the last id given out in `table` (at least its highest id).
    public func setSequence(_ table: String, _ seq: Int64) throws {
        try queue.write { db in
            let highest = try Int64.fetchOne(db, sql: "SELECT MAX(rowid) FROM \(table.quotedDatabaseIdentifier)") ?? 0
            try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = ?", arguments: [table])
            let value = max(seq, highest)
            if value > 0 { try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", arguments: [table, value]) }
        }
    }
}
