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
    static let maxApps = 500
    static let events: Set<String> = ["download_ok", "download_failed", "verify_failed", "install_ok", "install_failed", "rollback"]

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
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw BadClientRequest("The body must be a JSON object.")
        }
        func text(_ key: String, required: Bool = false) throws -> String {
            guard let value = object[key] else {
                if required { throw BadClientRequest("\(key) is required.") }
                return ""
            }
            guard let s = value as? String, s.utf8.count <= 256 else { throw BadClientRequest("\(key) must be a string of at most 256 bytes.") }
            return s
        }
        guard let platform = Platform(rawValue: try text("platform", required: true).lowercased()) else {
            throw BadClientRequest("platform must be android or ios.")
        }
        guard let clientVersion = try? ClientVersion(validating: try text("clientVersion", required: true), field: "clientVersion") else {
            throw BadClientRequest("clientVersion must be 1 to 4 numbers separated by dots, like 10.2.3.")
        }
        var installed: [String: PackageVersion?] = [:]
        if let apps = object["apps"] {
            guard let list = apps as? [Any] else { throw BadClientRequest("apps must be a list of {\"id\",\"version\"}.") }
            guard list.count <= maxApps else { throw BadClientRequest("apps lists at most \(maxApps) apps.") }
            for item in list {
                guard let a = item as? [String: Any], let id = a["id"] as? String, id.utf8.count == 8 else {
                    throw BadClientRequest("Each app is {\"id\": \"8 digits\", \"version\": \"1.0.0.1\"}.")
                }
                switch a["version"] {
                case nil, is NSNull: installed[id] = .some(nil)
                case let v as String where v == "0" || v.isEmpty: installed[id] = .some(nil)
                case let v as String:
                    guard let version = try? PackageVersion(validating: v) else {
                        throw BadClientRequest("The version of app \(id) must be four numbers, like 1.0.0.1, or \"0\" for none.")
                    }
                    installed[id] = .some(version)
                default: throw BadClientRequest("The version of app \(id) must be a string.")
                }
            }
        }
        let all: Bool
        switch object["all"] {
        case nil: all = false
        case let b as Bool: all = b
        default: throw BadClientRequest("all must be true or false.")
        }
        return ClientRequest(platform: platform, clientVersion: clientVersion, deviceId: try text("deviceId"),
                             userId: try text("userId"), model: try text("model"), osVersion: try text("osVersion"),
                             network: try text("network"), city: try text("city"), installed: installed, all: all)
    }

    /// Decides from the snapshot; a time-window admission is recorded before the answer.
    func update(_ request: ClientRequest) async throws -> Response {
        let snapshot = services.delivery.snapshot
        let ledger = services.delivery.ledger
        let reserved = NIOLockedValueBox<[(task: Int64, device: String)]>([])
        let decisions = Targeting.decide(request, snapshot.targeting, now: Date()) { task, count, device in
            ledger.admit(task: task, count: count, device: device, reserved: reserved)
        }
        let fresh = reserved.withLockedValue { $0 }
        if !fresh.isEmpty {
            do { try await services.store.recordAdmissions(fresh) } catch {
                ledger.release(fresh)
                throw error
            }
        }
        var entries: [[UInt8]] = []
        for d in decisions {
            switch d.answer {
            case .update(let v, _): if let e = snapshot.entries[d.appId]?[v]?.update { entries.append(e) }
            case .rollback(let v, _): if let e = snapshot.entries[d.appId]?[v]?.rollback { entries.append(e) }
            case .none: break
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: DeliveryEntry.answer(entries))))
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
        guard let task = services.delivery.snapshot.taskOfPackage[appId]?[version] else {
            throw BadClientRequest("App \(appId) \(version) has no release task.")
        }
        try await services.store.countEvent(task: task, event)
    }
}
