import CAtomicBytes
import CourierCore
import CourierStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOPosix
import Synchronization

/// What update checks say about devices (SPEC §5), counted in memory on the hot path and
/// written by `flush` about once a minute: which devices checked each task (a task's `checked`
/// counter: those its answers offered the task's version, and, merged in when written, those
/// running that version) and which run each released version (adoption). A sketch per key and hour
/// (`HyperLogLog`, 4 KB), shared by every thread, keeps memory bounded whatever the number of
/// devices and of cores; the keys are bounded by what is released (versions no snapshot knows are
/// not counted) and by the arena's slots (`maxSketches`).
final class Tally: Sendable {

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
    /// written: raw memory in the `Arena`, shared by every thread. Registers only grow (a sketch
    /// keeps each device's maximum), raised atomically; the mark is looked at after a raise and
    /// taken by the flush before it reads, in one order (CAtomicBytes), so a raise is never both
    /// unread and unmarked.
    typealias Registers = UnsafeMutablePointer<UInt8>
    static let changedMark = HyperLogLog.registerCount

    /// Every sketch's registers in one mapping of `capacity` slots, which the kernel is asked to
    /// back with huge pages: a first check reads a register in each of about eight sketches among
    /// thousands, and with one 4 KB page per sketch each read could also miss the address
    /// translation cache (costly in a virtual machine); on 2 MB pages the whole arena takes a
    /// few entries. Pages count as resident only once used. Its slots are the cap on sketches:
    /// when none is free, no sketch is made.
    final class Arena: Sendable {
        /// The registers, the changed mark, and padding to a cache line.
        static let stride = HyperLogLog.registerCount + 64
        static let hugePage = 2 << 20
        let capacity: Int
        /// The mapping's start and length, and the first slot's address (aligned to a huge page).
        private let mapping: Int, mapped: Int, base: Int
        /// Slots never used yet start at `fresh`; those given back are reused first (zeroed).
        private let state = Mutex<(given: [Int], fresh: Int, inUse: Int)>(([], 0, 0))

        init(capacity: Int) {
            self.capacity = max(0, capacity)
            mapped = self.capacity * Self.stride + Self.hugePage
            guard self.capacity > 0, let m = mmap(nil, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  m != MAP_FAILED else {
                mapping = 0; base = 0
                return
            }
            mapping = Int(bitPattern: m)
            base = (mapping + Self.hugePage - 1) & ~(Self.hugePage - 1)
            _ = madvise(UnsafeMutableRawPointer(bitPattern: base), self.capacity * Self.stride, MADV_HUGEPAGE)   // a hint: 4 KB pages work too
        }

        deinit { if mapping != 0 { munmap(UnsafeMutableRawPointer(bitPattern: mapping), mapped) } }

        /// A slot with zeroed registers, and the sketches in use then; nil when every slot is taken.
        func take() -> (slot: Int, inUse: Int)? {
            guard base != 0 else { return nil }
            return state.withLock { s in
                let slot: Int
                if let given = s.given.popLast() { slot = given }
                else if s.fresh < capacity { slot = s.fresh; s.fresh += 1 }
                else { return nil }
                s.inUse += 1
                return (slot, s.inUse)
            }
        }

        func registers(_ slot: Int) -> Registers {
            Registers(bitPattern: base + slot * Self.stride)!
        }

        /// Gives slots back, zeroed for their next use (no thread may use them any more); returns
        /// the sketches still in use.
        func give(_ slots: [Int]) -> Int {
            for slot in slots { UnsafeMutableRawPointer(registers(slot)).initializeMemory(as: UInt8.self, repeating: 0, count: Self.stride) }
            return state.withLock { s in
                s.given += slots
                s.inUse -= slots.count
                return s.inUse
            }
        }

        var inUse: Int { state.withLock { $0.inUse } }
    }

    /// What a sketch counts: a task's checks, or the devices running a version (by its number).
    enum Key: Hashable, Sendable {
        case task(Int64)
        case version(Int)
    }

