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
        case failed(ClientFailure)
    }
    public struct Line: Sendable {
        public let appId: String
        public let version: String
        public let outcome: Outcome
    }
    /// False when the interval held the check back (not forced).
    public var checked = false
    /// The server could not be reached or answered garbage: nothing changed.
    public var unreachable: String?
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
        let answer: UpdateAnswer
        do {
            answer = try await ask()
        } catch {
            report.unreachable = "\(error)"
            return report
        }
        report.refused = answer.refused
        let interval = Double(answer.offers.compactMap(\.asyncReqRate).min() ?? answer.updateReqRate ?? 1800)
        lock.withLock { nextCheck = now.addingTimeInterval(interval * Double.random(in: 1.0...1.1)) }
        // A given-up version the server no longer offers need not be listed any more.
        for (appId, app) in store.state.apps where !app.givenUp.isEmpty {
            try? store.forgetGivenUp(appId, except: Set(answer.offers.filter { $0.appId == appId }.map(\.version)))
        }
        for offer in answer.offers {
            let outcome = await take(offer)
            report.lines.append(.init(appId: offer.appId, version: offer.version, outcome: outcome))
        }
        return report
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
            throw ClientFailure(.downloadFailed, "Courier at \(server.absoluteString) could not be reached: \(error.localizedDescription)")
        }
        guard status == 200 else { throw ClientFailure(.downloadFailed, "Courier answered the update check with \(status).") }
        return try UpdateAnswer.parse(data)
    }

    /// Downloads, verifies and (for `preload` and rollbacks) installs one offer.
    func take(_ offer: PackageOffer) async -> RoundReport.Outcome {
        let app = store.state.apps[offer.appId]
        // Where the app is served from: known before its package is installed (fallback meanwhile).
        if app?.vhost != offer.vhost || app?.fallbackBase != offer.fallbackBase?.absoluteString || app?.mainUrl != offer.mainURL {
            try? store.remember(offer.appId, vhost: offer.vhost, fallbackBase: offer.fallbackBase?.absoluteString, mainUrl: offer.mainURL)
        }
        if app?.givenUp.contains(offer.version) == true { return .givenUp }
        if app?.installed == offer.version { return .installed(verifiedBy: nil, rollback: offer.rollback) }
        if !offer.anyNetwork && !profile.onWiFi && !offer.rollback { return .heldBackForWiFi }
        do {
            let path = try await download(offer)
            await report("download_ok", offer)
            if offer.preload || offer.rollback {
                return try await install(offer, from: path)
            }
            do { try store.verify(amr: path, appId: offer.appId, version: offer.version, keys: keys) } catch {
                unlink(path)   // refused now, not when the app is opened
                throw error
            }
            try store.setPending(offer.appId, offer.version)
            return .waitingForOpen
        } catch let failure as ClientFailure {
            await report(failure.kind.rawValue, offer)
            return .failed(failure)
        } catch {
            return .failed(ClientFailure(.installFailed, "\(error)"))
        }
    }

    func install(_ offer: PackageOffer, from path: String) async throws -> RoundReport.Outcome {
        do {
            let done = try store.install(amr: path, appId: offer.appId, version: offer.version, keys: keys)
            unlink(path)
            await report(offer.rollback ? "rollback" : "install_ok", offer)
            return .installed(verifiedBy: done.verifiedBy, rollback: offer.rollback)
        } catch {
            unlink(path)   // a package that failed verification is not kept (a new download next time)
            throw error
        }
    }

    /// The host opens an app: a package waiting for it (`lazy`) is installed first, then the
    /// opening counts toward the trial. Answers the version given up, if the trial failed.
    @discardableResult
    public func opened(_ appId: String) async throws -> String? {
        if let pending = store.state.apps[appId]?.pending {
            let path = downloads + "/\(appId)-\(pending).amr"
            if FileManager.default.fileExists(atPath: path) {
                let offer = PackageOffer(appId: appId, name: appId, version: pending, packageURL: server, size: 0, sha256: "",
                                         fallbackBase: nil, vhost: nil, mainURL: nil, preload: true, anyNetwork: true, rollback: false,
                                         asyncReqRate: nil)
                do { _ = try await install(offer, from: path) } catch let f as ClientFailure { await report(f.kind.rawValue, offer) }
            }
            try store.setPending(appId, nil)
        }
        let given = try store.opened(appId)
        if let given { await report("trial_failed", appId: appId, version: given) }
        return given
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
        if mkdir(downloads, 0o700) != 0 && errno != EEXIST {
            throw ClientFailure(.installFailed, "The downloads folder could not be made: \(String(cString: strerror(errno))).")
        }
        let done = downloads + "/\(offer.appId)-\(offer.version).amr"
        if FileManager.default.fileExists(atPath: done), (try? Self.sha256(done)) == offer.sha256 { return done }
        let part = done + ".part"
        let fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ClientFailure(.installFailed, "The download could not be written: \(String(cString: strerror(errno))).") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        var have = UInt64(max(0, st.st_size))
        if have > offer.size { ftruncate(fd, 0); have = 0 }
        if have < offer.size {
            have = try await transport.download(offer.packageURL, into: fd, from: have, limit: offer.size)
        }
        guard fsync(fd) == 0 else { throw ClientFailure(.installFailed, "The download could not be written to disk.") }
        guard have == offer.size else {
            throw ClientFailure(.downloadFailed, "The download ended at \(have) of \(offer.size) bytes; it resumes next time.")
        }
        guard try Self.sha256(part) == offer.sha256 else {
            unlink(part)
            throw ClientFailure(.downloadFailed, "The downloaded package does not match the SHA-256 of the answer; it was deleted.")
        }
        guard rename(part, done) == 0 else { throw ClientFailure(.installFailed, "The download could not be kept: \(String(cString: strerror(errno))).") }
        return done
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
        let body: [String: String] = ["deviceId": profile.deviceId, "appId": appId, "version": version, "event": event]
        store.queueEvent(body)
        await flushEvents()
    }

    /// Sends queued events, oldest first; stops at the first that cannot be sent (kept for the
    /// next round). One the server refuses (400: a task deleted since) is dropped.
    public func flushEvents() async {
        let url = server.appendingPathComponent("client/v1/events")
        for event in store.queuedEvents().prefix(50) {
            guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]),
                  let (status, _) = try? await transport.post(url, json: data, limit: 4096) else { return }
            guard status == 204 || status == 400 else { return }
            store.dropEvent(event)
        }
    }
}
