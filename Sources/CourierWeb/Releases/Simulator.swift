import CourierCore
import CourierStore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers

/// The targeting simulator (SPEC §5): a device profile in, and for each app the version it would
/// be offered now and, for every unfinished task, why it admits or refuses the device. Read from
/// the snapshot the update API answers from, with the same request parser (the same 400s), and
/// changing nothing: a time window is asked whether it would admit the device, not to admit it.
struct Simulation {
    struct TaskLine: Encodable {
        let id: Int64
        let version: String
        let admits: Bool
        let reason: String
        let url: String
        enum CodingKeys: String, CodingKey { case id, version, admits, reason }
    }
    struct AppLine: Encodable {
        let id: String
        let installed: String?
        let offered: String?
        let rollback: Bool
        let summary: String
        let tasks: [TaskLine]
        let url: String
        let hasTasks: Bool
        enum CodingKeys: String, CodingKey { case id, installed, offered, rollback, summary, tasks }
        /// `offered` and `installed` are `null` when there is none (SPEC §8), not left out.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(installed, forKey: .installed); try c.encode(offered, forKey: .offered)
            try c.encode(rollback, forKey: .rollback); try c.encode(summary, forKey: .summary); try c.encode(tasks, forKey: .tasks)
        }
    }

    let apps: [AppLine]

    /// At most this many apps are shown (a profile without `app` or installed versions covers every app).
    static let maxApps = 200

    init(_ request: ClientRequest, app only: String?, delivery: Delivery, now: Date = Date()) throws {
        let snapshot = delivery.snapshot
        var ids: [String]
        if let only, !only.isEmpty {
            guard snapshot.targeting.apps[only] != nil else {
                throw NotFound((try? AppID(validating: only)) != nil ? "App \(only) has no release task." : "app must be an 8-digit app ID.")
            }
            ids = [only]
        } else {
            ids = Array(snapshot.targeting.apps.keys)
        }
        ids.sort()
        let gaveUp = ClientController.gaveUp(request, delivery.gaveUp)
        let ledger = delivery.ledger
        let peek: AdmitDevice = { task, count, device in ledger.peek(task: task, count: count, device: device) != .full }
        let targets = ids.prefix(Self.maxApps).compactMap { snapshot.targeting.apps[$0] }
        let results = Targeting.simulate(request, apps: targets, snapshot: snapshot.targeting, now: now, gaveUp: gaveUp, peek: peek)
        apps = zip(targets, results).map { app, result in
            let id = app.appId
            let (decision, verdicts) = result
            let offered: (String, Bool)? = switch decision.answer {
            case .update(let v, _): (v.description, false)
            case .rollback(let v, _): (v.description, true)
            case .none: nil
            }
            return AppLine(id: id, installed: (request.installed[id] ?? nil)?.description, offered: offered?.0, rollback: offered?.1 ?? false,
                           summary: decision.summary,
                           tasks: verdicts.map { v in
                               TaskLine(id: v.taskId, version: v.version.description, admits: v.admitted,
                                        reason: v.explanation(for: request),
                                        url: Route.task.path(String(v.taskId)))
                           },
                           url: Route.app.path(id), hasTasks: !verdicts.isEmpty)
        }
    }

    /// Reads a profile as the update API does (`{"platform","clientVersion",…,"apps":[…]}`):
    /// garbage gets the update API's words, as a 400.
    static func request(_ body: Data) throws -> ClientRequest {
        do { return try body.withUnsafeBytes { try ClientRequest.parse($0) } } catch let e as ClientRequestError {
            throw HTTPError(.badRequest, message: e.message)
        }
    }

    /// A form's or a link's fields as an update request's JSON: `apps` is one app per line, `ID VERSION`.
    static func json(_ field: (String) -> String) -> Data {
        var o: [String: Any] = [:]
        for key in ["platform", "clientVersion", "deviceId", "userId", "model", "osVersion", "network", "city"] {
            let v = field(key).trimmingCharacters(in: .whitespaces)
            if !v.isEmpty { o[key] = v }
        }
        o["apps"] = field("apps").split(whereSeparator: \.isNewline).prefix(ClientRequest.maxApps + 1).compactMap { line -> [String: String]? in
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
            guard let id = parts.first else { return nil }
            return ["id": id, "version": parts.count > 1 ? parts[1] : "0"]
        }
        return (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    /// The simulator's address for a device profile (the task page links to it).
    static func link(_ p: DeviceProfile, app: String) -> String {
        var query: [(String, String)] = []
        for (k, v) in [("platform", p.platform), ("clientVersion", p.clientVersion), ("deviceId", p.deviceId), ("userId", p.userId),
                       ("model", p.model), ("osVersion", p.osVersion), ("network", p.network), ("city", p.city)] where !v.isEmpty {
            query.append((k, v))
        }
        if !p.apps.isEmpty { query.append(("apps", p.apps)) }
        query.append(("app", app))
        // A failure reported as an event names no platform or client version: the form opens
        // prefilled, to be completed, rather than answering "platform is required".
        if p.platform.isEmpty || p.clientVersion.isEmpty { query.append(("complete", "1")) }
        return Route.simulate.path([], query: query)
    }
}

/// What a device said about itself, kept to link the simulator to it.
struct DeviceProfile: Sendable, Equatable {
    var platform = "", clientVersion = "", deviceId = "", userId = "", model = "", osVersion = "", network = "", city = ""
    /// `ID VERSION` lines.
    var apps = ""
    /// What it reported (`trial failed`, `verify_failed`…).
    var what = ""
    var at = Date()

    /// From an event: only a failed trial says the device runs the version (it was installed);
    /// a download, a check or an install that failed leaves the installed version unknown.
    init(deviceId: String, app: String, version: String, what: String) {
        self.deviceId = String(deviceId.prefix(256)); self.what = what
        apps = what == "trial_failed" ? "\(app) \(version)" : ""
    }

    init(_ r: ClientRequest, what: String) {
        platform = r.platform.rawValue; clientVersion = r.clientVersion.description; deviceId = r.deviceId; userId = r.userId
        model = r.model; osVersion = r.osVersion; network = r.network; city = r.city
        apps = r.installed.sorted { $0.key < $1.key }.prefix(20).map { "\($0.key) \($0.value?.description ?? "0")" }.joined(separator: "\n")
        self.what = what
    }
}

/// The last devices that reported a failure, per task (SPEC §5: the task page links the
/// simulator to them). In memory and bounded: a few per task, a few hundred tasks; this node's.
final class RecentFailures: Sendable {
    static let perTask = 5
    static let tasks = 500
    private let state = NIOLockedValueBox<[Int64: [DeviceProfile]]>([:])

    /// Keeps `p` first in its task's list; past `tasks` tasks, forgets the one whose newest
    /// failure is the oldest.
    func add(task: Int64, _ p: DeviceProfile) {
        state.withLockedValue { all in
            if all[task] == nil, all.count >= Self.tasks, let oldest = all.min(by: { ($0.value.first?.at ?? .distantPast) < ($1.value.first?.at ?? .distantPast) })?.key {
                all[oldest] = nil
            }
            var list = all[task, default: []].filter { $0.deviceId != p.deviceId }
            list.insert(p, at: 0)
            all[task] = Array(list.prefix(Self.perTask))
        }
    }

    func of(task: Int64) -> [DeviceProfile] { state.withLockedValue { $0[task] ?? [] } }
}

/// The simulator's console page and its JSON twin.
struct SimulatorController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.simulate, needs: .read) { request, context in
            let q = request.queryFields
            func field(_ k: String) -> String { q[k] }
            var page = SimulatorPage(field: field, chrome: Chrome(context, section: .simulate))
            guard !field("platform").isEmpty || !field("clientVersion").isEmpty || !field("deviceId").isEmpty else {
                return services.views.render("simulate", page)
            }
            if field("complete") == "1", field("platform").isEmpty || field("clientVersion").isEmpty {
                page.incomplete = true
                return services.views.render("simulate", page)
            }
            do {
                let r = try Simulation.request(Simulation.json(field))
                page.result = try Simulation(r, app: field("app"), delivery: services.delivery).apps
                return services.views.render("simulate", page)
            } catch let e as HTTPError {
                page.error = e.body
                return services.views.render("simulate", page, status: .badRequest)
            } catch let e as NotFound {
                page.error = e.description
                return services.views.render("simulate", page, status: .notFound)
            }
        }
    }

    func addAPIRoutes(to routes: SignedInRoutes) {
        routes.post(.apiSimulate, needs: .read) { request, _ in
            let body = Data(buffer: try await request.body.collect(upTo: ClientController.maxBody))
            let r = try Simulation.request(body)
            var app: String?
            if let o = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let a = o["app"] {
                guard let s = a as? String else { throw HTTPError(.badRequest, message: "app must be an 8-digit app ID.") }
                app = s
            }
            struct Answer: Encodable { let apps: [Simulation.AppLine] }
            return try json(Answer(apps: try Simulation(r, app: app, delivery: services.delivery).apps))
        }
    }
}

struct SimulatorPage {
    let chrome: Chrome
    let platform: String, clientVersion: String, deviceId: String, userId: String, model: String, osVersion: String, network: String, city: String
    let apps: String
    let app: String
    let platforms: [TaskFormPage.Choice]
    var result: [Simulation.AppLine]? = nil { didSet { noApps = result?.isEmpty == true } }
    var noApps = false
    var error: String? = nil
    /// Opened from a device that did not say its platform and client version (an event).
    var incomplete = false
    let action = Route.simulate.path()

    init(field: (String) -> String, chrome: Chrome) {
        self.chrome = chrome
        platform = field("platform"); clientVersion = field("clientVersion"); deviceId = field("deviceId"); userId = field("userId")
        model = field("model"); osVersion = field("osVersion"); network = field("network"); city = field("city"); apps = field("apps"); app = field("app")
        let chosen = platform.isEmpty ? "android" : platform
        platforms = [TaskFormPage.Choice(value: "android", label: "Android", checked: chosen == "android"),
                     TaskFormPage.Choice(value: "ios", label: "iOS", checked: chosen == "ios")]
    }
}
