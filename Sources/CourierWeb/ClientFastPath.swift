import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// The client update API answered on the connection's event loop (SPEC §4: the hot path).
///
/// Through the router every request hops from the event loop to a Swift task and back; for the
/// one route every installed app calls, that hop cost more than the decision. This handler sits
/// in each connection's pipeline just before Hummingbird's, collects a `POST /client/v1/update`
/// body (bounded), and answers from the snapshot right there — when it can do so without waiting.
/// Everything else goes on to the router untouched, and so does an update request that is bad
/// (the router words the 400), that needs a time-window admission written first, that asks to
/// close the connection or to continue, or that arrives while an earlier request of the same connection is
/// still being answered (answers must keep the order of pipelined requests). Both paths share
/// `ClientController.immediateAnswer`, so they answer alike; tests compare them.
final class ClientFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let delivery: Delivery
    private let contentHost: String?
    /// Requests passed on to the router whose answer has not ended yet.
    private var passedOn = 0
    private var state = State.idle
    /// The Date header, remade when the second changes.
    private var date = (second: 0, text: "")

    private enum State {
        case idle
        /// Collecting an update request's body.
        case collecting(HTTPRequest, ByteBuffer)
        /// The current request goes to the router, part by part.
        case passing
    }

    init(delivery: Delivery, contentHost: String?) {
        self.delivery = delivery
        self.contentHost = contentHost
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), _):
            if passedOn == 0, takes(head) {
                state = .collecting(head, context.channel.allocator.buffer(capacity: 0))
            } else {
                passOn(context, head)
            }
        case (.body(var part), .collecting(let head, var body)):
            guard body.readableBytes + part.readableBytes <= ClientController.maxBody else {
                // Too big for this path: the router refuses it with its message.
                passOn(context, head, body)
                context.fireChannelRead(data)
                return
            }
            state = .idle  // drop the buffer's second reference before writing to it
            body.writeBuffer(&part)
            state = .collecting(head, body)
        case (.end(let trailers), .collecting(let head, let body)):
            let answer = body.withUnsafeReadableBytes { ClientController.immediateAnswer($0, delivery: delivery, now: Date()) }
            guard let answer else {
                passOn(context, head, body)
                context.fireChannelRead(wrapInboundOut(.end(trailers)))
                state = .idle
                return
            }
            state = .idle
            delivery.eventLoopAnswers.add(1, ordering: .relaxed)
            respond(context, answer)
        case (.end, .passing):
            state = .idle
            context.fireChannelRead(data)
        case (_, .passing), (_, .idle):
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { passedOn -= 1 }
        context.write(data, promise: promise)
    }

    /// An update request this path may answer: the route, no `Expect` header and no `Connection`
    /// header other than keep-alive,
    /// the content host when one is set, and a declared length within bounds.
    private func takes(_ head: HTTPRequest) -> Bool {
        guard head.method == .post, head.path == Route.clientUpdate.pattern,
              head.headerFields[.connection].map({ $0.lowercased() == "keep-alive" }) ?? true, head.headerFields[.expect] == nil,
              HostGate.admits(authority: head.authority, host: contentHost) else { return false }
        if let length = head.headerFields[.contentLength] {
            guard let n = Int(length), n <= ClientController.maxBody else { return false }
        }
        return true
    }

    private func passOn(_ context: ChannelHandlerContext, _ head: HTTPRequest, _ body: ByteBuffer? = nil) {
        passedOn += 1
        state = .passing
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body, body.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(.body(body))) }
    }

    private func dateText() -> String {
        let now = time(nil)
        if date.second != now { date = (now, HTTPDate.text(now)) }
        return date.text
    }

    private func respond(_ context: ChannelHandlerContext, _ body: ByteBuffer) {
        var head = HTTPResponse(status: .ok)
        head.headerFields = [.contentType: "application/json", .cacheControl: "no-store",
                             .contentLength: String(body.readableBytes), .xContentTypeOptions: "nosniff",
                             .date: dateText(), .server: "Courier"]
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Hummingbird's HTTP/1.1 channel with `ClientFastPath` placed after its connection-state
/// handler (so idle time-outs and graceful shutdown count the requests this path answers).
struct CourierHTTP1Channel: ServerChildChannel {
    let inner: HTTP1Channel
    let fastPath: @Sendable () -> ClientFastPath

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(fastPath(), position: .after(try pipeline.handler(type: HTTPConnectionStateHandler.self)))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// The `Date` header's text (RFC 9110 IMF-fixdate).
enum HTTPDate {
    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func text(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
