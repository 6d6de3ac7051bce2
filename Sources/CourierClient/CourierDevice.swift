import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What one round of checking did, for the host's log and `courier device`'s output.
public struct RoundReport: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Installed (a rollback too), verified by `SIGN.json`, `CERT.json` or nothing.
        case installed(verifiedBy: String?, rollback: Bool)
        /// Downloaded and verified size and hash; installs when the app is first opened (`lazy`).
        case waitingForOpen
        /// Not downloaded: the package waits for Wi-Fi.
        case heldBackForWiFi
        /// This device gave the version up; it is not installed again.
        case givenUp
        /// Already installed on this device.
        case alreadyInstalled
        /// Downloaded and verified in an earlier round, still waiting for the app to be opened.
        case stillWaitingForOpen
        case failed(ClientFailure)
    }
    /// How a package came down: whole, or as a patch from the installed version (SPEC §3).
    public enum Download: Equatable, Sendable {
        case full(bytes: UInt64)
        case patch(from: String, bytes: UInt64, fullBytes: UInt64)
    }
    public struct Line: Sendable {
        public let appId: String
        public let version: String
        public let outcome: Outcome
        /// Nil when nothing was downloaded this round.
        public var download: Download? = nil
    }
    /// False when the interval held the check back (not forced).
    public var checked = false
    /// The server could not be reached or answered garbage: nothing changed.
    public var unreachable: String?
    /// The server answered the check with an error (its words): nothing changed.
    public var answeredWithError: String?
    public var lines: [Line] = []
    /// Entries of the answer that could not be read.
    public var refused: [String] = []
    public var failed: Bool { lines.contains { if case .failed = $0.outcome { true } else { false } } }
    public var verifyFailed: Bool { lines.contains { if case .failed(let f) = $0.outcome { f.kind == .verifyFailed } else { false } } }
}

/// The device side of SPEC §10 on one data folder: asks Courier what to install, downloads
/// (resuming, on Wi-Fi when asked), verifies, installs, and reports what happened.
public final class CourierDevice: @unchecked Sendable {
    public let server: URL
    public var profile: DeviceProfile
    public let keys: PinnedKeys
    public let store: PackageStore
    let transport: Transport
    let lock = NSLock()
    private var nextCheck: Date = .distantPast
    /// Told about twice a second while a package downloads: app, version, bytes on disk, size.
    /// For a host's progress bar (`courier device` draws one on a terminal).
    public var progress: (@Sendable (_ appId: String, _ version: String, _ have: UInt64, _ total: UInt64) -> Void)?

    public init(server: URL, profile: DeviceProfile, keys: PinnedKeys, store: PackageStore, transport: Transport = URLSessionTransport()) {
        self.server = server
        self.profile = profile
        self.keys = keys
        self.store = store
        self.transport = transport
    }

    var downloads: String { store.root + "/downloads" }

    /// One round: unless `force`, not before the interval the last answer set (with jitter).
    public func check(force: Bool = false, now: Date = Date()) async -> RoundReport {
        var report = RoundReport()
        guard force || now >= lock.withLock({ nextCheck }) else { return report }
        report.checked = true
        await flushEvents(now: now)
        let answer: UpdateAnswer
        do {
            answer = try await ask()
        } catch let f as ClientFailure where f.kind == .setup {
            report.answeredWithError = f.message
            return report
        } catch {
            report.unreachable = "\(error)"
            return report
        }
        report.refused = answer.refused
        let interval = Double(answer.offers.compactMap(\.asyncReqRate).min() ?? answer.updateReqRate ?? 1800)
        lock.withLock { nextCheck = now.addingTimeInterval(interval * Double.random(in: 1.0...1.1)) }
        // Given-up versions stay listed (the last 20 of each app): the server remembers them per
        // device too, but a device never relies on another's memory to stay safe.
        var offers: [PackageOffer] = []
        for offer in answer.offers {
            if let why = acceptable(offer) {
                report.refused.append(why)
            } else {
                offers.append(offer)
            }
        }
        try? store.offered(Dictionary(offers.map { ($0.appId, ($0.version, Self.serving($0))) }, uniquingKeysWith: { a, _ in a }))
        cleanDownloads(keeping: offers)
        for offer in offers {
            let (outcome, download) = await take(offer)
            report.lines.append(.init(appId: offer.appId, version: offer.version, outcome: outcome, download: download))
        }
        return report
    }