    /// Every sketch, by hour and key, as arena slots: one per key and hour, whichever thread made
    /// it. Looked up only when a shard meets a key for the first time in an hour.
    private let registry = Mutex<[Int64: [Key: Int]]>([:])
    /// Past hours taken out of the registry and the shards, until a flush writes them all (an
    /// hour may be there twice: a late check can make a new sketch of an hour already retired).
    private let retired = Mutex<[(hour: Int64, sketches: [Key: Int])]>([])
    /// Every slot was taken when a sketch was last asked for: checks meeting a new key are then
    /// refused without taking the registry's lock (which every thread would wait for). Cleared
    /// when slots are given back.
    private let full = Atomic<Bool>(false)
    /// A flush is under way (they must not overlap: one could take marks of slots the other
    /// gives back).
    private let flushing = Atomic<Bool>(false)

    /// One hour's sketches as one shard knows them (those its checks met): per task, and per
    /// version by its number. The registers are the registry's.
    final class Hour: @unchecked Sendable {
        let hour: Int64
        var checks: [Int64: Registers] = [:]
        var adoption: [Registers?] = []
        init(_ hour: Int64) { self.hour = hour }
    }

    /// Each event-loop thread looks its sketches up in its own shard, so that two threads never
    /// wait for each other on the hot path (one shared lock cost a fifth of the update API's
    /// throughput); the registers they reach are shared.
    final class Shard: @unchecked Sendable {
        /// Few: the hour going on and, until the next flush, the one before.
        let hours = Mutex<[Hour]>([])
        /// Checks this shard counted lately, as fingerprints (`Tally.fingerprint`), by their low
        /// bits; 0 is none. Used only under `hours`' lock.
        let seen: UnsafeMutablePointer<UInt64>
        static let seenCount = 1 << 14   // 128 KB
        /// Checks skipped as counted already (under `hours`' lock).
        var skipped = 0

        init() {
            seen = .allocate(capacity: Self.seenCount)
            seen.initialize(repeating: 0, count: Self.seenCount)
        }
        deinit { seen.deallocate() }
    }
    private let local = ThreadSpecificVariable<Shard>()
    private let shards = Mutex<[Shard]>([])
    private let arena: Arena
    private let dropped = Atomic<Int>(0)
    /// Told the number of sketches whenever it changes.
    private let gauge: (@Sendable (Int) -> Void)?
    /// Told each time a sketch is not made because `maxSketches` was reached.
    private let refused: (@Sendable () -> Void)?

    /// Off only to measure what counting costs the hot path (`COURIER_TALLY=off`, bench/update-check.sh).
    let enabled: Bool

