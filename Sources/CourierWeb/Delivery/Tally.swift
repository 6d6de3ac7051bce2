import CourierCore
import CourierStore
import Foundation
import NIOPosix
import Synchronization

/// What update checks say about devices (SPEC §5), counted in memory on the hot path and
/// written by `flush` about once a minute: which devices checked each task (a task's `checked`
/// counter: those its answers offered the task's version, and, merged in when written, those
/// running that version) and which run each released version (adoption). A sketch per key and hour
/// (`HyperLogLog`, 4 KB) keeps memory bounded whatever the number of devices; the keys are
/// bounded by what is released (versions no snapshot knows are not counted) and by `maxSketches`.
final class Tally: Sendable {
    /// At most this many sketches in memory (16 MB by default); past it, new keys of the hour are not counted.
    let maxSketches: Int

    struct VersionKey: Hashable, Sendable {
        let app: String
        let version: PackageVersion
    }

    /// Released versions numbered for counting. The snapshot gives each its number when it is
    /// built, off the hot path, so that counting indexes an array instead of hashing an app's and
    /// a version's strings again. Numbers only grow and are never reused: a number means the same
    /// version in every snapshot. There are as many as versions released since the start. Each
    /// also keeps the task that released its version, as the newest snapshot says.
    final class VersionSlots: Sendable {
        private let state = Mutex<(slots: [VersionKey: Int], keys: [VersionKey], tasks: [Int64])>(([:], [], []))

        func slot(_ key: VersionKey, task: Int64) -> Int {
            state.withLock { s in
                if let n = s.slots[key] { s.tasks[n] = task; return n }
                s.keys.append(key)
                s.tasks.append(task)
                s.slots[key] = s.keys.count - 1
                return s.keys.count - 1
            }
        }

        /// Every version numbered so far and its task, by number.
        var all: (keys: [VersionKey], tasks: [Int64]) { state.withLock { ($0.keys, $0.tasks) } }
    }
    let slots = VersionSlots()

    /// A sketch's registers and, after them, a byte saying they changed since they were last
    /// written: raw memory, so that the hot path reaches a register with one load (no object to
    /// go through first) and the loads of one check's sketches can be in flight together. Owned
    /// by its `Hour`; used only under its shard's lock.
    typealias Registers = UnsafeMutablePointer<UInt8>
    static let changedMark = HyperLogLog.registerCount

    static func newRegisters() -> Registers {
        let r = Registers.allocate(capacity: HyperLogLog.registerCount + 1)
        r.initialize(repeating: 0, count: HyperLogLog.registerCount + 1)
        return r
    }

    /// One hour's sketches in one shard: per task, and per version by its number.
    final class Hour: @unchecked Sendable {
        let hour: Int64
        var checks: [Int64: Registers] = [:]
        var adoption: [Registers?] = []
        var count = 0
        init(_ hour: Int64) { self.hour = hour }
        deinit {
            for r in checks.values { r.deallocate() }
            for r in adoption { r?.deallocate() }
        }

        /// Every sketch of the hour.
        var all: [Registers] { Array(checks.values) + adoption.compactMap { $0 } }
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
    /// Told each time a sketch is not made because `maxSketches` was reached.
    private let refused: (@Sendable () -> Void)?

    /// Off only to measure what counting costs the hot path (`COURIER_TALLY=off`, bench/update-check.sh).
    let enabled: Bool

