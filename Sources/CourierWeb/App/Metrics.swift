import CourierDomain
import CourierCore
import CourierSQLite
import CourierStore
import Foundation
import Hummingbird
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// What `/metrics` shows (Prometheus text format), recorded through swift-metrics into a
/// registry of this server's own (not the process-wide `MetricsSystem`, so each test server
/// counts only its own requests).
public final class CourierMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory

    let decisionUpdate: Metrics.Counter
    let decisionRollback: Metrics.Counter
    let decisionNone: Metrics.Counter
    /// Update requests answered on the event loop (they never reach the router's middleware).
    let fastRequests: Metrics.Counter
    let fastLatency: Metrics.Timer
    let uploadsStored: Metrics.Counter
    let uploadsRefused: Metrics.Counter
    let uploadBytes: Metrics.Counter
    let ingestTime: Metrics.Timer
    let rebuildTime: Metrics.Timer
    let rebuildsOK: Metrics.Counter
    /// Rebuilds that could not read the catalogue (nothing is offered until one succeeds).
    let rebuildsFailed: Metrics.Counter
    let snapshotApps: Metrics.Gauge
    let snapshotTasks: Metrics.Gauge
    let snapshotEntries: Metrics.Gauge
    /// Stored tasks, whitelists or settings that cannot be read (each offers nothing).
    let snapshotUnreadable: Metrics.Gauge
    let admissions: Metrics.Counter
    /// Distinct-device sketches held in memory (adoption and checks, 4 KB each).
    let adoptionSketches: Metrics.Gauge
    /// Sketches not made because the tally's `maxSketches` was reached: what they would have counted is missing.
    let adoptionSketchesRefused: Metrics.Counter
    let residentBytes: Metrics.Gauge
    let heapInUseBytes: Metrics.Gauge
    let heapFreeBytes: Metrics.Gauge
    let sqliteBytes: Metrics.Gauge
    let heapArenas: Metrics.Gauge
    /// Bytes of packages sent to clients, whole `.amr` files and patches (SPEC §3): the saving.
    let packageBytesFull: Metrics.Counter
    let packageBytesPatch: Metrics.Counter
    let patchesBuilt: Metrics.Counter
    let patchesNotWorth: Metrics.Counter
    let patchBuildTime: Metrics.Timer
    private let requests = NIOLockedValueBox([RequestKey: (Metrics.Counter, Metrics.Timer)]())

    struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let fast: [Duration] = [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)]
        factory.defaultDurationHistogramBuckets = fast
        self.factory = factory
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Metrics.Counter {
            Metrics.Counter(label: label, dimensions: dimensions, factory: factory)
        }
        decisionUpdate = counter("courier_update_decisions_total", [("outcome", "update")])
        decisionRollback = counter("courier_update_decisions_total", [("outcome", "rollback")])
        decisionNone = counter("courier_update_decisions_total", [("outcome", "none")])
        fastRequests = counter("courier_http_requests_total", [("route", Route.clientUpdate.pattern), ("method", "POST"), ("status", "200")])
        fastLatency = Metrics.Timer(label: "courier_http_request_duration_seconds", dimensions: [("route", Route.clientUpdate.pattern), ("method", "POST")],
                                    factory: factory)
        uploadsStored = counter("courier_uploads_total", [("outcome", "stored")])
        uploadsRefused = counter("courier_uploads_total", [("outcome", "refused")])
        uploadBytes = counter("courier_upload_bytes_total")
        ingestTime = Metrics.Timer(label: "courier_ingest_duration_seconds", factory: factory)
        rebuildTime = Metrics.Timer(label: "courier_snapshot_rebuild_duration_seconds", factory: factory)
        rebuildsOK = counter("courier_snapshot_rebuilds_total", [("outcome", "ok")])
        rebuildsFailed = counter("courier_snapshot_rebuilds_total", [("outcome", "failed")])
        snapshotApps = Metrics.Gauge(label: "courier_snapshot_apps", factory: factory)
        snapshotTasks = Metrics.Gauge(label: "courier_snapshot_tasks", factory: factory)
        snapshotEntries = Metrics.Gauge(label: "courier_snapshot_entries", factory: factory)
        snapshotUnreadable = Metrics.Gauge(label: "courier_snapshot_unreadable", factory: factory)
        admissions = counter("courier_time_window_admissions_total")
        adoptionSketches = Metrics.Gauge(label: "courier_adoption_sketches", factory: factory)
        adoptionSketchesRefused = counter("courier_adoption_sketches_refused_total")
        residentBytes = Metrics.Gauge(label: "courier_process_resident_bytes", factory: factory)
        heapInUseBytes = Metrics.Gauge(label: "courier_heap_bytes", dimensions: [("state", "in_use")], factory: factory)
        heapFreeBytes = Metrics.Gauge(label: "courier_heap_bytes", dimensions: [("state", "free")], factory: factory)
        sqliteBytes = Metrics.Gauge(label: "courier_sqlite_memory_bytes", factory: factory)
        heapArenas = Metrics.Gauge(label: "courier_heap_arenas", factory: factory)
        packageBytesFull = counter("courier_package_bytes_sent_total", [("kind", "full")])
        packageBytesPatch = counter("courier_package_bytes_sent_total", [("kind", "patch")])
        patchesBuilt = counter("courier_patches_built_total", [("outcome", "offered")])
        patchesNotWorth = counter("courier_patches_built_total", [("outcome", "not_worth_offering")])
        patchBuildTime = Metrics.Timer(label: "courier_patch_build_duration_seconds", factory: factory)
    }

    /// One answered request, by its route pattern (never the raw path: bounded labels).
    func request(route: String, method: String, status: Int, nanoseconds: Int64) {
        // The busiest answer: its counters are made once, no lock taken.
        if status == 200, route == Route.clientUpdate.pattern, method == "POST" {
            fastRequests.increment()
            fastLatency.recordNanoseconds(nanoseconds)
            return
        }
        let key = RequestKey(route: route, method: method, status: status)
        let (counter, timer) = requests.withLockedValue { cache in
            if let found = cache[key] { return found }
            let made = (Metrics.Counter(label: "courier_http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))],
                                        factory: factory),
                        Metrics.Timer(label: "courier_http_request_duration_seconds", dimensions: [("route", route), ("method", method)],
                                      factory: factory))
            cache[key] = made
            return made
        }
        counter.increment()
        timer.recordNanoseconds(nanoseconds)
    }

    func decided(_ decisions: [Decision]) {
        for d in decisions {
            switch d.answer {
            case .update: decisionUpdate.increment()
            case .rollback: decisionRollback.increment()
            case .none: decisionNone.increment()
            }
        }
    }

    /// The process's memory, read when `/metrics` is scraped: resident set, the C heap (in use,
    /// and held free by the allocator), and SQLite's own allocations (page caches included).
    private func recordMemory() {
        let memory = ProcessMemory.read()
        residentBytes.record(memory.resident)
        heapInUseBytes.record(memory.heapInUse)
        heapFreeBytes.record(memory.heapFree)
        sqliteBytes.record(memory.sqlite)
        heapArenas.record(memory.arenas)
    }

    public func text() -> String {
        recordMemory()
        return registry.emitToString()
    }
}

/// Counts every request the router answers, by route pattern, method and status, with its time.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: CourierMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let method = request.method.rawValue
        do {
            // Timed until the handler answers (a streamed file's bytes are sent after this).
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "unmatched", method: method, status: response.status.code,
                            nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - start))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.request(route: context.endpointPath ?? "unmatched", method: method, status: status,
                            nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - start))
            throw error
        }
    }
}

extension CourierMetrics: UploadMeter {
    public func stored(bytes: Int64, nanoseconds: Int64) {
        uploadsStored.increment()
        uploadBytes.increment(by: bytes)
        ingestTime.recordNanoseconds(nanoseconds)
    }

    public func refused() { uploadsRefused.increment() }
}
