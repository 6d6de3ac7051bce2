import CourierCore
import CourierDomain
import CourierStore
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Posts release events to the webhook (SPEC §5): a JSON body signed with HMAC-SHA256 of the
/// body under the secret (`X-Courier-Signature: sha256=<hex>`), each attempt bounded in time,
/// a few attempts with a pause between, one at a time in the background. Sending never blocks
/// the change that caused it: events wait in a bounded queue (past it the oldest waiting is
/// dropped and counted: the newest say most about now), and an address that does not answer
/// holds up nothing but its own queue.
final class WebhookSender: ReleaseEventSink, Service, @unchecked Sendable {
    struct Delivery: Sendable {
        let at: Date
        let event: String
        let attempts: Int
        /// `200 OK`, or what went wrong.
        let outcome: String
        let ok: Bool
    }

    static let queueLimit = 100
    static let kept = 20
    static let attempts = 3
    let timeout: TimeInterval
    let pause: Duration
    private let store: Store
    private let logger: Logger?
    private let stream: AsyncStream<(ReleaseEvent, Date)>
    private let input: AsyncStream<(ReleaseEvent, Date)>.Continuation
    private let state = NIOLockedValueBox((deliveries: [Delivery](), dropped: 0))

    init(store: Store, logger: Logger?, timeout: TimeInterval = 5, pause: Duration = .seconds(2)) {
        self.store = store
        self.logger = logger
        self.timeout = timeout
        self.pause = pause
        (stream, input) = AsyncStream.makeStream(of: (ReleaseEvent, Date).self, bufferingPolicy: .bufferingNewest(Self.queueLimit))
    }

    func send(_ event: ReleaseEvent) {
        if case .dropped(let oldest) = input.yield((event, Date())) {
            state.withLockedValue { $0.dropped += 1 }
            logger?.warning("Webhook queue full: the oldest event waiting was dropped", metadata: ["event": "\(oldest.0.name)"])
        }
    }

    /// The last deliveries, newest first, and how many events were dropped.
    var recent: (deliveries: [Delivery], dropped: Int) { state.withLockedValue { ($0.deliveries, $0.dropped) } }

    func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            for await (event, at) in stream {
                if Task.isCancelled { break }
                await deliver(event, at: at)
            }
        }
    }

    /// The body: `{"event","at",…fields}` with sorted keys (what is signed is what is sent).
    static func body(_ event: ReleaseEvent, at: Date) -> Data {
        var o: [String: String] = event.fields
        o["event"] = event.name
        o["at"] = ISO8601DateFormatter().string(from: at)
        return (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    static func signature(_ body: Data, secret: String) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    func deliver(_ event: ReleaseEvent, at: Date) async {
        guard let hook = try? await store.webhook() else { return }   // none set (or unreadable): nothing to send
        let body = Self.body(event, at: at)
        var outcome = "", ok = false, attempt = 0
        while attempt < Self.attempts, !ok {
            attempt += 1
            if attempt > 1 { try? await Task.sleep(for: pause) }
            (ok, outcome) = await post(body, to: hook)
            if Task.isCancelled { break }
        }
        let d = Delivery(at: Date(), event: event.name, attempts: attempt, outcome: outcome, ok: ok)
        state.withLockedValue { s in
            s.deliveries.insert(d, at: 0)
            if s.deliveries.count > Self.kept { s.deliveries.removeLast(s.deliveries.count - Self.kept) }
        }
        if !ok { logger?.warning("Webhook delivery failed", metadata: ["event": "\(event.name)", "outcome": "\(outcome)", "attempts": "\(attempt)"]) }
    }

    /// One attempt: a 2xx answer is delivered; redirects are not followed.
    func post(_ body: Data, to hook: Webhook) async -> (Bool, String) {
        guard let url = URL(string: hook.url) else { return (false, "the address cannot be read") }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(Self.signature(body, secret: hook.secret), forHTTPHeaderField: "X-Courier-Signature")
        request.setValue("Courier-Webhook", forHTTPHeaderField: "User-Agent")
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        let session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        do {
            let (data, response) = try await session.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let text = String(decoding: data.prefix(200), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
            return ((200..<300).contains(status), "\(status) \(HTTPURLResponse.localizedString(forStatusCode: status))" + (text.isEmpty ? "" : ": \(text)"))
        } catch {
            return (false, (error as? URLError).map { Self.words($0) } ?? "\(error)")
        }
    }

    static func words(_ e: URLError) -> String {
        switch e.code {
        case .timedOut: "no answer within the time-out"
        case .cannotConnectToHost: "connection refused"
        case .cannotFindHost: "the host name does not resolve"
        default: "could not send (\(e.code.rawValue))"
        }
    }

    final class NoRedirects: NSObject, URLSessionTaskDelegate {
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }
}
