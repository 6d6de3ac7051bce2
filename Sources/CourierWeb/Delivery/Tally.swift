import CourierCore
import CourierStore
import Foundation
import Synchronization

/// What update checks say about devices (SPEC §5), counted in memory on the hot path and
/// written by `flush` about once a minute: which devices checked each task (a task's `checked`
/// counter) and which run each released version (adoption). A sketch per key and hour
/// (`HyperLogLog`, 4 KB) keeps memory bounded whatever the number of devices; the keys are
/// bounded by what is released (versions no snapshot knows are not counted) and by `maxSketches`.
final class Tally: Sendable {
    /// At most this many sketches in memory (16 MB); past it, new keys of the hour are not counted.
    static let maxSketches = 4_096

    struct VersionKey: Hashable {
        let app: String
        let version: PackageVersion
    }

    struct Hour {
        var checks: [Int64: HyperLogLog] = [:]
        var adoption: [VersionKey: HyperLogLog] = [:]
        /// Sketches that changed since they were last written.
        var changedChecks: Set<Int64> = []
        var changedAdoption: Set<VersionKey> = []
        var count: Int { checks.count + adoption.count }
    }

    private struct State {
        var hours: [Int64: Hour] = [:]
        var sketches = 0
        var dropped = 0
    }
    private let state = Mutex(State())
    /// Told the number of sketches whenever it changes.
    private let gauge: (@Sendable (Int) -> Void)?

    /// Off only to measure what counting costs the hot path (`COURIER_TALLY=off`, bench/update-check.sh).
    let enabled: Bool

    init(gauge: (@Sendable (Int) -> Void)? = nil, enabled: Bool = ProcessInfo.processInfo.environment["COURIER_TALLY"] != "off") {
        self.gauge = gauge
        self.enabled = enabled
    }

    /// Counts one update check: the device on each installed version the snapshot knows, and on
    /// the task its answer came from (or the task of the version it runs).
    func record(_ request: ClientRequest, _ decisions: [Decision], snapshot: DeliverySnapshot, now: Date) {
        guard enabled, !request.deviceId.isEmpty, !decisions.isEmpty || !request.installed.isEmpty else { return }
        let hash = HyperLogLog.hash(request.deviceId)
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        let grown: Int? = state.withLock { s in
            let before = s.sketches
            func insert<K: Hashable>(_ key: K, _ path: WritableKeyPath<Hour, [K: HyperLogLog]>, _ changed: WritableKeyPath<Hour, Set<K>>) {
                if s.hours[hour]?[keyPath: path][key] == nil {
                    guard s.sketches < Self.maxSketches else { s.dropped += 1; return }
                    s.sketches += 1
                    s.hours[hour, default: Hour()][keyPath: path][key] = HyperLogLog()
                }
                if s.hours[hour]![keyPath: path][key]!.insert(hash: hash) { s.hours[hour]![keyPath: changed].insert(key) }
            }
            for (app, installed) in request.installed {
                guard let v = installed, snapshot.entries[app]?[v] != nil else { continue }
                insert(VersionKey(app: app, version: v), \.adoption, \.changedAdoption)
            }
            for d in decisions {
                let task: Int64?
                switch d.answer {
                case .update(_, let t), .rollback(_, let t): task = t
                case .none: task = d.installed.flatMap { snapshot.taskOfPackage[d.appId]?[$0] }
                }
                if let task { insert(task, \.checks, \.changedChecks) }
            }
            return s.sketches != before ? s.sketches : nil
        }
        if let grown { gauge?(grown) }
    }

    /// Sketches in memory, and checks not counted because `maxSketches` was reached.
    var size: (sketches: Int, dropped: Int) { state.withLock { ($0.sketches, $0.dropped) } }

    /// Writes the sketches that changed since they were last written (merging: writing the same
    /// twice is harmless) and forgets the hours before `now`'s; the hour going on stays to count
    /// on. A write that fails leaves them marked, for the next flush.
    func flush(to store: Store, now: Date = Date()) async throws {
        let current = Int64(now.timeIntervalSince1970 / 3600)
        // Only what changed is copied out, under the lock, and unmarked.
        let taken: [(hour: Int64, checks: [Int64: HyperLogLog], adoption: [VersionKey: HyperLogLog])] = state.withLock { s in
            s.hours.keys.sorted().map { hour in
                var h = s.hours[hour]!
                let checks = Dictionary(uniqueKeysWithValues: h.changedChecks.compactMap { k in h.checks[k].map { (k, $0) } })
                let adoption = Dictionary(uniqueKeysWithValues: h.changedAdoption.compactMap { k in h.adoption[k].map { (k, $0) } })
                h.changedChecks = []; h.changedAdoption = []
                s.hours[hour] = h
                return (hour, checks, adoption)
            }
        }
        for (hour, checks, adoption) in taken {
            // Hours older than the store keeps sketches for are not written (their counts are sealed).
            if hour >= current - 2, !checks.isEmpty || !adoption.isEmpty {
                do {
                    try await store.mergeSketches(hour: hour, checks: checks,
                                                  adoption: Dictionary(adoption.map { (AdoptionKey(appId: $0.key.app, version: $0.key.version.description), $0.value) },
                                                                       uniquingKeysWith: { a, _ in a }))
                } catch {
                    state.withLock { s in
                        s.hours[hour]?.changedChecks.formUnion(checks.keys)
                        s.hours[hour]?.changedAdoption.formUnion(adoption.keys)
                    }
                    throw error
                }
            }
            if hour < current {
                let left = state.withLock { s in
                    if let gone = s.hours.removeValue(forKey: hour) { s.sketches -= gone.count }
                    return s.sketches
                }
                gauge?(left)
            }
        }
    }
}
