import HTTPTypes
import CourierCore
import CourierStore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A client request Courier cannot use: 400 with `{"error":"…"}` (SPEC §4).
struct BadClientRequest: Error {
    let message: String
    init(_ m: String) { message = m }
}

/// The client delivery API (SPEC §4): no login, answered from the in-memory snapshot.
struct ClientController {
    let services: Services
    static let maxBody = 256 * 1024
    static let events: Set<String> = ["download_ok", "download_failed", "verify_failed", "install_ok", "install_failed", "rollback",
                                      "patch_failed", "trial_failed"]

    func addRoutes(to router: RouterGroup<AppContext>, table: RouteTable) {
        table.add(.init(method: .post, route: .clientUpdate, permission: nil, surface: .open))
        table.add(.init(method: .post, route: .clientEvents, permission: nil, surface: .open))
        router.post(Route.clientUpdate.routerPath) { request, _ in
            try await Self.answering {
                let body = try await Self.body(request)
                return try await update(Self.parseUpdate(body))
            }
        }
        router.post(Route.clientEvents.routerPath) { request, _ in
            try await Self.answering {
                let body = try await Self.body(request)
                try await event(body)
                return Response(status: .noContent)
            }
        }
    }

    /// Runs `body`; a bad request becomes 400 `{"error":"…"}`, never a 500.
    static func answering(_ body: () async throws -> Response) async throws -> Response {
        do { return try await body() } catch let e as BadClientRequest {
            return json(["error": e.message], status: .badRequest)
        }
    }

