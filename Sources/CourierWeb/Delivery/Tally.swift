import CourierCore
import CourierStore
import Foundation
import NIOPosix
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

    /// A sketch held by reference: the hot path changes its registers in place (a value inside
    /// nested dictionaries would be copied, 4 KB, on each change). Used only under its shard's lock.
    final class Sketch: @unchecked Sendable {
        var hll = HyperLogLog()
    }

    /// One hour's sketches in one shard, and which changed since they were last written.
    final class Hour: @unchecked Sendable {
        var checks: [Int64: Sketch] = [:]
        var adoption: [VersionKey: Sketch] = [:]
        var changedChecks: Set<Int64> = []
        var changedAdoption: Set<VersionKey> = []
        var count: Int { checks.count + adoption.count }
    }

    /// Each event-loop thread counts into its own shard, so that two threads never wait for each
    /// other on the hot path (one shared lock cost a fifth of the update API's throughput); the
    /// flush merges the shards (a union of sketches is their register-wise maximum).
    final class Shard: @unchecked Sendable {
        let hours = Mutex<[Int64: Hour]>([:])
    }
    private let local = ThreadSpecificVariable<Shard>()
    private let shards = Mutex<[Shard]>([])
    private let sketches = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)
    /// Told the number of sketches whenever it changes.
    private let gauge: (@Sendable (Int) -> Void)?

    /// Off only to measure what counting costs the hot path (`COURIER_TALLY=off`, bench/update-check.sh).
    let enabled: Bool

    init(gauge: (@Sendable (Int) -> Void)? = nil, enabled: Bool = ProcessInfo.processInfo.environment["COURIER_TALLY"] != "off") {
        self.gauge = gauge
        self.enabled = enabled
    }

    private var shard: Shard {
        if let mine = local.currentValue { return mine }
        let mine = Shard()
        local.currentValue = mine
        shards.withLock { $0.append(mine) }
        return mine
    }

    /// Counts one update check: the device on each installed version the snapshot knows, and on
    /// the task its answer came from (or the task of the version it runs).
    func record(_ request: ClientRequest, _ decisions: [Decision], snapshot: DeliverySnapshot, now: Date) {
        guard enabled, !request.deviceId.isEmpty, !decisions.isEmpty || !request.installed.isEmpty else { return }
        // What to count is worked out before the lock; under it, only sketches change.
        var versions: [VersionKey] = []
        for (app, installed) in request.installed {
            if let v = installed, snapshot.entries[app]?[v] != nil { versions.append(VersionKey(app: app, version: v)) }
        }
        var tasks: [Int64] = []
        for d in decisions {
            switch d.answer {
            case .update(_, let t), .rollback(_, let t): tasks.append(t)
            case .none: if let t = d.installed.flatMap({ snapshot.taskOfPackage[d.appId]?[$0] }) { tasks.append(t) }
            }
        }
        guard !versions.isEmpty || !tasks.isEmpty else { return }
        let hash = HyperLogLog.hash(request.deviceId)
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        var created = 0
        shard.hours.withLock { hours in
            let h: Hour
            if let existing = hours[hour] { h = existing } else { h = Hour(); hours[hour] = h }
            func make() -> Sketch? {
                // The cap holds across shards: a place is taken before a sketch is made.
                guard sketches.add(1, ordering: .relaxed).newValue <= Self.maxSketches else {
                    sketches.subtract(1, ordering: .relaxed)
                    dropped.add(1, ordering: .relaxed)
                    return nil
                }
                created += 1
                return Sketch()
            }
            for key in versions {
                guard let sketch = h.adoption[key] ?? make() else { continue }
                h.adoption[key] = sketch
                if sketch.hll.insert(hash: hash) { h.changedAdoption.insert(key) }
            }
            for key in tasks {
                guard let sketch = h.checks[key] ?? make() else { continue }
                h.checks[key] = sketch
                if sketch.hll.insert(hash: hash) { h.changedChecks.insert(key) }
            }
        }
        if created > 0 { gauge?(sketches.load(ordering: .relaxed)) }
    }

    /// Sketches in memory, and checks not counted because `maxSketches` was reached.
    var size: (sketches: Int, dropped: Int) { (sketches.load(ordering: .relaxed), dropped.load(ordering: .relaxed)) }

    /// Writes the sketches that changed since they were last written, every shard's merged
    /// (writing the same twice is harmless), and forgets the hours before `now`'s; the hour going
    /// on stays to count on. A write that fails leaves them marked, for the next flush.
    func flush(to store: Store, now: Date = Date()) async throws {
        let current = Int64(now.timeIntervalSince1970 / 3600)
        var checks: [Int64: [Int64: HyperLogLog]] = [:]
        var adoption: [Int64: [VersionKey: HyperLogLog]] = [:]
        let all = shards.withLock { $0 }
        for shard in all {
            // Only what changed is copied out, under the shard's lock, and unmarked.
            shard.hours.withLock { hours in
                for (hour, h) in hours {
                    for k in h.changedChecks { if let sk = h.checks[k] { checks[hour, default: [:]][k, default: HyperLogLog()].merge(sk.hll) } }
                    for k in h.changedAdoption { if let sk = h.adoption[k] { adoption[hour, default: [:]][k, default: HyperLogLog()].merge(sk.hll) } }
                    h.changedChecks = []; h.changedAdoption = []
                }
            }
        }
        for hour in Set(checks.keys).union(adoption.keys).sorted() where hour >= current - 2 {
            // Hours older than the store keeps sketches for are not written (their counts are sealed).
            let c = checks[hour] ?? [:], a = adoption[hour] ?? [:]
            do {
                try await store.mergeSketches(hour: hour, checks: c,
                                              adoption: Dictionary(a.map { (AdoptionKey(appId: $0.key.app, version: $0.key.version.description), $0.value) },
                                                                   uniquingKeysWith: { x, _ in x }))
            } catch {
                // Marked again in every shard that holds them (merging is idempotent).
                for shard in all {
                    shard.hours.withLock { hours in
                        guard let h = hours[hour] else { return }
                        h.changedChecks.formUnion(c.keys.filter { h.checks[$0] != nil })
                        h.changedAdoption.formUnion(a.keys.filter { h.adoption[$0] != nil })
                    }
                }
                throw error
            }
        }
        var removed = 0
        for shard in all {
            shard.hours.withLock { hours in
                for hour in hours.keys where hour < current {
                    removed += hours.removeValue(forKey: hour)?.count ?? 0
                }
            }
        }
        if removed > 0 { gauge?(sketches.subtract(removed, ordering: .relaxed).newValue) }
    }
}
