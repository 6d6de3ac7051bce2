import CourierCore
import CourierStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// What the client update API reads (SPEC §4): built in memory from the database and swapped
/// whole after every change, so the hot path reads no database.
final class DeliverySnapshot: Sendable {
    let targeting: TargetingSnapshot
    /// Each released package's entry, pre-encoded: `[appId: [version: (normal, rollback)]]`.
    let entries: [String: [PackageVersion: (update: [UInt8], rollback: [UInt8])]]
    /// Each app's current official version (for the preset file).
    let official: [String: PackageVersion]
    /// Each released package's task (its events count against it) and its number for counting
    /// update checks (`Tally.VersionSlots`). One level, keyed by app and version: counting looks
    /// it up for every installed app of every update check, and a dictionary per app cost a
    /// cache miss more each time.
    let released: [Tally.VersionKey: Released]

    struct Released: Sendable {
        let task: Int64
        let slot: Int
    }
    /// The app key global files are served under, and those files (of each global app's
    /// current official release) by their path below it.
    let globalAppKey: String?
    let globalFiles: [String: GlobalFile]
    /// Time-window tasks that have not ended (the ledger keeps only their devices); nil when the
    /// tasks could not be read, and then the ledger keeps everything.
    let openWindows: Set<Int64>?
    /// What could not be read while building (tasks, whitelists, settings), in words: each
    /// offers nothing. Logged and counted by `Delivery`.
    let unreadable: [String]
    /// `config.updateReqRate` of every answer (a setting).
    let updateReqRate: Int
    /// The versions offered now, by app (each app's current official version and its running
    /// grayscale releases): the targets of patches (SPEC §3).
    let patchTargets: [String: Set<PackageVersion>]
    /// Entries carrying a patch, pre-encoded: `[appId: [version: [installed base: entry]]]`.
    let patched: [String: [PackageVersion: [PackageVersion: [UInt8]]]]
    /// This snapshot among those made since the start (each a new number): what the tally's
    /// memory of checks already counted is valid for.
    let generation: UInt64
    private static let made = Atomic<UInt64>(0)

    struct GlobalFile: Sendable {
        let blob: String
        let offset: Int64
        let size: Int64
        let sha256: String
    }

    init(targeting: TargetingSnapshot, entries: [String: [PackageVersion: (update: [UInt8], rollback: [UInt8])]],
         official: [String: PackageVersion], released: [Tally.VersionKey: Released],
         globalAppKey: String? = nil, globalFiles: [String: GlobalFile] = [:], openWindows: Set<Int64>? = nil, unreadable: [String] = [],
         updateReqRate: Int = SettingsRecord.defaultUpdateReqRate, patchTargets: [String: Set<PackageVersion>] = [:],
         patched: [String: [PackageVersion: [PackageVersion: [UInt8]]]] = [:]) {
        self.targeting = targeting
        self.patchTargets = patchTargets
        self.patched = patched
        self.updateReqRate = updateReqRate
        self.openWindows = openWindows
        self.unreadable = unreadable
        self.entries = entries
        self.official = official
        self.released = released
        self.globalAppKey = globalAppKey
        self.globalFiles = globalFiles
        generation = Self.made.add(1, ordering: .relaxed).newValue
    }

    /// The update API's answer: the pre-encoded entries the decisions name.
    func answer(_ decisions: [Decision]) -> ByteBuffer {
        DeliveryEntry.answer(decisions.compactMap { d in
            switch d.answer {
            case .update(let v, _): d.installed.flatMap { patched[d.appId]?[v]?[$0] } ?? entries[d.appId]?[v]?.update
            case .rollback(let v, _): entries[d.appId]?[v]?.rollback
            case .none: nil
            }
        }, updateReqRate: updateReqRate)
    }

    static let empty = DeliverySnapshot(targeting: TargetingSnapshot(apps: [], whitelists: []), entries: [:], official: [:], released: [:])

