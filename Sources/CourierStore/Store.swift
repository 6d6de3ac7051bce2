import CourierCore
import Crypto
import Foundation

/// The request a change is made for: set by the server around each request, logged with the change.
public enum ChangeLog {
    @TaskLocal public static var requestID: String?
}

/// Content-addressed files: `blobs/ab/abcdef….amr`, named by the SHA-256 of their bytes.
/// Files arrive by rename from `tmp/` after an fsync, so a blob on disk is always whole.
public struct BlobStore: Sendable {
    public let root: URL
    /// Held while a blob and the rows that refer to it change together (across awaits).
    package let lock = AsyncMutex()
    public var temporaryDirectory: URL { root.appendingPathComponent("tmp", isDirectory: true) }
    package var blobDirectory: URL { root.appendingPathComponent("blobs", isDirectory: true) }

    /// On a folder several nodes share: this node's tag (a hash of its name). Its temp files'
    /// names start with it, and a blob it adds is first marked `pending/{tag}/{sha256}`, so that
    /// the node, restarting after a crash, removes what it left half-done at once, while what
    /// other nodes may be writing is left alone (their files are swept only after an hour).
    public let owner: String?
    var pendingDirectory: URL? { owner.map { root.appendingPathComponent("pending/" + $0, isDirectory: true) } }

    package init(root: URL, node: String? = nil) throws {
        self.root = root
        owner = node.map { "n" + TokenHash.of($0).prefix(16) }
        try PrivateDirectory.prepare(temporaryDirectory.path)
        try PrivateDirectory.prepare(blobDirectory.path)
        if let pendingDirectory {
            try PrivateDirectory.prepare(root.appendingPathComponent("pending").path)
            try PrivateDirectory.prepare(pendingDirectory.path)
        }
    }

    /// Where a blob lies inside a data folder (and a backup): `blobs/ab/abcdef….amr`.
    public static func relativePath(for sha256: String) -> String { "blobs/\(sha256.prefix(2))/\(sha256).amr" }
    public func relativePath(for sha256: String) -> String { Self.relativePath(for: sha256) }

    public func path(for sha256: String) -> String {
        blobDirectory.appendingPathComponent(String(sha256.prefix(2))).appendingPathComponent(sha256 + ".amr").path
    }

    /// A fresh path under `tmp/` for an upload or a build in progress.
    public func temporaryPath(suffix: String) -> String {
        temporaryDirectory.appendingPathComponent((owner.map { $0 + "-" } ?? "") + UUID().uuidString + suffix).path
    }

    /// Moves a finished temp file into the store under its hash (marked pending first, on a
    /// shared folder: until its rows commit, only this node's restart may take it away).
    public func adopt(_ tempPath: String, sha256: String) throws {
        let target = path(for: sha256)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let pendingDirectory {
            let fd = open(pendingDirectory.appendingPathComponent(sha256).path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
            close(fd)
        }
        if rename(tempPath, target) != 0 { throw CocoaError(.fileWriteUnknown) }
    }

    /// This node's pending marks: the blobs it added since it last started (or within the
    /// last day), some of which a crash may have left without rows.
    package func ownPending() -> [String] {
        guard let pendingDirectory else { return [] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: pendingDirectory.path)) ?? []).filter { $0.count == 64 }
    }

    /// Every node's pending marks, or only the other nodes' (the same bytes being added there now).
    package func pendingAnywhere(butHere: Bool = false) -> Set<String> {
        let all = root.appendingPathComponent("pending")
        var marks = Set<String>()
        for node in (try? FileManager.default.contentsOfDirectory(atPath: all.path)) ?? [] where !(butHere && node == owner) {
            marks.formUnion(((try? FileManager.default.contentsOfDirectory(atPath: all.appendingPathComponent(node).path)) ?? []).filter { $0.count == 64 })
        }
        return marks
    }

    /// Forgets this node's pending marks: all of them, or those older than `cutoff` (a day: by
    /// then the change that added the blob, a long key switch included, has committed or failed).
    package func forgetPending(untouchedSince cutoff: Date? = nil) {
        guard let pendingDirectory else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: pendingDirectory.path)) ?? []
        where Self.untouched(pendingDirectory.appendingPathComponent(name).path, since: cutoff) {
            unlink(pendingDirectory.appendingPathComponent(name).path)
        }
    }

    public func remove(_ sha256: String) { unlink(path(for: sha256)) }

    /// Can a file be created in `tmp/` right now (`/readyz`)? Creates and removes a probe.
    public func probeWritable() -> Bool {
        let probe = temporaryPath(suffix: ".probe")
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        close(fd)
        unlink(probe)
        return true
    }

    /// Removes temp files left alone since `cutoff` (all without one); this node's own at any
    /// age (it calls this starting up, so none of its own is being written).
    package func clearTemporaryFiles(untouchedSince cutoff: Date? = nil) -> Int {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory.path)) ?? [])
            .filter { name in
                (owner.map { name.hasPrefix($0 + "-") } ?? false) || Self.untouched(temporaryDirectory.appendingPathComponent(name).path, since: cutoff)
            }
        for n in names { try? FileManager.default.removeItem(at: temporaryDirectory.appendingPathComponent(n)) }
        return names.count
    }

    package func removeAll(except keep: Set<String>, untouchedSince cutoff: Date? = nil) -> Int {
        var removed = 0
        let fm = FileManager.default
        for dir in (try? fm.contentsOfDirectory(atPath: blobDirectory.path)) ?? [] {
            let sub = blobDirectory.appendingPathComponent(dir)
            for name in (try? fm.contentsOfDirectory(atPath: sub.path)) ?? [] where name.hasSuffix(".amr") {
                if !keep.contains(String(name.dropLast(4))), Self.untouched(sub.appendingPathComponent(name).path, since: cutoff) {
                    try? fm.removeItem(at: sub.appendingPathComponent(name))
                    removed += 1
                }
            }
        }
        return removed
    }

    /// True without a cutoff, or when the file was neither written nor linked or renamed since
    /// it (a hard link or a rename keeps the modification time; it moves the change time).
    package static func untouched(_ path: String, since cutoff: Date?) -> Bool {
        guard let cutoff else { return true }
        var st = stat()
        guard lstat(path, &st) == 0 else { return false }
        #if canImport(Darwin)
        let last = max(st.st_mtimespec.tv_sec, st.st_ctimespec.tv_sec)
        #else
        let last = max(st.st_mtim.tv_sec, st.st_ctim.tv_sec)
        #endif
        return Date(timeIntervalSince1970: TimeInterval(last)) < cutoff
    }
}

