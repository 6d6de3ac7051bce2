import CourierStore
import Foundation
import Hummingbird

/// For operators and their monitoring (issue 10): `/healthz` (the process answers), `/readyz`
/// (the database, the blob store and the delivery snapshot are usable) and `/metrics`
/// (Prometheus text; loopback only, or with the metrics token).
struct HealthController {
    let services: Services

    func addRoutes(to router: RouterGroup<AppContext>, table: RouteTable) {
        for route in [Route.healthz, .readyz, .metrics] { table.add(.init(method: .get, route: route, permission: nil, surface: .open)) }
        router.get(Route.healthz.routerPath) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get(Route.readyz.routerPath) { _, _ in
            var checks: [String: String] = [:]
            do { try await services.store.ping(); checks["database"] = "ok" } catch { checks["database"] = "failing: \(error)" }
            checks["blobs"] = services.store.blobs.probeWritable() ? "ok" : "cannot create a file in \(services.store.blobs.temporaryDirectory.path)"
            // The last rebuild read the catalogue, and the snapshot is not standing in for settings
            // that cannot be read (then it offers nothing).
            let settings = services.delivery.snapshot.unreadable.first { $0.hasPrefix("the settings") }
            checks["snapshot"] = switch services.delivery.rebuildOutcome {
            case nil: "not loaded"
            case let last? where last.failure != nil:
                "the last rebuild failed at \(ISO8601DateFormatter().string(from: last.at)), offering nothing: \(last.failure ?? "")"
            case _?: settings.map { "offers nothing: \($0)" } ?? "ok"
            }
            let ready = checks.values.allSatisfy { $0 == "ok" }
            // Which database this node uses (never its password): on several nodes, the operator
            // sees they share one.
            let store = StoreLocation(dataDirectory: services.config.dataDirectory, database: services.config.database).description
            let data = try JSONSerialization.data(withJSONObject: ["ready": ready, "checks": checks, "store": store], options: [.sortedKeys])
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get(Route.metrics.routerPath) { request, context in
            // Forwarded by a proxy that is not declared trusted (none is, or others are): the
            // loopback peer is then that proxy, not the operator, and the person behind it is unknown.
            let forwarded = request.headers[.xForwardedFor] != nil || request.headers[.xRealIP] != nil || request.headers[.forwarded] != nil
            let viaProxy = !context.peerIsTrustedProxy && forwarded
            guard Self.mayReadMetrics(remoteIP: viaProxy ? "(behind a proxy)" : context.remoteIP, authorization: request.headers[.authorization],
                                      token: services.config.metricsToken) else {
                throw HTTPError(.forbidden, message: "Metrics are readable from loopback, or with the metrics token (--metrics-token).")
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: services.delivery.metrics.text())))
        }
    }

    static func mayReadMetrics(remoteIP: String, authorization: String?, token: String?) -> Bool {
        if ["127.0.0.1", "::1", "local"].contains(remoteIP) || remoteIP.hasPrefix("127.") { return true }
        guard let token, !token.isEmpty, let authorization, authorization.hasPrefix("Bearer ") else { return false }
        return constantTimeEqual(String(authorization.dropFirst(7)), token)
    }
}