    /// What one rebuild keeps for the next: encoded entries and loaded whitelists, so a change
    /// costs what it changed (re-encoding 1,000 entries or reloading a 100,000-value list after
    /// every change would not).
    final class Reuse: @unchecked Sendable {  // used only under Delivery's rebuild lock
        var entries: [String: (update: [UInt8], rollback: [UInt8])] = [:]
        var whitelists: [Int64: (revision: Int, list: Whitelist)] = [:]
        /// Numbers the released versions for counting; the same for every snapshot of a node.
        let slots: Tally.VersionSlots

        init(slots: Tally.VersionSlots = Tally.VersionSlots()) { self.slots = slots }
    }

    /// Reads everything the decision needs.
    static func build(from store: Store, publicURL: String, reuse: Reuse = Reuse()) async throws -> DeliverySnapshot {
        let settings: SettingsRecord
        do { settings = try await store.settings() } catch {
            // Settings that cannot be read: offer nothing rather than guess (approval rules,
            // the virtual domain and the global host all live there).
            return DeliverySnapshot(targeting: TargetingSnapshot(apps: [], whitelists: []), entries: [:], official: [:], released: [:],
                                    unreadable: ["the settings cannot be read (\(error)): no release is offered"])
        }
        // A task that waits for a reviewer, was rejected or withdrawn never reaches clients (SPEC §7).
        // Rows that do not decode, and packages whose row or client range cannot be read, make
        // their tasks offer nothing; the others go on.
        let (stored, undecodable) = try await store.allTasksStrictly()
        let tasks = stored.filter { !$0.neverReleased }
        var whitelists: [Whitelist] = []
        var unreadableLists: [Int64: String] = [:]
        var keptLists: [Int64: (revision: Int, list: Whitelist)] = [:]
        for (w, values) in try await store.whitelists(known: reuse.whitelists.mapValues(\.revision)) {
            guard let id = w.id else { continue }
            guard let kind = Whitelist.Kind(rawValue: w.kind) else {
                unreadableLists[id] = "unknown kind “\(w.kind)”"
                continue
            }
            if values == nil, let kept = reuse.whitelists[id], kept.list.name == w.name {
                whitelists.append(kept.list)
                keptLists[id] = kept
            } else {
                var all = values
                if all == nil { all = try await store.whitelist(id)?.1 }
                do {
                    let list = try Whitelist(id: id, name: w.name, kind: kind, values: all ?? [])
                    whitelists.append(list)
                    keptLists[id] = (w.revision, list)
                } catch {
                    unreadableLists[id] = error.message
                }
            }
        }
        reuse.whitelists = keptLists
        var keptEntries: [String: (update: [UInt8], rollback: [UInt8])] = [:]
        defer { reuse.entries = keptEntries }
        var apps: [AppTargets] = []
        var entries: [String: [PackageVersion: (update: [UInt8], rollback: [UInt8])]] = [:]
        var official: [String: PackageVersion] = [:]
        var released: [Tally.VersionKey: Released] = [:]
        // Whole tables at once: a rebuild follows every change, so it must not query per app.
        let (readApps, unreadableApps) = try await store.allAppsStrictly()
        let appsByID = Dictionary(readApps.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let (packages, unreadablePackages) = try await store.packagesWithTasksStrictly()
        let packagesByID = Dictionary(packages.compactMap { p in p.id.map { ($0, p) } }, uniquingKeysWith: { a, _ in a })
        var revoked: [String: Set<PackageVersion>] = [:]
        // A revocation that cannot be read could name any version: its app offers nothing.
        var unreadableRevocations: [String: String] = [:]
        for r in try await store.revocations().values {
            if let v = PackageVersion(fast: r.version) { revoked[r.appId, default: []].insert(v) }
            else { unreadableRevocations[r.appId] = "a revocation of “\(r.version.prefix(40))” cannot be read" }
        }
        let undecodableByApp = Dictionary(grouping: undecodable, by: \.appId)
        let tasksByApp = Dictionary(grouping: tasks, by: \.appId)
        for appId in Set(tasksByApp.keys).union(undecodableByApp.keys) {
            let appTasks = tasksByApp[appId] ?? []
            guard let app = appsByID[appId], unreadableRevocations[appId] == nil else { continue }
            let byVersion = Dictionary(appTasks.compactMap { packagesByID[$0.packageId] }.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
            var ranges: [PackageVersion: ClientRange] = [:]
            for t in appTasks.sorted(by: { ($0.id ?? 0) < ($1.id ?? 0) }) {
                guard let p = byVersion[t.version] else { continue }
                let v = p.packageVersion
                ranges[v] = p.range
                if let id = t.id {
                    let key = Tally.VersionKey(app: appId, version: v)
                    released[key] = Released(task: id, slot: reuse.slots.slot(key, task: id))
                }
                // Everything an entry is made of: the same key means the same bytes.
                let key = [String(p.id ?? 0), p.blob, p.md5, String(p.size), p.version, p.extendInfo, p.installPolicy.rawValue,
                           p.downloadPolicy.rawValue, p.mainUrl ?? "", p.moreSettings, app.name, settings.virtualDomain ?? "", publicURL].joined(separator: "\u{0}")
                let entry = reuse.entries[key] ?? (DeliveryEntry.encoded(p, app: app, settings: settings, publicURL: publicURL, rollback: false),
                                                   DeliveryEntry.encoded(p, app: app, settings: settings, publicURL: publicURL, rollback: true))
                keptEntries[key] = entry
                entries[appId, default: [:]][v] = entry
                let task = t.releaseTask
                if task.isOfficial, !task.rolledBack, task.status != .paused, revoked[appId]?.contains(v) != true, official[appId].map({ $0 < v }) ?? true {
                    official[appId] = v
                }
            }
            let version = { (text: String) in PackageVersion(fast: text) ?? PackageVersion(parts: [0, 0, 0, 0]) }
            let read = appTasks.map { t in
                unreadablePackages[t.packageId].map { ReleaseTask(id: t.id ?? 0, appId: appId, version: version(t.version), unreadable: $0) } ?? t.releaseTask
            }
            let unread = (undecodableByApp[appId] ?? []).map { ReleaseTask(id: $0.id, appId: appId, version: version($0.version), unreadable: $0.why) }
            apps.append(AppTargets(appId: appId, tasks: read + unread, ranges: ranges, revoked: revoked[appId] ?? []))
        }
        let targeting = TargetingSnapshot(apps: apps, whitelists: whitelists, unreadableWhitelists: unreadableLists)
        var unreadable: [String] = unreadableApps.sorted { $0.key < $1.key }
            .filter { tasksByApp[$0.key] != nil || undecodableByApp[$0.key] != nil }
            .map { "app \($0.key): \($0.value); its releases offer nothing" }
        unreadable += unreadableRevocations.sorted { $0.key < $1.key }.map { "app \($0.key): \($0.value); its releases offer nothing" }
        for app in apps.sorted(by: { $0.appId < $1.appId }) {
            for task in app.tasks where task.status != .finished || task.isOfficial || task.unreadable != nil {
                if let why = targeting.unreadable(task) { unreadable.append("task \(task.id) (\(app.appId) \(task.version)): \(why)") }
            }
        }
        // Patches (SPEC §3): to each version offered now, from the bases their answers name.
        var patchTargets: [String: Set<PackageVersion>] = [:]
        for app in apps {
            if let v = official[app.appId] { patchTargets[app.appId, default: []].insert(v) }
            for task in app.tasks where !task.isOfficial && (task.status == .releasing || task.status == .paused) && task.unreadable == nil {
                patchTargets[app.appId, default: []].insert(task.version)
            }
        }
        var patched: [String: [PackageVersion: [PackageVersion: [UInt8]]]] = [:]
        for patch in try await store.patches() {
            guard let v = PackageVersion(fast: patch.version), let b = PackageVersion(fast: patch.base), patchTargets[patch.appId]?.contains(v) == true,
                  let p = packagesByID[patch.packageId], patch.offered(fullSize: p.size), let app = appsByID[patch.appId] else { continue }
            patched[patch.appId, default: [:]][v, default: [:]][b] = DeliveryEntry.encoded(p, app: app, settings: settings, publicURL: publicURL,
                                                                                            rollback: false, patch: patch)
        }
        // Global packages' files, served at /{appKey}/{path} (SPEC §4).
        var globalFiles: [String: GlobalFile] = [:]
        if let host = settings.globalHost, let key = settings.appKey {
            let prefix = "\(host)/\(key)/"
            for (appId, version) in official.sorted(by: { $0.key < $1.key }) where appsByID[appId]?.type == .global {
                guard let p = try await store.package(appId, version.description), p.type == .global, let id = p.id else { continue }
                for f in try await store.files(of: id) where f.path.hasPrefix(prefix) {
                    globalFiles[String(f.path.dropFirst(prefix.count))] = GlobalFile(blob: p.blob, offset: p.tarOffset + f.tarOffset,
                                                                                     size: f.size, sha256: f.sha256)
                }
            }
        }
        return DeliverySnapshot(targeting: targeting, entries: entries, official: official, released: released,
                                globalAppKey: settings.appKey, globalFiles: globalFiles,
                                openWindows: Set(tasks.filter { $0.modeName == .timeWindow && !$0.taskStatus.hasEnded }.compactMap(\.id)),
                                unreadable: unreadable, updateReqRate: settings.updateReqRate, patchTargets: patchTargets, patched: patched)
    }
}

/// The current snapshot, rebuilt after every change, and the time-window ledger.
public final class Delivery: Sendable {
    private let current = NIOLockedValueBox(DeliverySnapshot.empty)
    private let rebuilding = AsyncMutex()
    private let reuse: DeliverySnapshot.Reuse
    let ledger: AdmissionLedger
    let gaveUp: GaveUpLedger
    /// Devices that checked each task, and on each version (release health, adoption).
    let tally: Tally
    /// The last devices that reported a failure, per task (the task page links the simulator to them).
    let recentFailures = RecentFailures()
    let store: Store
    let publicURL: String
    /// Update requests answered on the event loop (`ClientFastPath`), for tests and metrics.
    let eventLoopAnswers = Atomic<Int>(0)
    public let metrics: CourierMetrics
    /// How the last rebuild went (`/readyz`): nil before the first one.
    struct RebuildOutcome: Sendable {
        let at: Date
        /// Why the catalogue could not be read, or nil when the rebuild read it.
        let failure: String?
    }
    private let lastRebuild = NIOLockedValueBox<RebuildOutcome?>(nil)
    var rebuildOutcome: RebuildOutcome? { lastRebuild.withLockedValue { $0 } }
    let logger: Logger?
    /// What the previous snapshot could not read, so each problem is logged when it appears.
    private let reported = NIOLockedValueBox<[String]>([])

    init(store: Store, publicURL: String, metrics: CourierMetrics = CourierMetrics(), logger: Logger? = nil) async throws {
        self.store = store
        self.publicURL = publicURL
        self.metrics = metrics
        self.logger = logger
        tally = Tally(gauge: { [gauge = metrics.adoptionSketches] in gauge.record($0) },
                      refused: { [counter = metrics.adoptionSketchesRefused] in counter.increment() })
        reuse = DeliverySnapshot.Reuse(slots: tally.slots)
        ledger = AdmissionLedger(try await store.admissions())
        gaveUp = GaveUpLedger(try await store.gaveUpDevices())
        try await rebuild()
        store.changes.subscribe { [weak self] in
            // A failed rebuild is already logged, counted and on /readyz; shutting down is not a failure.
            try? await self?.rebuild()
        }
    }

    var snapshot: DeliverySnapshot { current.withLockedValue { $0 } }

    /// Rebuilds asked for, and the newest ask the snapshot in place covers (`rebuild`).
    private let asks = NIOLockedValueBox((asked: 0, covered: 0))

    /// Reads the database and swaps the snapshot in; serialized, so the last one wins.
    /// Coalesced: a rebuild reads everything committed before it starts, so asks that queued
    /// behind a running one are all answered by the next (a hundred patches recorded in a row
    /// cost two rebuilds, not a hundred), and each caller still returns only once its change
    /// is in the snapshot.
    func rebuild() async throws {
        let ask = asks.withLockedValue { $0.asked += 1; return $0.asked }
        try await rebuilding.run {
            let covering = asks.withLockedValue { $0.covered >= ask ? nil : $0.asked }
            guard let covering else { return }   // a rebuild that began after this ask has run
            let start = DispatchTime.now().uptimeNanoseconds
            let next: DeliverySnapshot
            var built = true
            do {
                next = try await DeliverySnapshot.build(from: store, publicURL: publicURL, reuse: reuse)
            } catch is CancellationError {
                throw CancellationError()   // shutting down: nothing to say, nothing to change
            } catch {
                built = false
                logger?.error("Cannot rebuild the delivery snapshot: no release is offered until a rebuild succeeds",
                              metadata: ["error": "\(String(describing: error).prefix(300))"])
                // The catalogue cannot be read: the last snapshot may hold a release since paused
                // or rolled back, so it is not kept. Nothing is offered until a rebuild succeeds.
                next = DeliverySnapshot(targeting: TargetingSnapshot(apps: [], whitelists: []), entries: [:], official: [:], released: [:],
                                        unreadable: ["the catalogue cannot be read (\(String(describing: error).prefix(200))): no release is offered"])
            }
            current.withLockedValue { $0 = next }
            asks.withLockedValue { $0.covered = max($0.covered, covering) }
            // What devices were admitted or gave up is pruned by a snapshot that read everything,
            // never by one standing in for a catalogue that could not be read.
            if built {
                if let open = next.openWindows { ledger.keep(only: open) }
                gaveUp.keep(only: Set(next.targeting.apps.values.flatMap { $0.tasks.map(\.id) }))
            }
            metrics.rebuildTime.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
            metrics.snapshotApps.record(next.targeting.apps.count)
            metrics.snapshotTasks.record(next.targeting.apps.values.reduce(0) { $0 + $1.tasks.count })
            metrics.snapshotEntries.record(next.entries.values.reduce(0) { $0 + $1.count })
            metrics.snapshotUnreadable.record(next.unreadable.count)
            let before = reported.withLockedValue { old in defer { old = next.unreadable }; return Set(old) }
            for problem in next.unreadable where !before.contains(problem) {
                logger?.error("Cannot read a stored release; it offers nothing", metadata: ["problem": "\(problem)"])
            }
            (built ? metrics.rebuildsOK : metrics.rebuildsFailed).increment()
            lastRebuild.withLockedValue {
                $0 = RebuildOutcome(at: Date(), failure: built ? nil : next.unreadable.first)
            }
        }
    }
}

/// The devices that gave up a task's version (SPEC §4 `failed`): the task is not offered to them
/// again. Bounded: at most `perTask` devices per task and `total` in all are remembered (a client
/// that invents device IDs cannot grow it without end); past that a device's `failed` list still
/// holds for its own request, and the client keeps its own list too (§10).
final class GaveUpLedger: Sendable {
    static let perTask = 100_000
    static let total = 1_000_000
    private struct State {
        var byDevice: [UInt64: Set<Int64>] = [:]
        var perTask: [Int64: Int] = [:]
        var total = 0
    }
    private let state: NIOLockedValueBox<State>

    init(_ loaded: [Int64: Set<UInt64>]) {
        var s = State()
        for (task, devices) in loaded {
            for d in devices { s.byDevice[d, default: []].insert(task) }
            s.perTask[task] = devices.count
            s.total += devices.count
        }
        state = NIOLockedValueBox(s)
    }

    var isEmpty: Bool { state.withLockedValue { $0.total == 0 } }

    /// The tasks this device gave up.
    func tasks(of device: UInt64) -> Set<Int64> { state.withLockedValue { $0.byDevice[device] ?? [] } }

    /// Of `pairs`, those not yet remembered that there is room for.
    func new(_ pairs: [(task: Int64, device: UInt64)]) -> [(task: Int64, device: UInt64)] {
        state.withLockedValue { s in
            var room = Self.total - s.total
            return pairs.filter { p in
                guard room > 0, s.byDevice[p.device]?.contains(p.task) != true, (s.perTask[p.task] ?? 0) < Self.perTask else { return false }
                room -= 1
                return true
            }
        }
    }

    func add(_ pairs: [(task: Int64, device: UInt64)]) {
        state.withLockedValue { s in
            for p in pairs where s.byDevice[p.device, default: []].insert(p.task).inserted {
                s.perTask[p.task, default: 0] += 1
                s.total += 1
            }
        }
    }

    /// Forgets tasks that no longer exist (deleted).
    func keep(only tasks: Set<Int64>) {
        state.withLockedValue { s in
            guard s.perTask.keys.contains(where: { !tasks.contains($0) }) else { return }
            for (device, set) in s.byDevice {
                let kept = set.intersection(tasks)
                s.byDevice[device] = kept.isEmpty ? nil : kept
            }
            for task in s.perTask.keys where !tasks.contains(task) {
                s.total -= s.perTask[task] ?? 0
                s.perTask[task] = nil
            }
        }
    }
}

/// Time-window admissions: the first N distinct devices per task, exact under concurrency
/// (one lock), durable before the client is answered (the caller records what it reserved).
final class AdmissionLedger: Sendable {
    /// Each admitted device by a 64-bit key of its ID (`DeviceKey`): a fixed 8 bytes in
    /// memory however long the IDs clients send (a full window of long IDs would otherwise hold
    /// hundreds of megabytes). The database keeps the IDs themselves.
    private let state: NIOLockedValueBox<[Int64: Set<UInt64>]>

    init(_ loaded: [Int64: Set<String>]) { state = NIOLockedValueBox(loaded.mapValues { Set($0.map(DeviceKey.of)) }) }

    /// True when the device is admitted or now takes one of the free places; `reserved` learns
    /// of new admissions so they can be written before answering.
    func admit(task: Int64, count: Int, device: String, reserved: NIOLockedValueBox<[(task: Int64, device: String)]>) -> Bool {
        let key = DeviceKey.of(device)
        return state.withLockedValue { all in
            if all[task]?.contains(key) == true { return true }
            guard (all[task]?.count ?? 0) < count else { return false }
            all[task, default: []].insert(key)
            reserved.withLockedValue { $0.append((task, device)) }
            return true
        }
    }

    enum Place { case admitted, free, full }

    /// Where the device stands, changing nothing (the event-loop path answers only when no
    /// admission has to be written).
    func peek(task: Int64, count: Int, device: String) -> Place {
        let key = DeviceKey.of(device)
        return state.withLockedValue { all in
            if all[task]?.contains(key) == true { return .admitted }
            return (all[task]?.count ?? 0) < count ? .free : .full
        }
    }

    /// Remembers an admission the database confirmed (several nodes: it decides, not this count).
    func record(task: Int64, device: String) {
        let key = DeviceKey.of(device)
        state.withLockedValue { all in _ = all[task, default: []].insert(key) }
    }

    /// Gives places back when they could not be recorded.
    func release(_ pairs: [(task: Int64, device: String)]) {
        state.withLockedValue { all in for p in pairs { all[p.task]?.remove(DeviceKey.of(p.device)) } }
    }

    func count(_ task: Int64) -> Int { state.withLockedValue { $0[task]?.count ?? 0 } }

    /// Forgets the devices of every task not in `open` (time windows that ended keep a count on
    /// the task, not their devices in memory).
    func keep(only open: Set<Int64>) {
        state.withLockedValue { all in
            for task in all.keys where !open.contains(task) { all[task] = nil }
        }
    }
}