    init(gauge: (@Sendable (Int) -> Void)? = nil, refused: (@Sendable () -> Void)? = nil,
         enabled: Bool = ProcessInfo.processInfo.environment["COURIER_TALLY"] != "off", maxSketches: Int = 4_096) {
        self.maxSketches = maxSketches
        self.gauge = gauge
        self.refused = refused
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
    /// the task its answer offers (a task's devices that checked are also those running its
    /// version: that sketch is the version's, merged in when written). Once a key's sketch
    /// exists this allocates nothing and hashes no string beyond the snapshot's own lookup (one
    /// per installed app); the registers are gathered first and then read together.
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
            func make() -> Registers? {
                // The cap holds across shards: a place is taken before a sketch is made.
                guard sketches.add(1, ordering: .relaxed).newValue <= maxSketches else {
                    sketches.subtract(1, ordering: .relaxed)
                    dropped.add(1, ordering: .relaxed)
                    refused?()
                    return nil
                }
                created += 1
                h.count += 1
                return Self.newRegisters()
            }
            // Up to 32 versions and 32 tasks at a time: their sketches are looked up first, then
            // their registers read. Each of those loops makes loads that do not wait for one
            // another, so the cache misses they meet (thousands of sketches do not stay in cache)
            // overlap instead of adding up.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 32) { versions in
            withUnsafeTemporaryAllocation(of: Int64.self, capacity: 32) { tasks in
            withUnsafeTemporaryAllocation(of: Registers.self, capacity: 64) { batch in
                var nv = 0, nt = 0
                func count() {
                    var n = 0, missing = 0
                    var top = -1
                    for i in 0..<nv { top = max(top, versions[i]) }
                    if top >= h.adoption.count { h.adoption.append(contentsOf: repeatElement(nil, count: top + 1 - h.adoption.count)) }
                    do {
                        let adoption = h.adoption
                        for i in 0..<nv {
                            if let r = adoption[versions[i]] { batch[n] = r; n += 1 } else { versions[missing] = versions[i]; missing += 1 }
                        }
                    }
                    for i in 0..<missing { if let r = make() { h.adoption[versions[i]] = r; batch[n] = r; n += 1 } }
                    missing = 0
                    do {
                        let checks = h.checks
                        for i in 0..<nt {
                            if let r = checks[tasks[i]] { batch[n] = r; n += 1 } else { tasks[missing] = tasks[i]; missing += 1 }
                        }
                    }
                    for i in 0..<missing where h.checks[tasks[i]] == nil {   // a task named twice is made once
                        if let r = make() { h.checks[tasks[i]] = r; batch[n] = r; n += 1 }
                    }
                    for i in 0..<n {
                        let r = batch[i]
                        if r[place.index] < place.rank { r[place.index] = place.rank; r[Self.changedMark] = 1 }
                    }
                    nv = 0
                    nt = 0
                }
                for (app, installed) in request.installed {
                    guard let v = installed, let released = snapshot.released[VersionKey(app: app, version: v)] else { continue }
                    versions[nv] = released.slot
                    nv += 1
                    if nv == versions.count { count() }
                }
                for d in decisions {
                    switch d.answer {
                    case .update(_, let t), .rollback(_, let t):
                        tasks[nt] = t
                        nt += 1
                        if nt == tasks.count { count() }
                    case .none: continue
                    }
                }
                count()
            }
            }
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
        let (keys, taskOfSlot) = slots.all
        var checks: [Int64: [Int64: HyperLogLog]] = [:]
        var adoption: [Int64: [AdoptionKey: HyperLogLog]] = [:]
        let all = shards.withLock { $0 }
        for shard in all {
            // Only what changed is copied out, under the shard's lock, and unmarked.
            shard.hours.withLock { hours in
                for h in hours {
                    for (task, r) in h.checks where r[Self.changedMark] != 0 {
                        checks[h.hour, default: [:]][task, default: HyperLogLog()].merge(registers: UnsafeBufferPointer(start: r, count: HyperLogLog.registerCount))
                        r[Self.changedMark] = 0
                    }
                    for (slot, r) in h.adoption.enumerated() {
                        guard let r, r[Self.changedMark] != 0, slot < keys.count else { continue }
                        let key = AdoptionKey(appId: keys[slot].app, version: keys[slot].version.description)
                        let registers = UnsafeBufferPointer(start: r, count: HyperLogLog.registerCount)
                        adoption[h.hour, default: [:]][key, default: HyperLogLog()].merge(registers: registers)
                        // The devices running a task's version checked that task.
                        checks[h.hour, default: [:]][taskOfSlot[slot], default: HyperLogLog()].merge(registers: registers)
                        r[Self.changedMark] = 0
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
                            for r in h.all { r[Self.changedMark] = 1 }
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
