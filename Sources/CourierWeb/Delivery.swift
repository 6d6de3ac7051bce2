import CourierCore
import CourierStore
import Foundation
import NIOConcurrencyHelpers

/// What the client update API reads (SPEC §4): built in memory from the database and swapped
/// whole after every change, so the hot path reads no database.
final class DeliverySnapshot: Sendable {
    let targeting: TargetingSnapshot
    /// Each released package's entry, pre-encoded: `[appId: [version: (normal, rollback)]]`.
    let entries: [String: [PackageVersion: (update: [UInt8], rollback: [UInt8])]]
    /// Each app's current official version (for the preset file).
    let official: [String: PackageVersion]
    /// The task each package's events count against.
    let taskOfPackage: [String: [PackageVersion: Int64]]
    /// The app key global files are served under, and those files (of each global app's
    /// current official release) by their path below it.
    let globalAppKey: String?
    let globalFiles: [String: GlobalFile]

    struct GlobalFile: Sendable {
        let blob: String
        let offset: Int64
        let size: Int64
        let sha256: String
    }

    init(targeting: TargetingSnapshot, entries: [String: [PackageVersion: (update: [UInt8], rollback: [UInt8])]],
         official: [String: PackageVersion], taskOfPackage: [String: [PackageVersion: Int64]],
         globalAppKey: String? = nil, globalFiles: [String: GlobalFile] = [:]) {
        self.targeting = targeting
        self.entries = entries
        self.official = official
        self.taskOfPackage = taskOfPackage
        self.globalAppKey = globalAppKey
        self.globalFiles = globalFiles
    }

    static let empty = DeliverySnapshot(targeting: TargetingSnapshot(apps: [], whitelists: []), entries: [:], official: [:], taskOfPackage: [:])

    /// Reads everything the decision needs.
    static func build(from store: Store, publicURL: String) async throws -> DeliverySnapshot {
        let settings = try await store.settings()
        let tasks = try await store.allTasks()
        var whitelists: [Whitelist] = []
        for (w, values) in try await store.whitelists() {
            if let id = w.id, let kind = Whitelist.Kind(rawValue: w.kind), let list = try? Whitelist(id: id, name: w.name, kind: kind, values: values) {
                whitelists.append(list)
            }
        }
        var apps: [AppTargets] = []
        var entries: [String: [PackageVersion: (update: [UInt8], rollback: [UInt8])]] = [:]
        var official: [String: PackageVersion] = [:]
        var taskOfPackage: [String: [PackageVersion: Int64]] = [:]
        // Whole tables at once: a rebuild follows every change, so it must not query per app.
        let appsByID = Dictionary(try await store.allApps().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let packagesByID = Dictionary(try await store.allPackages().compactMap { p in p.id.map { ($0, p) } }, uniquingKeysWith: { a, _ in a })
        for (appId, appTasks) in Dictionary(grouping: tasks, by: \.appId) {
            guard let app = appsByID[appId] else { continue }
            let byVersion = Dictionary(appTasks.compactMap { packagesByID[$0.packageId] }.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
            var ranges: [PackageVersion: ClientRange] = [:]
            for t in appTasks.sorted(by: { ($0.id ?? 0) < ($1.id ?? 0) }) {
                guard let p = byVersion[t.version] else { continue }
                let v = p.packageVersion
                ranges[v] = p.range
                taskOfPackage[appId, default: [:]][v] = t.id
                entries[appId, default: [:]][v] = (DeliveryEntry.encoded(p, app: app, settings: settings, publicURL: publicURL, rollback: false),
                                                   DeliveryEntry.encoded(p, app: app, settings: settings, publicURL: publicURL, rollback: true))
                let task = t.releaseTask
                if task.isOfficial, !task.rolledBack, task.status != .paused, official[appId].map({ $0 < v }) ?? true {
                    official[appId] = v
                }
            }
            apps.append(AppTargets(appId: appId, tasks: appTasks.map(\.releaseTask), ranges: ranges))
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
        return DeliverySnapshot(targeting: TargetingSnapshot(apps: apps, whitelists: whitelists), entries: entries,
                                official: official, taskOfPackage: taskOfPackage, globalAppKey: settings.appKey, globalFiles: globalFiles)
    }
}

/// The current snapshot, rebuilt after every change, and the time-window ledger.
public final class Delivery: Sendable {
    private let current = NIOLockedValueBox(DeliverySnapshot.empty)
    private let rebuilding = AsyncMutex()
    let ledger: AdmissionLedger
    let store: Store
    let publicURL: String

    init(store: Store, publicURL: String) async throws {
        self.store = store
        self.publicURL = publicURL
        ledger = AdmissionLedger(try await store.admissions())
        try await rebuild()
        store.changes.subscribe { [weak self] in try await self?.rebuild() }
    }

    var snapshot: DeliverySnapshot { current.withLockedValue { $0 } }

    /// Reads the database and swaps the snapshot in; serialized, so the last one wins.
    func rebuild() async throws {
        try await rebuilding.run {
            let next = try await DeliverySnapshot.build(from: store, publicURL: publicURL)
            current.withLockedValue { $0 = next }
        }
    }
}

/// Time-window admissions: the first N distinct devices per task, exact under concurrency
/// (one lock), durable before the client is answered (the caller records what it reserved).
final class AdmissionLedger: Sendable {
    private let state: NIOLockedValueBox<[Int64: Set<String>]>

    init(_ loaded: [Int64: Set<String>]) { state = NIOLockedValueBox(loaded) }

    /// True when the device is admitted or now takes one of the free places; `reserved` learns
    /// of new admissions so they can be written before answering.
    func admit(task: Int64, count: Int, device: String, reserved: NIOLockedValueBox<[(task: Int64, device: String)]>) -> Bool {
        state.withLockedValue { all in
            if all[task]?.contains(device) == true { return true }
            guard (all[task]?.count ?? 0) < count else { return false }
            all[task, default: []].insert(device)
            reserved.withLockedValue { $0.append((task, device)) }
            return true
        }
    }

    /// Gives places back when they could not be recorded.
    func release(_ pairs: [(task: Int64, device: String)]) {
        state.withLockedValue { all in for p in pairs { all[p.task]?.remove(p.device) } }
    }

    func count(_ task: Int64) -> Int { state.withLockedValue { $0[task]?.count ?? 0 } }
}