    static func json(_ object: [String: String], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func body(_ request: Request) async throws -> Data {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBody {
            throw BadClientRequest("The request body is over \(maxBody / 1024) KB.")
        }
        do { return Data(buffer: try await request.body.collect(upTo: maxBody)) } catch is NIOTooManyBytesError {
            throw BadClientRequest("The request body is over \(maxBody / 1024) KB.")
        }
    }

    /// Reads `{"platform","clientVersion","deviceId",…,"apps":[{"id","version"}],"all"}`.
    static func parseUpdate(_ data: Data) throws -> ClientRequest {
        do { return try data.withUnsafeBytes { try ClientRequest.parse($0) } } catch let e as ClientRequestError {
            throw BadClientRequest(e.message)
        }
    }

    /// Decides from the snapshot; the versions a device gave up and a time-window admission are
    /// recorded before the answer.
    func update(_ request: ClientRequest) async throws -> Response {
        let snapshot = services.delivery.snapshot
        let ledger = services.delivery.ledger
        let failures = services.delivery.gaveUp.new(Self.failures(request, snapshot))
        if !failures.isEmpty {
            let recorded = try await services.store.recordGaveUp(failures)
            services.delivery.gaveUp.add(recorded)
            for task in Set(recorded.map(\.task)) { services.delivery.recentFailures.add(task: task, DeviceProfile(request, what: "gave the version up (trial failed)")) }
        }
        let gaveUp = Self.gaveUp(request, services.delivery.gaveUp)
        let now = Date()
        var decisions: [Decision]
        if services.config.database == nil {
            // One node: the ledger is the whole truth; a place is taken, then written before the answer.
            let reserved = NIOLockedValueBox<[(task: Int64, device: String)]>([])
            decisions = Targeting.decide(request, snapshot.targeting, now: now, explain: false, gaveUp: gaveUp) { task, count, device in
                ledger.admit(task: task, count: count, device: device, reserved: reserved)
            }
            let fresh = reserved.withLockedValue { $0 }
            if !fresh.isEmpty {
                do { try await services.store.recordAdmissions(fresh) } catch {
                    ledger.release(fresh)
                    throw error
                }
                services.delivery.metrics.admissions.increment(by: Int64(fresh.count))
            }
        } else {
            // Several nodes share the window: this node's ledger knows only what the database
            // confirmed; a free place is asked of the database, inside this request, before the
            // answer, and the answer is decided again without any place it refused.
            let asked = NIOLockedValueBox<[(task: Int64, device: String, count: Int)]>([])
            decisions = Targeting.decide(request, snapshot.targeting, now: now, explain: false, gaveUp: gaveUp) { task, count, device in
                switch ledger.peek(task: task, count: count, device: device) {
                case .admitted: return true
                case .full: return false   // this node's confirmed admissions alone fill it
                case .free: asked.withLockedValue { $0.append((task, device, count)) }; return true
                }
            }
            let pending = asked.withLockedValue { $0 }
            if !pending.isEmpty {
                var refused = false
                for p in pending {
                    if try await services.store.admit(task: p.task, device: p.device, limit: p.count, now: now) {
                        ledger.record(task: p.task, device: p.device)
                        services.delivery.metrics.admissions.increment()
                    } else {
                        refused = true
                    }
                }
                if refused {
                    decisions = Targeting.decide(request, snapshot.targeting, now: now, explain: false, gaveUp: gaveUp) { task, count, device in
                        ledger.peek(task: task, count: count, device: device) == .admitted
                    }
                }
            }
        }
        services.delivery.metrics.decided(decisions)
        services.delivery.tally.record(request, decisions, snapshot: snapshot, now: now)
        return Response(status: .ok, headers: HTTPFields(Self.answerHeaders.map { HTTPField(name: $0.name, value: $0.value) }),
                        body: .init(byteBuffer: snapshot.answer(decisions)))
    }

    /// An update answer's own headers, on both paths (the event-loop path adds `EveryAnswer`'s).
    static let answerHeaders: [(name: HTTPField.Name, value: String)] = [(.contentType, "application/json"), (.cacheControl, "no-store")]

    /// The update answer when nothing must be written first: nil when the request is bad (the
    /// router's path words the 400) or a time-window admission must be recorded (the router's
    /// path writes it before answering). The event-loop path (`ClientFastPath`) calls this.
    static func immediateAnswer(_ body: UnsafeRawBufferPointer, delivery: Delivery, now: Date) -> ByteBuffer? {
        guard let request = try? ClientRequest.parse(body) else { return nil }
        let snapshot = delivery.snapshot
        let ledger = delivery.ledger
        // A version given up that is not remembered yet is written first, by the router's path.
        guard request.failed.isEmpty || delivery.gaveUp.new(failures(request, snapshot)).isEmpty else { return nil }
        let mustWrite = Flag()
        let decisions = Targeting.decide(request, snapshot.targeting, now: now, explain: false,
                                         gaveUp: gaveUp(request, delivery.gaveUp)) { task, count, device in
            switch ledger.peek(task: task, count: count, device: device) {
            case .admitted: return true
            case .full: return false
            case .free: mustWrite.raise(); return false
            }
        }
        guard !mustWrite.raised else { return nil }
        delivery.metrics.decided(decisions)
        delivery.tally.record(request, decisions, snapshot: snapshot, now: now, body: body)
        return snapshot.answer(decisions)
    }

    /// The (task, device) pairs of the versions a request says its device gave up: those of
    /// packages a task releases, from a device that names itself.
    static func failures(_ request: ClientRequest, _ snapshot: DeliverySnapshot) -> [(task: Int64, device: UInt64)] {
        guard !request.failed.isEmpty, !request.deviceId.isEmpty else { return [] }
        let device = DeviceKey.of(request.deviceId)
        return request.failed.sorted { $0.key < $1.key }.flatMap { app, versions in
            versions.sorted().compactMap { v in snapshot.released[Tally.VersionKey(app: app, version: v)].map { (task: $0.task, device: device) } }
        }
    }

    /// What the decision asks of the remembered failures: nothing to look up (and no hash to
    /// compute) while no device has given anything up.
    static func gaveUp(_ request: ClientRequest, _ ledger: GaveUpLedger) -> GaveUp {
        guard !request.deviceId.isEmpty, !ledger.isEmpty else { return { _ in false } }
        let tasks = ledger.tasks(of: DeviceKey.of(request.deviceId))
        return { tasks.contains($0) }
    }

    /// Set from the decision's (synchronous) admit closure, read right after it returns.
    private final class Flag: @unchecked Sendable {
        private(set) var raised = false
        func raise() { raised = true }
    }

    /// `{"deviceId","appId","version","event","detail"}`, counted against the package's task.
    func event(_ data: Data) async throws {
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw BadClientRequest("The body must be a JSON object.")
        }
        guard let event = o["event"] as? String, Self.events.contains(event) else {
            throw BadClientRequest("event must be one of \(Self.events.sorted().joined(separator: ", ")).")
        }
        guard let appId = o["appId"] as? String, let text = o["version"] as? String, let version = try? PackageVersion(validating: text) else {
            throw BadClientRequest("appId and version (like 1.0.0.1) are required.")
        }
        // Counted once per device, task, kind and hour: a report without its device cannot be.
        guard let device = o["deviceId"] as? String, !device.isEmpty, device.utf8.count <= 256 else {
            throw BadClientRequest("deviceId (1 to 256 bytes) is required: each device's report counts once an hour.")
        }
        guard let task = services.delivery.snapshot.released[Tally.VersionKey(app: appId, version: version)]?.task else {
            throw BadClientRequest((try? AppID(validating: appId)) != nil ? "App \(appId) \(version) has no release task." : "appId must be an 8-digit app ID.")
        }
        // The task may have been deleted since this snapshot was built: the same answer as no task.
        guard try await services.store.countEvent(task: task, event, device: device) else {
            throw BadClientRequest((try? AppID(validating: appId)) != nil ? "App \(appId) \(version) has no release task." : "appId must be an 8-digit app ID.")
        }
        if ["verify_failed", "install_failed", "trial_failed", "download_failed"].contains(event) {
            services.delivery.recentFailures.add(task: task, DeviceProfile(deviceId: device, app: appId, version: version.description, what: event))
        }
    }
}
