import CourierArchive
import CourierCore
import CourierStore
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Builds and deletes patches in the background (SPEC §3 "Patches"), never on a request: after
/// every change, the pairs wanted now (each version offered, from each of its bases: `PatchRules`)
/// are compared with those stored; missing ones are built one at a time on the thread pool,
/// ones no client can use any more are deleted. A pair is built once, even across restarts (a
/// patch not worth offering is recorded too); a build cut short leaves a temporary file and no
/// row, which the next start sweeps and builds again.
public final class PatchService: Service, Sendable {
    let store: Store
    let delivery: Delivery
    let bases: Int
    let logger: Logger
    /// Test hook (`COURIER_TEST_PATCH_PAUSE_MS`): a pause after a patch is written and after it
    /// is adopted, so a crash test can kill the server there.
    let pause: Duration?
    /// This node, as the holder of the `patches` lease: of several nodes on one database one
    /// builds and deletes patches at a time (the others would build the same ones again).
    let node: String
    private let wake: AsyncStream<Void>
    private let poke: AsyncStream<Void>.Continuation
    private let running = AsyncMutex()
    /// A look later is planned (the lease was another node's).
    private let retryPending = Atomic<Bool>(false)

    init(store: Store, delivery: Delivery, bases: Int, logger: Logger, pause: Duration? = nil, node: String = ProcessInfo.processInfo.hostName) {
        self.node = node
        self.store = store
        self.delivery = delivery
        self.bases = bases
        self.logger = logger
        self.pause = pause
        (wake, poke) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        // After the delivery snapshot (subscribed earlier) has taken the change in.
        store.changes.subscribe { [poke] in poke.yield() }
    }

    public func run() async throws {
        // Stopping: the lease is free for another node's next look (a change, or a minute).
        defer { Task { [store, node] in try? await store.releaseLease("patches", holder: node) } }
        poke.yield()
        try await cancelWhenGracefulShutdown { [self] in
            for await _ in wake {
                do { try await reconcile() } catch is CancellationError { break } catch {
                    logger.error("Patches could not be brought up to date", metadata: ["error": "\(error)"])
                }
            }
        }

    }

    /// Brings the stored patches in line with what is offered now (tests call it directly).
    public func reconcile() async throws {
        try await running.run {
            // Another node holds the lease: it reconciles (it follows every node's changes);
            // this one looks again later, in case that node has gone.
            guard try await store.acquireLease("patches", holder: node, for: 120) else {
                if retryPending.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                    Task { [self] in
                        try? await Task.sleep(for: .seconds(60))
                        retryPending.store(false, ordering: .relaxed)
                        poke.yield()
                    }
                }
                return
            }
            let snapshot = delivery.snapshot
            var wanted: [String: Set<PatchRules.Pair>] = [:]
            for (appId, offered) in snapshot.patchTargets {
                wanted[appId] = PatchRules.wanted(offered: offered, reached: snapshot.entries[appId].map { Array($0.keys) } ?? [], count: bases)
            }
            var have: [String: Set<PatchRules.Pair>] = [:]
            var unused: [(packageId: Int64, basePackageId: Int64)] = []
            for p in try await store.patches() {
                guard let v = PackageVersion(fast: p.version), let b = PackageVersion(fast: p.base),
                      wanted[p.appId]?.contains(PatchRules.Pair(target: v, base: b)) == true else {
                    unused.append((p.packageId, p.basePackageId))
                    continue
                }
                have[p.appId, default: []].insert(PatchRules.Pair(target: v, base: b))
            }
            if !unused.isEmpty {
                try await store.withBlobLock {
                    for blob in try await store.deletePatches(unused) { store.blobs.remove(blob) }
                }
                logger.info("Deleted patches no client can use", metadata: ["patches": "\(unused.count)"])
            }
            // Recorded patches reach the snapshot together: at the end of the round, and every
            // two seconds of a long one (one rebuild reads them all).
            var unannounced = 0
            var lastAnnounce = ContinuousClock.now
            defer { if unannounced > 0 { Task { [store] in await store.changes.announce() } } }
            for (appId, pairs) in wanted.sorted(by: { $0.key < $1.key }) {
                for pair in pairs.sorted() where have[appId]?.contains(pair) != true {
                    try Task.checkCancellation()
                    // Renewed as the round goes; lost (this node stalled past it), the round stops.
                    guard try await store.acquireLease("patches", holder: node, for: 120) else { return }
                    if try await build(appId, pair) { unannounced += 1 }
                    if unannounced > 0, ContinuousClock.now - lastAnnounce > .seconds(2) {
                        await store.changes.announce()
                        unannounced = 0
                        lastAnnounce = .now
                    }
                }
            }
            if unannounced > 0 {
                await store.changes.announce()
                unannounced = 0
            }
        }
    }

    /// Builds one patch; true when it was recorded (the caller announces it).
    @discardableResult
    func build(_ appId: String, _ pair: PatchRules.Pair) async throws -> Bool {
        guard let target = try await store.package(appId, pair.target.description), let targetID = target.id,
              let base = try await store.package(appId, pair.base.description), let baseID = base.id else { return false }
        func manifest(_ id: Int64) async throws -> [ManifestFile] {
            try await store.files(of: id).map { ManifestFile(path: $0.path, size: UInt64($0.size), sha256: $0.sha256, tarOffset: UInt64($0.tarOffset)) }
        }
        let plan = Patch.plan(base: try await manifest(baseID), target: try await manifest(targetID))
        let start = DispatchTime.now().uptimeNanoseconds
        let made = try await NIOThreadPool.singleton.runIfActive { [blobs = store.blobs] in
            let out = blobs.temporaryPath(suffix: ".patch.amr")
            return (out, try Patch.build(plan, targetAmr: blobs.path(for: target.blob), tarOffset: UInt64(target.tarOffset), to: out))
        }
        delivery.metrics.patchBuildTime.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        if let pause { try await Task.sleep(for: pause) }
        let worth = PatchRules.worthOffering(patchSize: Int64(made.1.size), fullSize: target.size)
        let record = PatchRecord(packageId: targetID, basePackageId: baseID, appId: appId, version: target.version, base: base.version,
                                 blob: worth ? made.1.sha256 : nil, size: Int64(made.1.size), changedFiles: plan.changed.count,
                                 removedFiles: plan.removed.count)
        let recorded = try await store.withBlobLock {
            if worth { try store.blobs.adopt(made.0, sha256: made.1.sha256) } else { unlink(made.0) }
            if let pause { try await Task.sleep(for: pause) }
            let recorded = try await store.recordPatch(record, targetBlob: target.blob, baseBlob: base.blob)
            if !recorded, worth, try await !store.isBlobReferenced(made.1.sha256) { store.blobs.remove(made.1.sha256) }
            return recorded
        }
        guard recorded else { return false }
        (worth ? delivery.metrics.patchesBuilt : delivery.metrics.patchesNotWorth).increment()
        logger.info("Built a patch", metadata: ["app": "\(appId)", "version": "\(target.version)", "from": "\(base.version)",
                                                "bytes": "\(made.1.size)", "of": "\(target.size)", "offered": "\(worth)"])
        return true
    }
}
