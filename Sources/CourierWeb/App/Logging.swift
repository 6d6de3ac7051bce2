import CourierStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// One JSON object per line (`courier serve --log-format json`): time, level, label, message
/// and the metadata as strings, for log shippers.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let lock = NSLock()
    nonisolated(unsafe) static let time: ISO8601DateFormatter = {   // used under `lock`
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    public func log(event: LogEvent) {
        var object: [String: String] = [:]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) { object[k] = "\(v)" }
        object["level"] = event.level.rawValue
        object["label"] = label
        object["msg"] = "\(event.message)"
        Self.lock.lock()
        defer { Self.lock.unlock() }
        object["ts"] = Self.time.string(from: Date())
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(0x0A)
        FileHandle.standardOutput.write(line)
    }
}

/// One line per request the router answers: method, path (never its query string, which may
/// carry a CSRF token), route, status and time; the request ID is in every line and in
/// the `X-Request-Id` answer header, and changes made while answering carry it too.
struct RequestLogMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let id = context.id
        func line(_ status: Int) {
            let route = context.endpointPath
            // The setup address holds its one-time token in the path: its route stands in for it.
            let path = route == Route.setup.pattern.replacingOccurrences(of: ":token", with: "{token}") ? (route ?? "") : request.uri.path
            context.logger.info("request", metadata: [
                "method": "\(request.method.rawValue)", "path": "\(path)", "route": "\(route ?? "unmatched")", "status": "\(status)",
                "ms": "\(String(format: "%.1f", Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000))",
            ])
        }
        do {
            var response = try await ChangeLog.$requestID.withValue(id) { try await next(request, context) }
            response.headers[HTTPField.Name("X-Request-Id")!] = id
            line(response.status.code)
            return response
        } catch {
            line((error as? any HTTPResponseError)?.status.code ?? 500)
            throw error
        }
    }
}
