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

    struct VersionKey: Hashable, Sendable {
        let app: String
        let version: PackageVersion
    }

    /// Released versions numbered for counting. The snapshot gives each its number when it is
    /// built, off the hot path, so that counting indexes an array instead of hashing an app's and
    /// a version's strings again. Numbers only grow and are never reused: a number means the same
    /// version in every snapshot. There are as many as versions released since the start.
    final class VersionSlots: Sendable {
        private let state = Mutex<(slots: [VersionKey: Int], keys: [VersionKey])>(([:], []))

        func slot(_ key: VersionKey) -> Int {
            state.withLock { s in
                if let n = s.slots[key] { return n }
                s.keys.append(key)
                s.slots[key] = s.keys.count - 1
                return s.keys.count - 1
            }
        }

        /// Every version numbered so far, by number.
        var keys: [VersionKey] { state.withLock { $0.keys } }
    }
    let slots = VersionSlots()

    /// A sketch's registers, held by reference and changed in place on the hot path. Used only
    /// under its shard's lock.
    final class Sketch: @unchecked Sendable {
        private let registers = UnsafeMutablePointer<UInt8>.allocate(capacity: HyperLogLog.registerCount)
        /// Changed since it was last written.
        var changed = false

        init() { registers.initialize(repeating: 0, count: HyperLogLog.registerCount) }
        deinit { registers.deallocate() }

        @inline(__always) func insert(_ place: HyperLogLog.Place) {
            guard registers[place.index] < place.rank else { return }
            registers[place.index] = place.rank
            changed = true
        }

        func merge(into sketch: inout HyperLogLog) {
            sketch.merge(registers: UnsafeBufferPointer(start: registers, count: HyperLogLog.registerCount))
        }
    }

    /// One hour's sketches in one shard: per task, and per version by its number.
    final class Hour: @unchecked Sendable {
        let hour: Int64
        var checks: [Int64: Sketch] = [:]
        var adoption: [Sketch?] = []
        var count = 0
        init(_ hour: Int64) { self.hour = hour }
    }

    /// Each event-loop thread counts into its own shard, so that two threads never wait for each
    /// other on the hot path (one shared lock cost a fifth of the update API's throughput); the
    /// flush merges the shards (a union of sketches is their register-wise maximum).
    final class Shard: @unchecked Sendable {
        /// Few: the hour going on and, until the next flush, the one before.
        let hours = Mutex<[Hour]>([])
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
    /// the task its answer came from (or the task of the version it runs). No allocation and no
    /// string hashing beyond the snapshot's own lookups, once a key's sketch exists.
    func record(_ request: ClientRequest, _ decisions: [Decision], snapshot: DeliverySnapshot, now: Date) {
        guard enabled, !request.deviceId.isEmpty, !decisions.isEmpty || !request.installed.isEmpty else { return }
        let place = HyperLogLog.Place(hash: HyperLogLog.hash(request.deviceId))
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        var created = 0
        shard.hours.withLock { hours in
            let h: Hour
            if let last = hours.last, last.hour == hour { h = last }
            else if let earlier = hours.first(where: { $0.hour == hour }) { h = earlier }
            else { h = Hour(hour); hours.append(h) }
            func make() -> Sketch? {
                // The cap holds across shards: a place is taken before a sketch is made.
                guard sketches.add(1, ordering: .relaxed).newValue <= Self.maxSketches else {
                    sketches.subtract(1, ordering: .relaxed)
                    dropped.add(1, ordering: .relaxed)
                    return nil
                }
                created += 1
                h.count += 1
                return Sketch()
            }
            for (app, installed) in request.installed {
                guard let v = installed, let slot = snapshot.released[app]?[v]?.slot else { continue }
                if slot >= h.adoption.count { h.adoption.append(contentsOf: repeatElement(nil, count: slot + 1 - h.adoption.count)) }
                if let sketch = h.adoption[slot] { sketch.insert(place) }
                else if let sketch = make() { h.adoption[slot] = sketch; sketch.insert(place) }
            }
            for d in decisions {
                let task: Int64
                switch d.answer {
                case .update(_, let t), .rollback(_, let t): task = t
                case .none:
                    guard let v = d.installed, let t = snapshot.released[d.appId]?[v]?.task else { continue }
                    task = t
                }
                if let sketch = h.checks[task] { sketch.insert(place) }
                else if let sketch = make() { h.checks[task] = sketch; sketch.insert(place) }
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
        let keys = slots.keys
        var checks: [Int64: [Int64: HyperLogLog]] = [:]
        var adoption: [Int64: [AdoptionKey: HyperLogLog]] = [:]
        let all = shards.withLock { $0 }
        for shard in all {
            // Only what changed is copied out, under the shard's lock, and unmarked.
            shard.hours.withLock { hours in
                for h in hours {
                    for (task, sketch) in h.checks where sketch.changed {
                        sketch.merge(into: &checks[h.hour, default: [:]][task, default: HyperLogLog()])
                        sketch.changed = false
                    }
                    for (slot, sketch) in h.adoption.enumerated() {
                        guard let sketch, sketch.changed, slot < keys.count else { continue }
                        let key = AdoptionKey(appId: keys[slot].app, version: keys[slot].version.description)
                        sketch.merge(into: &adoption[h.hour, default: [:]][key, default: HyperLogLog()])
                        sketch.changed = false
                    }
                }
            }
        }
        for hour in Set(checks.keys).union(adoption.keys).sorted() where hour >= current - 2 {
            // Hours older than the store keeps sketches for are not written (their counts are sealed).
            do {
                try await store.mergeSketches(hour: hour, checks: checks[hour] ?? [:], adoption: adoption[hour] ?? [:])
            } catch {
                // This hour's sketches and those of the hours not written yet are all marked
                // again, in every shard (writing one twice is harmless: merging is idempotent).
                for shard in all {
                    shard.hours.withLock { hours in
                        for h in hours where h.hour >= hour {
                            for sketch in h.checks.values { sketch.changed = true }
                            for sketch in h.adoption { sketch?.changed = true }
                        }
                    }
                }
                throw error
            }
        }
        var removed = 0
        for shard in all {
            shard.hours.withLock { hours in
                removed += hours.filter { $0.hour < current }.reduce(0) { $0 + $1.count }
                hours.removeAll { $0.hour < current }
            }
        }
        if removed > 0 {
            let left = sketches.subtract(removed, ordering: .relaxed).newValue
            gauge?(left)
        }
    }
}