public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    package init(_ d: String) { description = d }
}

public enum TokenHash {
    /// Secrets (session ids, API tokens) are stored only as their SHA-256.
    public static func of(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    public static func randomSecret(bytes: Int = 32) -> String {
        var g = SystemRandomNumberGenerator()
        let raw = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) }
        return Data(raw).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// A lock that can be held across `await` (NSLock cannot): waiters queue in order.
public final class AsyncMutex: @unchecked Sendable {
    private let lock = NSLock()
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func run<T>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let granted = lock.withLock { () -> Bool in
                if locked { waiters.append(c); return false }
                locked = true
                return true
            }
            if granted { c.resume() }
        }
    }

    private func release() {
        let next = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            if waiters.isEmpty { locked = false; return nil }
            return waiters.removeFirst()
        }
        next?.resume()
    }
}


/// A row of the H5 apps list.
public struct AppSummary: Decodable, Sendable {
    public var id: String
    public var name: String
    public var type: PackageType?
    public var packageCount: Int
    public var latestVersion: String?
    /// The newest package's status.
    public var latestStatus: PackageStatus?
    /// The app's release to find again: its newest unfinished task, else its newest task that
    /// released (else the newest one).
    public var releaseTaskId: Int64?
    /// What clients are offered officially now (`AppReleases.liveOfficial`).
    public var officialVersion: String?
    public var createdAt: Date

    public init(id: String, name: String, type: PackageType?, packageCount: Int, latestVersion: String?, createdAt: Date) {
        self.id = id; self.name = name; self.type = type; self.packageCount = packageCount
        self.latestVersion = latestVersion; self.createdAt = createdAt
    }
}

public struct Page<T: Sendable>: Sendable {
    public var items: [T]
    public var total: Int
    public var page: Int
    public var perPage: Int
    public var pageCount: Int { max(1, (total + perPage - 1) / perPage) }

    public init(items: [T], total: Int, page: Int, perPage: Int) {
        self.items = items; self.total = total; self.page = page; self.perPage = perPage
    }
}
/// A re-signed package: its new `.amr` (already in the blob store) replaces the old one.
public struct ResignedPackage: Sendable {
    public let packageId: Int64
    public let oldBlob: String
    public let blob: String
    public let size: Int64
    public let md5: String
    public let tarOffset: Int64
    public init(packageId: Int64, oldBlob: String, blob: String, size: Int64, md5: String, tarOffset: Int64) {
        self.packageId = packageId; self.oldBlob = oldBlob; self.blob = blob; self.size = size; self.md5 = md5
        self.tarOffset = tarOffset
    }
}


/// Folders only Courier's user may enter.
public enum PrivateDirectory {
    /// Creates `path` (and parents) or tightens an existing one to 0700: owner only.
    public static func prepare(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        guard chmod(path, 0o700) == 0 else {
            throw StoreError("Cannot make \(path) private (chmod 0700): \(String(cString: strerror(errno))).")
        }
    }
}

/// A device as `eventSeen` keeps it: 16 hex digits of its SHA-256 (`DeviceKey`), a fixed size
/// whatever a client sends.
package enum EventKey {
    package static func of(_ device: String) -> String { of(DeviceKey.of(device)) }
    package static func of(_ key: UInt64) -> String {
        let hex = String(key, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// An app's version as adoption sketches name it: `{appId}/{version}`.
public struct AdoptionKey: Hashable, Sendable {
    public let appId: String
    public let version: String
    public init(appId: String, version: String) { self.appId = appId; self.version = version }
    public var subject: String { appId + "/" + version }
    /// Hours of adoption sketches kept: the last day, and the hour going on.
    public static let hoursKept: Int64 = 25
}

/// A ramp step asked for that another run (or node) already took, or that is not due.
package struct RampStepNotDue: Error {
    package init() {}
}

/// A device ID as a fixed-size key (the first 8 bytes of its SHA-256): what a client sends
/// may be long; what Courier remembers per device is not.
public enum DeviceKey {
    public static func of(_ device: String) -> UInt64 {
        SHA256.hash(data: Data(device.utf8)).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// A `LIKE … ESCAPE '\\'` pattern for text containing `text` as typed (its `%`, `_` and `\\`
/// match themselves); PostgreSQL's LIKE escapes with `\\` by default.
package enum LikePattern {
    /// Text starting with `text` as typed.
    package static func prefix(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }
    package static func containing(_ text: String) -> String {
        "%" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }
}