    /// `maxSketches`: at most this many sketches in memory (16 MB by default); past it, new keys of
    /// the hour are not counted.
    init(gauge: (@Sendable (Int) -> Void)? = nil, refused: (@Sendable () -> Void)? = nil,
         enabled: Bool = ProcessInfo.processInfo.environment["COURIER_TALLY"] != "off", maxSketches: Int = 4_096) {
        arena = Arena(capacity: enabled ? maxSketches : 0)
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

    /// The registers of `key` in `hour`, made if none yet; nil past the cap. Returns the sketches
    /// in use when it made one.
    private func sketch(_ key: Key, hour: Int64) -> (registers: Registers, made: Int?)? {
        let found: (slot: Int, made: Int?)? = full.load(ordering: .relaxed) ? nil : registry.withLock { all in
            if let slot = all[hour]?[key] { return (slot, nil) }
            guard let (slot, inUse) = arena.take() else {
                full.store(true, ordering: .relaxed)
                return nil
            }
            all[hour, default: [:]][key] = slot
            return (slot, inUse)
        }
        guard let found else {
            dropped.add(1, ordering: .relaxed)
            refused?()
            return nil
        }
        return (arena.registers(found.slot), found.made)
    }

    /// Counts one update check: the device on each installed version the snapshot knows, and on
    /// the task its answer offers (a task's devices that checked are also those running its
    /// version: that sketch is the version's, merged in when written). Once the shard knows a
    /// key's sketch this allocates nothing and hashes no string beyond the snapshot's own lookup
    /// (one per installed app); the registers are gathered first and then read together.
    ///
    /// A device asks again and again, mostly with the same body: given `body`, a check whose body,
    /// hour, snapshot and offers are those of one this shard counted lately is skipped, for it
    /// would raise no register (a sketch keeps each device's maximum). Its fingerprint costs a
    /// pass over the body, against about eight sketches' cache misses.
    func record(_ request: ClientRequest, _ decisions: [Decision], snapshot: DeliverySnapshot, now: Date,
                body: UnsafeRawBufferPointer? = nil) {
        guard enabled, !request.deviceId.isEmpty, !decisions.isEmpty || !request.installed.isEmpty else { return }
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        let fingerprint = body.map { Self.fingerprint($0, hour: hour, snapshot: snapshot.generation, decisions: decisions, seed: seed) } ?? 0
        let seenAt = Int(truncatingIfNeeded: fingerprint) & (Shard.seenCount - 1)
        var inUse: Int?
        let shard = self.shard
        shard.hours.withLock { hours in
            if fingerprint != 0, shard.seen[seenAt] == fingerprint { shard.skipped += 1; return }
            var counted = true
            let place = HyperLogLog.Place(hash: HyperLogLog.hash(request.deviceId))
            let h: Hour
            if let last = hours.last, last.hour == hour { h = last }
            else if let earlier = hours.first(where: { $0.hour == hour }) { h = earlier }
            else { h = Hour(hour); hours.append(h) }
            func find(_ key: Key) -> Registers? {
                guard let (r, made) = sketch(key, hour: hour) else { counted = false; return nil }
                if let made { inUse = made }
                return r
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
                    for i in 0..<missing { if let r = find(.version(versions[i])) { h.adoption[versions[i]] = r; batch[n] = r; n += 1 } }
                    missing = 0
                    do {
                        let checks = h.checks
                        for i in 0..<nt {
                            if let r = checks[tasks[i]] { batch[n] = r; n += 1 } else { tasks[missing] = tasks[i]; missing += 1 }
                        }
                    }
                    for i in 0..<missing where h.checks[tasks[i]] == nil {   // a task named twice is found once
                        if let r = find(.task(tasks[i])) { h.checks[tasks[i]] = r; batch[n] = r; n += 1 }
                    }
                    for i in 0..<n {
                        let r = batch[i]
                        // The mark is written only when not set already: it is a cache line
                        // every thread would otherwise write on each raise.
                        if courier_byte_load(r + place.index) < place.rank, courier_byte_raise(r + place.index, place.rank) != 0,
                           courier_byte_load(r + Self.changedMark) == 0 {
                            courier_byte_store(r + Self.changedMark, 1)
                        }
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
            // Not remembered when a sketch could not be made: that key may count later.
            if fingerprint != 0, counted { shard.seen[seenAt] = fingerprint }
        }
        if let inUse { gauge?(inUse) }
    }

    /// This process's seed for fingerprints: a body cannot be made to match another's on purpose.
    private let seed = UInt64.random(in: 1...UInt64.max)

    /// A check's fingerprint, never 0: its body (the same body is the same request), its hour, the
    /// snapshot that answered it and the tasks offered (a time window can admit a device later
    /// under the same snapshot). One multiply per 8 bytes of the body.
    static func fingerprint(_ body: UnsafeRawBufferPointer, hour: Int64, snapshot: UInt64, decisions: [Decision], seed: UInt64) -> UInt64 {
        @inline(__always) func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
            let m = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
            return m ^ (m >> 29)
        }
        var h = mix(seed, UInt64(body.count))
        var i = 0
        while i + 8 <= body.count {
            h = mix(h, body.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        var tail: UInt64 = 0, shift: UInt64 = 0
        while i < body.count { tail |= UInt64(body[i]) << shift; shift += 8; i += 1 }
        h = mix(mix(mix(h, tail), UInt64(bitPattern: hour)), snapshot)
        for d in decisions {
            switch d.answer {
            case .update(_, let t): h = mix(h, UInt64(bitPattern: t) << 1)
            case .rollback(_, let t): h = mix(h, UInt64(bitPattern: t) << 1 | 1)
            case .none: continue
            }
        }
        // Finalised (splitmix64) so that the low bits, the slot, depend on every byte.
        h ^= h >> 30; h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27; h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h == 0 ? 1 : h
    }

    /// Sketches in memory, and sketches not made because `maxSketches` was reached.
    var size: (sketches: Int, dropped: Int) { (arena.inUse, dropped.load(ordering: .relaxed)) }

    /// Checks skipped as counted already, in every shard.
    var skipped: Int { shards.withLock { $0 }.reduce(0) { total, shard in total + shard.hours.withLock { _ in shard.skipped } } }

    /// Writes the sketches that changed since they were last written (writing the same twice is
    /// harmless), and forgets the hours before `now`'s once written; the hour going on stays to
    /// count on. A write that fails leaves them marked, for the next flush. Flushes do not overlap:
    /// one asked for while another runs returns at once (that one writes).
    func flush(to store: Store, now: Date = Date()) async throws {
        guard flushing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return }
        defer { flushing.store(false, ordering: .releasing) }
        let current = Int64(now.timeIntervalSince1970 / 3600)
        // The hours gone are taken out first: out of the registry (a shard meeting a key of
        // theirs again makes a new sketch, written next time), then out of every shard (under its
        // lock: no check uses them after). So nothing counted into them is missed by the copy
        // below, and they wait in `retired` until written.
        let gone = registry.withLock { all in
            let gone = all.filter { $0.key < current }.map { (hour: $0.key, sketches: $0.value) }
            all = all.filter { $0.key >= current }
            return gone
        }
        for shard in shards.withLock({ $0 }) {
            shard.hours.withLock { $0.removeAll { $0.hour < current } }
        }
        let old = retired.withLock { r in
            r += gone
            return r
        }
        let live = registry.withLock { $0 }.map { (hour: $0.key, sketches: $0.value) }
        // Read after the registry: every slot a sketch was made for is numbered by then.
        let (keys, taskOfSlot) = slots.all
        var checks: [Int64: [Int64: HyperLogLog]] = [:]
        var adoption: [Int64: [AdoptionKey: HyperLogLog]] = [:]
        let all = old + live
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: HyperLogLog.registerCount) { copy in
            for (hour, sketches) in all {
                for (key, slot) in sketches {
                    if case .version(let n) = key, n >= keys.count { continue }   // cannot happen (read after); never loses the mark
                    let r = arena.registers(slot)
                    // The mark is taken first: a raise after it marks the sketch again.
                    guard courier_byte_exchange(r + Self.changedMark, 0) != 0 else { continue }
                    for i in 0..<HyperLogLog.registerCount { copy[i] = courier_byte_load(r + i) }
                    let registers = UnsafeBufferPointer(copy)
                    switch key {
                    case .task(let task):
                        checks[hour, default: [:]][task, default: HyperLogLog()].merge(registers: registers)
                    case .version(let n):
                        let key = AdoptionKey(appId: keys[n].app, version: keys[n].version.description)
                        adoption[hour, default: [:]][key, default: HyperLogLog()].merge(registers: registers)
                        // The devices running a task's version checked that task.
                        checks[hour, default: [:]][taskOfSlot[n], default: HyperLogLog()].merge(registers: registers)
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
                // again (writing one twice is harmless: merging is idempotent); the hours gone
                // stay retired for the next flush.
                for (h, sketches) in all where h >= hour {
                    for slot in sketches.values { courier_byte_store(arena.registers(slot) + Self.changedMark, 1) }
                }
                throw error
            }
        }
        // Written: the hours gone give their slots back.
        let slots = retired.withLock { r in
            let slots = r.flatMap(\.sketches.values)
            r = []
            return slots
        }
        if !slots.isEmpty {
            let left = arena.give(slots)   // not inside `gauge?(…)`: with no gauge it would not run
            full.store(false, ordering: .relaxed)
            gauge?(left)
        }
    }
}