    static func serving(_ o: PackageOffer) -> DeviceState.Serving {
        DeviceState.Serving(vhost: o.vhost, fallbackBase: o.fallbackBase?.absoluteString, mainUrl: o.mainURL)
    }

    /// Why an offer is not taken, or nil: larger than this device accepts, a virtual host that
    /// is not its own app's, an online copy away from the package's own server.
    func acceptable(_ o: PackageOffer) -> String? {
        if o.size > store.maxPackageBytes + (1 << 20) {
            return "\(o.appId) \(o.version) is \(o.size) bytes, more than this device accepts (\(store.maxPackageBytes))."
        }
        if let vhost = o.vhost, URL(string: vhost)?.host?.lowercased().hasPrefix(o.appId + ".") != true {
            return "\(o.appId) \(o.version) names a virtual host that is not its own (\(vhost.prefix(80)))."
        }
        if let f = o.fallbackBase, f.scheme != o.packageURL.scheme || f.host != o.packageURL.host || f.port != o.packageURL.port
            || !f.path.hasPrefix("/fallback/\(o.appId)/") {
            return "\(o.appId) \(o.version) names an online copy away from its package's server."
        }
        return nil
    }

    /// Downloads nothing is waiting for any more go (a `.part` of a version no longer offered, a
    /// lazy package replaced by a newer one).
    func cleanDownloads(keeping offers: [PackageOffer]) {
        let state = store.state
        var keep = Set(offers.flatMap { o in
            ["\(o.appId)-\(o.version).amr", "\(o.appId)-\(o.version).amr.part"]
                + (o.patch.map { ["\(o.appId)-\(o.version).patch-\($0.from).amr", "\(o.appId)-\(o.version).patch-\($0.from).amr.part"] } ?? [])
        })
        for (id, app) in state.apps { if let p = app.pending { keep.insert("\(id)-\(p).amr") } }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: downloads)) ?? [] where !keep.contains(name) {
            unlink(downloads + "/" + name)
        }
    }

    /// The update request: the profile, what is installed, what was given up.
    func requestBody() throws -> Data {
        let state = store.state
        var body: [String: Any] = [
            "platform": profile.platform, "clientVersion": profile.clientVersion, "deviceId": profile.deviceId,
            "userId": profile.userId, "model": profile.model, "osVersion": profile.osVersion, "network": profile.network,
            "city": profile.city, "all": true,
        ]
        body["apps"] = state.apps.keys.sorted().map { ["id": $0, "version": state.apps[$0]?.installed ?? "0"] }
        body["failed"] = state.apps.keys.sorted().flatMap { id in
            (state.apps[id]?.givenUp ?? []).map { ["id": id, "version": $0, "reason": "trial failed"] }
        }
        return try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
    }

    func ask() async throws -> UpdateAnswer {
        let url = server.appendingPathComponent("client/v1/update")
        let (status, data): (Int, Data)
        do { (status, data) = try await transport.post(url, json: try requestBody(), limit: UpdateAnswer.maxBytes) } catch {
            throw ClientFailure(.downloadFailed, "Courier at \(server.absoluteString) could not be reached: \(error)")
        }
        guard status == 200 else {
            let said = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["error"] as? String
            throw ClientFailure(.setup, "Courier answered the update check with \(status)" + (said.map { ": \($0)" } ?? "."))
        }
        return try UpdateAnswer.parse(data)
    }

    /// Downloads (a patch when one is offered from the installed version, else the whole
    /// package), verifies and (for `preload` and rollbacks) installs one offer.
    func take(_ offer: PackageOffer) async -> (RoundReport.Outcome, RoundReport.Download?) {
        let app = store.state.apps[offer.appId]
        if app?.givenUp.contains(offer.version) == true { return (.givenUp, nil) }
        if app?.installed == offer.version { return (.alreadyInstalled, nil) }
        if app?.pending == offer.version, FileManager.default.fileExists(atPath: downloads + "/\(offer.appId)-\(offer.version).amr") {
            return (.stillWaitingForOpen, nil)   // downloaded and verified already; told once
        }
        if !offer.anyNetwork && !profile.onWiFi && !offer.rollback { return (.heldBackForWiFi, nil) }
        var how: RoundReport.Download?
        do {
            let path: String
            if let patch = offer.patch, app?.installed == patch.from, let rebuilt = await patched(offer, patch) {
                path = rebuilt
                how = .patch(from: patch.from, bytes: patch.size, fullBytes: offer.size)
            } else {
                path = try await download(offer)
                how = .full(bytes: offer.size)
            }
            await report("download_ok", offer)
            if offer.preload || offer.rollback {
                return (try await install(offer, from: path), how)
            }
            do { try store.verify(amr: path, appId: offer.appId, version: offer.version, keys: keys) } catch {
                unlink(path)   // refused now, not when the app is opened
                throw error
            }
            try store.setPending(offer.appId, offer.version, serving: Self.serving(offer))
            return (.waitingForOpen, how)
        } catch let failure as ClientFailure {
            await report(failure.kind.rawValue, offer)
            return (.failed(failure), how)
        } catch {
            return (.failed(ClientFailure(.installFailed, "\(error)")), how)
        }
    }

    /// The patch downloaded (resumed, size and SHA-256 checked) and applied to the installed
    /// files: `downloads/{id}-{version}.amr`, the full package byte for byte. Nil when that
    /// fails anywhere: the patch is deleted, `patch_failed` reported, and the caller downloads
    /// the whole package.
    func patched(_ offer: PackageOffer, _ patch: PatchOffer) async -> String? {
        let path = downloads + "/\(offer.appId)-\(offer.version).patch-\(patch.from).amr"
        let done = downloads + "/\(offer.appId)-\(offer.version).amr"
        let out = done + ".rebuilt"
        defer { unlink(out) }
        do {
            _ = try await download(patch.url, size: patch.size, sha256: patch.sha256, to: path, app: offer.appId, version: offer.version)
            defer { unlink(path) }
            let made = try store.withInstalledFiles(offer.appId, patch.from) { folder in
                try PatchApplier.rebuild(patch: path, baseFolder: folder, appId: offer.appId, version: offer.version,
                                         maxBytes: store.maxPackageBytes, to: out)
            }
            guard made.size == offer.size, made.sha256 == offer.sha256 else {
                throw ClientFailure(.patchFailed, "The patch did not give \(offer.version)'s package (its size or SHA-256 differs).")
            }
            guard rename(out, done) == 0 else { throw ClientFailure(.installFailed, "The rebuilt package could not be kept.") }
            return done
        } catch {
            unlink(path + ".part")
            await report(ClientFailure.Kind.patchFailed.rawValue, offer)
            return nil
        }
    }

    func install(_ offer: PackageOffer, from path: String) async throws -> RoundReport.Outcome {
        do {
            let done = try store.install(amr: path, appId: offer.appId, version: offer.version, keys: keys, rollback: offer.rollback,
                                         serving: Self.serving(offer))
            unlink(path)
            await report(offer.rollback ? "rollback" : "install_ok", offer)
            return .installed(verifiedBy: done.verifiedBy, rollback: offer.rollback)
        } catch {
            unlink(path)   // a package that failed verification is not kept (a new download next time)
            throw error
        }
    }

    /// Seeds the device offline from a preset `h5_json.json` (SPEC §4: the app's official
    /// versions, shipped inside an app build) and the `.amr` files shipped beside it
    /// (`{folder}/{appId}-{version}.amr` or `{folder}/{appId}.amr`): each is checked against the
    /// preset's size and SHA-256, verified and installed, unless a newer version is installed.
    public func seed(preset: Data, packages folder: String) async -> RoundReport {
        var report = RoundReport()
        report.checked = true
        let answer: UpdateAnswer
        do { answer = try UpdateAnswer.parse(preset) } catch {
            report.answeredWithError = "The preset cannot be read: \(error)"
            return report
        }
        report.refused = answer.refused
        for offer in answer.offers {
            if let why = acceptable(offer) { report.refused.append(why); continue }
            if let installed = store.state.apps[offer.appId]?.installed, !PackageStore.isNewer(offer.version, than: installed) {
                report.lines.append(.init(appId: offer.appId, version: offer.version, outcome: .alreadyInstalled))
                continue
            }
            let candidates = ["\(folder)/\(offer.appId)-\(offer.version).amr", "\(folder)/\(offer.appId).amr"]
            guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                report.lines.append(.init(appId: offer.appId, version: offer.version,
                                          outcome: .failed(ClientFailure(.downloadFailed, "No .amr for it in \(folder)."))))
                continue
            }
            let outcome: RoundReport.Outcome
            do {
                let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
                guard size == offer.size, try Self.sha256(path) == offer.sha256 else {
                    throw ClientFailure(.verifyFailed, "\(path) is not the package the preset describes (size or SHA-256).")
                }
                let done = try store.install(amr: path, appId: offer.appId, version: offer.version, keys: keys, serving: Self.serving(offer))
                outcome = .installed(verifiedBy: done.verifiedBy, rollback: false)
            } catch let f as ClientFailure {
                outcome = .failed(f)
            } catch {
                outcome = .failed(ClientFailure(.installFailed, "\(error)"))
            }
            report.lines.append(.init(appId: offer.appId, version: offer.version, outcome: outcome))
        }
        return report
    }

    private let opening = OpeningGate()

    /// The host opens an app: a package waiting for it (`lazy`, newer than the installed one) is
    /// installed first, then the opening counts toward the trial. One opening at a time per
    /// device. Answers the version given up, if the trial failed.
    @discardableResult
    public func opened(_ appId: String) async throws -> String? {
        try await opening.run {
            let app = store.state.apps[appId]
            if let pending = app?.pending {
                let path = downloads + "/\(appId)-\(pending).amr"
                let newer = app?.installed.map { PackageStore.isNewer(pending, than: $0) } ?? true
                if newer, FileManager.default.fileExists(atPath: path) {
                    let serving = app?.serving[pending]
                    do {
                        _ = try store.install(amr: path, appId: appId, version: pending, keys: keys, serving: serving)
                        unlink(path)
                        queue("install_ok", appId: appId, version: pending)
                    } catch let f as ClientFailure {
                        unlink(path)
                        queue(f.kind.rawValue, appId: appId, version: pending)
                    }
                }
                try store.setPending(appId, nil)
            }
            let given = try store.opened(appId)
            if let given { queue("trial_failed", appId: appId, version: given) }
            return given
        }
    }

    /// The host reports the installed version broken: its trial fails.
    @discardableResult
    public func broken(_ appId: String) async throws -> String? {
        let given = try store.giveUp(appId)
        if let given { await report("trial_failed", appId: appId, version: given) }
        return given
    }

    /// `downloads/{id}-{version}.amr`, resumed from a `.part` left by an interrupted download;
    /// its size and SHA-256 checked against the answer.
    func download(_ offer: PackageOffer) async throws -> String {
        try await download(offer.packageURL, size: offer.size, sha256: offer.sha256, to: downloads + "/\(offer.appId)-\(offer.version).amr",
                           app: offer.appId, version: offer.version)
    }

    /// `url` into `done`, resumed from `done.part`, its size and SHA-256 checked.
    func download(_ url: URL, size: UInt64, sha256: String, to done: String, app: String, version: String) async throws -> String {
        if mkdir(downloads, 0o700) != 0 && errno != EEXIST {
            throw ClientFailure(.installFailed, "The downloads folder could not be made: \(String(cString: strerror(errno))).")
        }
        if FileManager.default.fileExists(atPath: done), (try? Self.sha256(done)) == sha256 { return done }
        let part = done + ".part"
        let fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ClientFailure(.installFailed, "The download could not be written: \(String(cString: strerror(errno))).") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        var have = UInt64(max(0, st.st_size))
        if have > size { ftruncate(fd, 0); have = 0 }
        if have < size {
            let from = have
            have = try await withProgress(app, version, size: size, fd: fd) {
                try await self.transport.download(url, into: fd, from: from, limit: size)
            }
        }
        guard fsync(fd) == 0 else { throw ClientFailure(.installFailed, "The download could not be written to disk.") }
        guard have == size else {
            throw ClientFailure(.downloadFailed, "The download ended at \(have) of \(size) bytes; it resumes next time.")
        }
        guard try Self.sha256(part) == sha256 else {
            unlink(part)
            throw ClientFailure(.downloadFailed, "The downloaded package does not match the SHA-256 of the answer; it was deleted.")
        }
        guard rename(part, done) == 0 else { throw ClientFailure(.installFailed, "The download could not be kept: \(String(cString: strerror(errno))).") }
        return done
    }

    /// Runs a download, telling `progress` what the file holds until it ends (and never after).
    func withProgress(_ app: String, _ version: String, size: UInt64, fd: Int32, _ body: @Sendable () async throws -> UInt64) async throws -> UInt64 {
        guard let tell = progress else { return try await body() }
        let ticker = Task {
            while !Task.isCancelled {
                var st = stat()
                if fstat(fd, &st) == 0 { tell(app, version, UInt64(max(0, st.st_size)), size) }
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
        let result: Result<UInt64, Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        ticker.cancel()
        await ticker.value
        return try result.get()
    }

    static func sha256(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ClientFailure(.installFailed, "\(path) cannot be read.") }
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(data: chunk) }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    // MARK: Events

    func report(_ event: String, _ offer: PackageOffer) async { await report(event, appId: offer.appId, version: offer.version) }

    /// Sends an event (SPEC §4); one that cannot be sent now waits in the queue on disk.
    func report(_ event: String, appId: String, version: String) async {
        queue(event, appId: appId, version: version)
        await flushEvents()
    }

    func queue(_ event: String, appId: String, version: String) {
        store.queueEvent(["deviceId": profile.deviceId, "appId": appId, "version": version, "event": event])
    }

    private var eventsBackoff: (until: Date, seconds: Double) = (.distantPast, 0)

    /// Sends queued events, oldest first, 50 at most; stops at the first that cannot be sent (kept
    /// for later, the wait doubling up to 10 minutes). One the server refuses (400: a task deleted
    /// since) is dropped.
    public func flushEvents(now: Date = Date()) async {
        guard now >= lock.withLock({ eventsBackoff.until }) else { return }
        let url = server.appendingPathComponent("client/v1/events")
        for event in store.queuedEvents().prefix(50) {
            guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]),
                  let (status, _) = try? await transport.post(url, json: data, limit: 4096), status == 204 || status == 400 else {
                lock.withLock {
                    let next = min(600, max(5, eventsBackoff.seconds * 2))
                    eventsBackoff = (now.addingTimeInterval(next), next)
                }
                return
            }
            store.dropEvent(event)
        }
        lock.withLock { eventsBackoff = (.distantPast, 0) }
    }
}

/// Runs one body at a time (an app opened twice at once installs its pending package once).
actor OpeningGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        while busy { await withCheckedContinuation { waiting.append($0) } }
        busy = true
        defer {
            busy = false
            if !waiting.isEmpty { waiting.removeFirst().resume() }
        }
        return try await body()
    }
}
