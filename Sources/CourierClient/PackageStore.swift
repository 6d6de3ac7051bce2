import CourierArchive
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What the device holds, as `state.json` keeps it (replaced atomically: a device killed at any
/// moment reads the old state or the new one).
public struct DeviceState: Codable, Equatable, Sendable {
    public struct App: Codable, Equatable, Sendable {
        /// The version the web view is served, nil when none is installed.
        public var installed: String?
        /// The version installed before, kept until `installed` passes its trial.
        public var previous: String?
        /// `installed` was just installed and its entry page has not been confirmed loaded.
        public var onTrial = false
        /// How many times it was opened while on trial.
        public var opens = 0
        /// Versions given up (their trial failed): never installed again, listed as `failed` in
        /// update checks until the server stops offering them.
        public var givenUp: [String] = []
        /// Downloaded and verified by size and hash, installed when the app is next opened (`lazy`).
        public var pending: String?
        /// Where each kept version (installed, previous, pending) is served from, as the answer
        /// that offered it said: a version never borrows another's fallback or entry page.
        public var serving: [String: Serving] = [:]
        /// A global package's files sit under `{globalHost}/{appKey}/`: that prefix, when it is one.
        public var globalRoot: String?

        /// The installed version's serving, else the pending one's, else the offered one's (held
        /// back for Wi-Fi: its online copy serves meanwhile).
        public var current: Serving? {
            installed.flatMap { serving[$0] } ?? pending.flatMap { serving[$0] } ?? (serving.count == 1 ? serving.values.first : nil)
        }
        public init() {}
    }
    public var apps: [String: App] = [:]
    public init() {}

    /// An app's virtual host, online copy and entry page for one version.
    public struct Serving: Codable, Equatable, Sendable {
        public var vhost: String?
        public var fallbackBase: String?
        public var mainUrl: String?
        public init(vhost: String?, fallbackBase: String?, mainUrl: String?) {
            self.vhost = vhost; self.fallbackBase = fallbackBase; self.mainUrl = mainUrl
        }
    }
}

/// A package installed from its `.amr`: where its files are, what was checked.
public struct InstalledPackage: Equatable, Sendable {
    public let appId: String
    public let version: String
    public let folder: String
    public let files: Int
    public let bytes: UInt64
    /// `SIGN.json`, `CERT.json`, or nil when no key is pinned and the package is unsigned.
    public let verifiedBy: String?
}

/// The device's packages on disk (SPEC §10 Install and Trial): `packages/{id}/{version}/` with
/// each version's files, `staging/` for installs under way, `state.json`. An install writes into
/// staging, checks the signature and every file, then renames the folder into place and replaces
/// the state; a leftover of a killed install is removed at start. At most two versions of an app
/// stay on disk: the installed one and the previous one until the trial passes.
public final class PackageStore: @unchecked Sendable {
    public let root: String
    private let lock = NSLock()
    /// Held across an install's rename, state change and clean-up, and by every clean-up: a
    /// folder is never deleted between its rename into place and the state that names it.
    private let diskLock = NSRecursiveLock()
    private var current: DeviceState
    /// The data folder's lock (`flock` on `lock`): one device process per folder.
    private var lockFD: Int32 = -1

    /// How many openings without `markLoaded` give a version up.
    public var maxTrialOpens = 2
    /// The largest `.amr` accepted (and what its files may take once written).
    public var maxPackageBytes: UInt64 = 1 << 30

    /// Reads what a data folder holds without changing anything (`courier device status`).
    public static func readState(root: String) throws -> DeviceState {
        guard let data = FileManager.default.contents(atPath: root + "/state.json") else { return DeviceState() }
        guard let state = try? JSONDecoder().decode(DeviceState.self, from: data) else {
            throw ClientFailure(.setup, "\(root)/state.json cannot be read; move it away to start again with nothing installed.")
        }
        return state
    }

    /// True while another process holds the folder (a running device).
    public static func isInUse(root: String) -> Bool {
        let fd = open(root + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) != 0
    }

    public init(root: String) throws {
        self.root = root
        for dir in [root, root + "/packages", root + "/staging"] {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                throw ClientFailure(.setup, "The data folder \(dir) could not be made: \(String(cString: strerror(errno))).")
            }
        }
        lockFD = open(root + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            if lockFD >= 0 { close(lockFD) }
            throw ClientFailure(.setup, "\(root) is in use by another device process; stop it first (or give another --data).")
        }
        // Whatever an install killed midway left is not part of any state.
        for leftover in (try? FileManager.default.contentsOfDirectory(atPath: root + "/staging")) ?? [] {
            try? FileManager.default.removeItem(atPath: root + "/staging/" + leftover)
        }
        unlink(root + "/state.json.tmp")
        do { current = try Self.readState(root: root) } catch {
            close(lockFD)
            throw error
        }
        removeUnlisted()
    }

    deinit { if lockFD >= 0 { close(lockFD) } }

    public var state: DeviceState { lock.withLock { current } }

    public func folder(_ appId: String, _ version: String) -> String { root + "/packages/\(appId)/\(version)" }

    // MARK: Install

    /// Verifies the `.amr` at `amrPath` for `appId` `version` and installs it: the previous
    /// version stays until this one passes its trial. Throws `verify_failed` (signature,
    /// manifest, hostile tar) or `install_failed` (disk); either way nothing changes.
    @discardableResult
    public func install(amr amrPath: String, appId: String, version: String, keys: PinnedKeys, rollback: Bool = false,
                        serving: DeviceState.Serving? = nil) throws -> InstalledPackage {
        guard TarExtractor.isSafe(appId), !appId.contains("/"), TarExtractor.isSafe(version), !version.contains("/") else {
            throw ClientFailure(.verifyFailed, "The answer names an app or version that is not a plain name.")
        }
        if state.apps[appId]?.givenUp.contains(version) == true {
            throw ClientFailure(.verifyFailed, "\(appId) \(version) was given up on this device (its trial failed); it is not installed again.")
        }
        let staging = root + "/staging/\(appId)-\(version)-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(staging, 0o700) == 0 else {
            throw ClientFailure(.installFailed, "The staging folder could not be made: \(String(cString: strerror(errno))).")
        }
        do {
            let result = try verifyAndExtract(amrPath, appId: appId, version: version, keys: keys, into: staging)
            let target = folder(appId, version)
            if mkdir(root + "/packages/\(appId)", 0o700) != 0 && errno != EEXIST {
                throw ClientFailure(.installFailed, "The app's folder could not be made: \(String(cString: strerror(errno))).")
            }
            try diskLock.withLock {
                // The same version again (a reinstall): the old folder leaves through staging, so a
                // device killed in between still has it (or the new one) where the state says.
                let trash = staging + ".old"
                let hadOld = rename(target, trash) == 0
                guard rename(staging, target) == 0 else {
                    if hadOld { rename(trash, target) }
                    throw ClientFailure(.installFailed, "The package could not be moved into place: \(String(cString: strerror(errno))).")
                }
                Self.syncFolder(root + "/packages/\(appId)")
                if hadOld { try? FileManager.default.removeItem(atPath: trash) }
                try update { s in
                    var app = s.apps[appId] ?? DeviceState.App()
                    if rollback {
                        app.previous = nil   // going back: nothing to come back to but what is offered
                    } else if app.installed != version {
                        // A version still on trial is not known good: the one before it stays the previous.
                        let before = app.onTrial ? app.previous ?? app.installed : app.installed
                        app.previous = before == version ? nil : before
                    }
                    app.installed = version
                    app.onTrial = true
                    app.opens = 0
                    if let pending = app.pending, !Self.isNewer(pending, than: version) { app.pending = nil }
                    if let serving { app.serving[version] = serving }
                    app.globalRoot = result.globalRoot
                    s.apps[appId] = app
                }
                removeUnlisted()
            }
            return InstalledPackage(appId: appId, version: version, folder: target, files: result.files, bytes: result.bytes,
                                    verifiedBy: result.verifiedBy)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// Runs `body` on the folder of `appId` `version` while it is the installed version and
    /// nothing removes it (a patch reads its base's files there).
    func withInstalledFiles<T>(_ appId: String, _ version: String, _ body: (String) throws -> T) throws -> T {
        try diskLock.withLock {
            guard state.apps[appId]?.installed == version else {
                throw ClientFailure(.patchFailed, "\(appId) \(version) is not the installed version; the patch is not for this device.")
            }
            return try body(folder(appId, version))
        }
    }

    /// Checks a downloaded `.amr` without installing it (a `lazy` package is verified when it
    /// arrives, so a bad one is reported at once): signature, manifest and every file.
    @discardableResult
    public func verify(amr amrPath: String, appId: String, version: String, keys: PinnedKeys) throws -> String? {
        try verifyAndExtract(amrPath, appId: appId, version: version, keys: keys, into: nil).verifiedBy
    }

    /// Compares two versions of four numbers (a malformed one is never newer).
    static func isNewer(_ a: String, than b: String) -> Bool {
        let x = a.split(separator: ".").compactMap { Int($0) }, y = b.split(separator: ".").compactMap { Int($0) }
        guard x.count == 4, y.count == 4 else { return false }
        return x.lexicographicallyPrecedes(y) == false && x != y
    }

    /// One pass over the tar: its files go to staging (when given) while its hashes are
    /// computed; the signature and the manifest are checked before anything leaves staging.
    func verifyAndExtract(_ amrPath: String, appId: String, version: String, keys: PinnedKeys,
                          into staging: String?) throws -> (files: Int, bytes: UInt64, verifiedBy: String?, globalRoot: String?) {
        let zip: ZipReader
        var limits = ZipLimits()
        limits.maxEntries = 4
        limits.maxTotalUncompressed = maxPackageBytes
        do { zip = try ZipReader(path: amrPath, limits: limits) } catch {
            throw ClientFailure(.verifyFailed, "The downloaded .amr is not a readable archive: \(error).")
        }
        let tarName = "\(appId).tar"
        var entries: [String: ZipEntry] = [:]
        for e in zip.entries {
            guard [tarName, "manifest.json", "SIGN.json", "CERT.json"].contains(e.name), entries[e.name] == nil else {
                throw ClientFailure(.verifyFailed, "The .amr holds an unexpected entry “\(e.name.prefix(80))”.")
            }
            entries[e.name] = e
        }
        guard let tar = entries[tarName], let manifestEntry = entries["manifest.json"] else {
            throw ClientFailure(.verifyFailed, "The .amr lacks \(tarName) or manifest.json.")
        }
        func small(_ e: ZipEntry?, limit: UInt64 = 64 * 1024) throws -> Data? {
            guard let e else { return nil }
            guard e.uncompressedSize <= limit else { throw ClientFailure(.verifyFailed, "\(e.name) is larger than \(limit) bytes.") }
            do { return Data(try zip.data(e)) } catch { throw ClientFailure(.verifyFailed, "\(e.name) cannot be read: \(error).") }
        }

        // The manifest says which files, how large, and their hashes.
        let expected = try PackageManifest(try small(manifestEntry, limit: 16 << 20) ?? Data(), appId: appId, version: version,
                                           maxBytes: tar.uncompressedSize).expected

        // Which signature will be checked, decided before reading a byte of the tar.
        let signJSON = try small(entries["SIGN.json"])
        let certJSON = try small(entries["CERT.json"])
        func signature(_ data: Data?) throws -> Data? {
            guard let data else { return nil }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: String],
                  let text = object[tarName], let sig = Data(base64Encoded: text) else {
                throw ClientFailure(.verifyFailed, "The signature file does not name \(tarName).")
            }
            return sig
        }
        let sign = try signature(signJSON)
        let cert = keys.allowSHA1 ? try signature(certJSON) : nil
        if !keys.isEmpty, sign == nil, cert == nil {
            throw ClientFailure(.verifyFailed, certJSON != nil
                ? "The package is signed with SHA-1 only (CERT.json), which this app does not accept."
                : "The package is not signed, and this app pins a signing key.")
        }

        // First the signature, over the whole tar: nothing of an unsigned or foreign package is
        // written anywhere. Then, from the same open file, the files, each against the manifest.
        var verifiedBy: String?
        if !keys.isEmpty {
            var sha256 = SHA256()
            var sha1 = Insecure.SHA1()
            let wantSHA1 = sign == nil && cert != nil
            do {
                try zip.read(tar) { chunk in
                    if wantSHA1 { sha1.update(bufferPointer: chunk) } else { sha256.update(bufferPointer: chunk) }
                }
            } catch {
                throw ClientFailure(.verifyFailed, "The package's tar cannot be read: \(error).")
            }
            if let sign {
                guard keys.verify(sha256: sha256.finalize(), signature: sign) else {
                    throw ClientFailure(.verifyFailed, "SIGN.json does not verify with a pinned key: the package was not signed by this app's key, or was changed.")
                }
                verifiedBy = "SIGN.json"
            } else if let cert {
                guard keys.verify(sha1: sha1.finalize(), signature: cert) else {
                    throw ClientFailure(.verifyFailed, "CERT.json does not verify with a pinned key.")
                }
                verifiedBy = "CERT.json"
            }
        }
        var extractor = TarExtractor(root: staging, expected: expected)
        do {
            try zip.read(tar) { chunk in try extractor.feed(chunk) }
            try extractor.finish()
        } catch let failure as ClientFailure {
            throw failure
        } catch {
            throw ClientFailure(.verifyFailed, "The package's tar cannot be read: \(error).")
        }
        if let staging { Self.syncFolder(staging) }
        // Global: every file under one `{host}/{appKey}/` (a host has a dot; a normal package's top folder does not).
        let roots = Set(expected.keys.map { $0.split(separator: "/").prefix(2).joined(separator: "/") })
        let globalRoot = roots.count == 1 && expected.keys.allSatisfy({ $0.split(separator: "/").count >= 3 })
            ? roots.first.flatMap { $0.split(separator: "/").first?.contains(".") == true ? $0 : nil } : nil
        return (extractor.written.count, extractor.bytes, verifiedBy, globalRoot)
    }

    // MARK: Trial

    /// The host confirms that `version`'s entry page loaded: the trial passes and the previous
    /// version's files go.
    public func markLoaded(_ appId: String, _ version: String) throws {
        try diskLock.withLock {
        try update { s in
            guard var app = s.apps[appId], app.installed == version, app.onTrial else { return }
            app.onTrial = false
            app.opens = 0
            app.previous = nil
            s.apps[appId] = app
        }
        removeUnlisted()
        }
    }

    /// The app was opened: a version on trial opened `maxTrialOpens` times without `markLoaded`
    /// is given up. Answers the version given up, if any.
    @discardableResult
    public func opened(_ appId: String) throws -> String? {
        var exceeded = false
        try update { s in
            guard var app = s.apps[appId], app.onTrial else { return }
            app.opens += 1
            exceeded = app.opens > maxTrialOpens
            s.apps[appId] = app
        }
        return exceeded ? try giveUp(appId) : nil
    }

    /// The installed version is given up (its trial failed, or the host reports it broken): the
    /// previous version comes back. Answers the version given up.
    @discardableResult
    public func giveUp(_ appId: String) throws -> String? {
        var given: String?
        try diskLock.withLock {
        try update { s in
            guard var app = s.apps[appId], let installed = app.installed else { return }
            given = installed
            if !app.givenUp.contains(installed) { app.givenUp.append(installed) }
            app.givenUp = Array(app.givenUp.suffix(20))   // bounded: the oldest are long gone from the server
            app.installed = app.previous == installed ? nil : app.previous
            app.previous = nil
            app.onTrial = false
            app.opens = 0
            if app.pending == installed { app.pending = nil }
            s.apps[appId] = app
        }
        removeUnlisted()
        }
        return given
    }

    /// Marks a downloaded version to install when the app is next opened (or clears it).
    public func setPending(_ appId: String, _ version: String?, serving: DeviceState.Serving? = nil) throws {
        try update { s in
            var app = s.apps[appId] ?? DeviceState.App()
            app.pending = version
            if let version, let serving { app.serving[version] = serving }
            s.apps[appId] = app
        }
    }

    /// Remembers where an app not installed yet is served from (its online copy meanwhile), and
    /// forgets apps that hold nothing and are not offered any more: the state stays as large as
    /// what the device has and is offered.
    public func offered(_ serving: [String: (version: String, serving: DeviceState.Serving)]) throws {
        try update { s in
            for (id, o) in serving where s.apps[id]?.installed == nil && s.apps[id]?.pending == nil {
                var app = s.apps[id] ?? DeviceState.App()
                app.serving = [o.version: o.serving]
                s.apps[id] = app
            }
            for (id, app) in s.apps where app.installed == nil && app.pending == nil && app.givenUp.isEmpty && serving[id] == nil {
                s.apps[id] = nil
            }
        }
    }

    // MARK: Events

    /// Events waiting to be sent, oldest first, kept in `events.json` (at most `maxEvents`: the
    /// oldest go first when the server stays unreachable).
    public static let maxEvents = 1000
    private var events: [[String: String]]?

    public func queueEvent(_ event: [String: String]) {
        lock.withLock {
            var list = events ?? loadEvents()
            list.append(event)
            if list.count > Self.maxEvents { list.removeFirst(list.count - Self.maxEvents) }
            events = list
            saveEvents(list)
        }
    }

    public func queuedEvents() -> [[String: String]] { lock.withLock { events ?? loadEvents() } }

    public func dropEvent(_ event: [String: String]) {
        lock.withLock {
            var list = events ?? loadEvents()
            if let i = list.firstIndex(of: event) { list.remove(at: i) }
            events = list
            saveEvents(list)
        }
    }

    private func loadEvents() -> [[String: String]] {
        guard let data = FileManager.default.contents(atPath: root + "/events.json"), data.count <= 4 << 20,
              let list = try? JSONDecoder().decode([[String: String]].self, from: data) else { return [] }
        return Array(list.suffix(Self.maxEvents))
    }

    private func saveEvents(_ list: [[String: String]]) {
        guard let data = try? JSONEncoder().encode(list) else { return }
        let tmp = root + "/events.json.tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else { return }
        rename(tmp, root + "/events.json")
    }

    // MARK: State

    /// Changes the state and replaces `state.json` atomically (temp file, fsync, rename, fsync
    /// of the folder). The change is kept only once it is on disk.
    func update(_ change: (inout DeviceState) -> Void) throws {
        try lock.withLock {
            var next = current
            change(&next)
            guard next != current else { return }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let data = try encoder.encode(next)
            let tmp = root + "/state.json.tmp"
            let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ClientFailure(.installFailed, "state.json could not be written: \(String(cString: strerror(errno))).") }
            do {
                try data.withUnsafeBytes { try TarExtractor.writeAll(fd, $0, path: "state.json") }
                guard fsync(fd) == 0 else { throw ClientFailure(.installFailed, "state.json could not be written to disk.") }
                close(fd)
            } catch {
                close(fd)
                unlink(tmp)
                throw error
            }
            guard rename(tmp, root + "/state.json") == 0 else {
                unlink(tmp)
                throw ClientFailure(.installFailed, "state.json could not be replaced: \(String(cString: strerror(errno))).")
            }
            Self.syncFolder(root)
            current = next
        }
    }

    /// Removes version folders the state does not name (bounded disk: installed and previous).
    func removeUnlisted() {
        diskLock.lock()
        defer { diskLock.unlock() }
        // What is served from is kept for the versions kept.
        try? update { s in
            for (id, var app) in s.apps {
                let kept = Set([app.installed, app.previous, app.pending].compactMap { $0 })
                if !kept.isEmpty { app.serving = app.serving.filter { kept.contains($0.key) } }
                s.apps[id] = app
            }
        }
        let s = state
        let fm = FileManager.default
        for app in (try? fm.contentsOfDirectory(atPath: root + "/packages")) ?? [] {
            let keep = Set([s.apps[app]?.installed, s.apps[app]?.previous].compactMap { $0 })
            for version in (try? fm.contentsOfDirectory(atPath: root + "/packages/" + app)) ?? [] where !keep.contains(version) {
                try? fm.removeItem(atPath: root + "/packages/\(app)/\(version)")
            }
        }
    }

    static func syncFolder(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

/// A package's `manifest.json` (SPEC §3), read without trusting it: its ID and version, at most
/// 20,000 files, each a safe relative path listed once, their sizes adding up to at most `maxBytes`.
struct PackageManifest {
    struct Entry: Decodable {
        let path: String
        let size: UInt64
        let sha256: String
    }
    private struct Document: Decodable {
        let id: String
        let version: String
        let files: [Entry]
    }
    /// In the manifest's order (the tar's), SHA-256 in lower case.
    let files: [Entry]
    let expected: [String: (size: UInt64, sha256: String)]

    init(_ data: Data, appId: String, version: String, maxBytes: UInt64) throws {
        guard let manifest = try? JSONDecoder().decode(Document.self, from: data) else {
            throw ClientFailure(.verifyFailed, "manifest.json cannot be read.")
        }
        guard manifest.id == appId, manifest.version == version else {
            throw ClientFailure(.verifyFailed, "manifest.json is for \(manifest.id.prefix(20)) \(manifest.version.prefix(20)), not \(appId) \(version).")
        }
        guard manifest.files.count <= 20_000 else { throw ClientFailure(.verifyFailed, "manifest.json lists more than 20,000 files.") }
        var expected: [String: (size: UInt64, sha256: String)] = [:]
        var total: UInt64 = 0
        for f in manifest.files {
            guard expected[f.path] == nil, TarExtractor.isSafe(f.path) else {
                throw ClientFailure(.verifyFailed, "manifest.json lists “\(f.path.prefix(80))” twice or as an unsafe path.")
            }
            let (sum, overflow) = total.addingReportingOverflow(f.size)
            guard !overflow, sum <= maxBytes else { throw ClientFailure(.verifyFailed, "manifest.json lists more bytes than the tar holds.") }
            total = sum
            expected[f.path] = (f.size, f.sha256.lowercased())
        }
        files = manifest.files.map { Entry(path: $0.path, size: $0.size, sha256: $0.sha256.lowercased()) }
        self.expected = expected
    }
}
