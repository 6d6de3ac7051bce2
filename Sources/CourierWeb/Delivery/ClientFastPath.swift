import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Synchronization

/// The client update API answered on the connection's event loop (SPEC §4: the hot path).
///
/// Through the router every request hops from the event loop to a Swift task and back, and is
/// converted to and from HTTPTypes; for the one route every installed app calls, that cost more
/// than the decision. This handler sits in each connection's pipeline right after the HTTP/1
/// parser, collects a `POST /client/v1/update` body (bounded), and answers from the snapshot
/// right there — when it can do so without waiting. Everything else goes on to Hummingbird
/// untouched, and so does an update request that is bad (the router words the 400), that needs a
/// time-window admission written first, that asks to close the connection or to continue, or that
/// arrives while an earlier request of the same connection is still being answered (answers keep
/// the order of pipelined requests). Both paths share `ClientController.immediateAnswer`, so
/// they answer alike; tests compare them.
///
/// Because it sees every request and answer of its connection, this handler also keeps the idle
/// time-out (Hummingbird's own is off: it would not see the requests answered here), with
/// Hummingbird's rules: a connection is closed after `idleTimeout` without reading, unless an
/// answer is being prepared. A graceful-shutdown request waits for an update request being read.
/// It answers only while the peer takes its answers (else the router's backpressure applies, and
/// reading waits), and nothing after a request that asked to close the connection.
final class ClientFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let delivery: Delivery
    private let contentHost: String?
    private let idleTimeout: TimeAmount?
    /// Requests passed on to the router whose answer has not ended yet.
    private var passedOn = 0
    private var state = State.idle
    /// The Date header, remade when the second changes.
    private var date = (second: 0, text: "")
    // Idle time-out: requests read but not answered, whether one is being read, and when the
    // connection last did something.
    private var unanswered = 0
    private var reading = false
    private var lastActive = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var quiesceHeld = false
    /// A request asked to close the connection: everything after it goes to the router.
    private var closing = false
    /// Reading waits while the peer does not take our answers (backpressure).
    private var readHeld = false

    private enum State {
        case idle
        /// Collecting an update request's body.
        case collecting(HTTPRequestHead, ByteBuffer)
        /// The current request goes to the router, part by part.
        case passing
    }

    init(delivery: Delivery, contentHost: String?, idleTimeout: TimeAmount?) {
        self.delivery = delivery
        self.contentHost = contentHost
        self.idleTimeout = idleTimeout
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        lastActive = .now()
        switch (part, state) {
        case (.head(let head), _):
            unanswered += 1
            reading = true
            if passedOn == 0, !closing, context.channel.isWritable, takes(head) {
                state = .collecting(head, context.channel.allocator.buffer(capacity: 0))
            } else {
                passOn(context, head)
            }
        case (.body(var chunk), .collecting(let head, var body)):
            guard body.readableBytes + chunk.readableBytes <= ClientController.maxBody else {
                // Too big for this path: the router refuses it with its message.
                passOn(context, head, body)
                context.fireChannelRead(data)
                releaseQuiesce(context)
                return
            }
            state = .idle  // drop the buffer's second reference before writing to it
            body.writeBuffer(&chunk)
            state = .collecting(head, body)
        case (.end(let trailers), .collecting(let head, let body)):
            reading = false
            state = .idle
            let start = DispatchTime.now().uptimeNanoseconds
            let answer = body.withUnsafeReadableBytes { ClientController.immediateAnswer($0, delivery: delivery, now: Date()) }
            if let answer {
                delivery.eventLoopAnswers.add(1, ordering: .relaxed)
                respond(context, answer)
                // The same counters the router's RequestMetricsMiddleware keeps, by the same call.
                delivery.metrics.request(route: Route.clientUpdate.pattern, method: "POST", status: 200,
                                         nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - start))
            } else {
                passOn(context, head, body)
                context.fireChannelRead(wrapInboundOut(.end(trailers)))
                state = .idle
            }
            releaseQuiesce(context)
        case (.end, _):
            reading = false
            state = .idle
            context.fireChannelRead(data)
        case (.body, _):
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // (Hummingbird also answers a request the parser refused, which never came through.)
            passedOn = max(0, passedOn - 1)
            answered(context)
        }
        context.write(data, promise: promise)
    }

    // MARK: Backpressure: a peer that sends requests but does not read the answers is not read
    // from until it does, as on the router's path.

    func read(context: ChannelHandlerContext) {
        guard context.channel.isWritable else {
            readHeld = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, readHeld {
            readHeld = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    /// An update request this path may answer: the route, HTTP/1.1 keep-alive, no `Expect`,
    /// the content host when one is set, and a declared length within bounds.
    private func takes(_ head: HTTPRequestHead) -> Bool {
        guard head.method == .POST, head.uri == Route.clientUpdate.pattern, head.version == .http1_1, head.isKeepAlive,
              !head.headers.contains(name: "expect"),
              HostGate.admits(authority: head.headers.first(name: "host"), host: contentHost) else { return false }
        if let length = head.headers.first(name: "content-length") {
            guard let n = Int(length), n <= ClientController.maxBody else { return false }
        }
        return true
    }

    private func passOn(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer? = nil) {
        passedOn += 1
        if !head.isKeepAlive { closing = true }
        state = .passing
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body, body.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(.body(body))) }
    }

    private func dateText() -> String {
        let now = time(nil)
        if date.second != now { date = (now, HTTPDate.text(now)) }
        return date.text
    }

    /// The answer's headers as the router's path would write them (`answerHeaders`, then
    /// `EveryAnswer`), in HTTP/1 form once.
    private static let fixedHeaders: [(String, String)] = (ClientController.answerHeaders + EveryAnswer.headers).map { ($0.name.rawName, $0.value) }

    private func respond(_ context: ChannelHandlerContext, _ body: ByteBuffer) {
        var headers = HTTPHeaders(Self.fixedHeaders)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Date", value: dateText())
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        answered(context)
    }

    // MARK: Idle time-out and graceful shutdown

    private func answered(_ context: ChannelHandlerContext) {
        unanswered = max(0, unanswered - 1)
        guard unanswered == 0 else { return }
        lastActive = .now()
        // The timer stops while an answer is prepared; it starts again from here.
        if let idleTimeout, idleTimer == nil, context.channel.isActive { schedule(context, at: lastActive + idleTimeout) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        context.fireChannelInactive()
    }

    private func startTimer(_ context: ChannelHandlerContext) {
        guard let idleTimeout, idleTimer == nil else { return }
        lastActive = .now()
        schedule(context, at: lastActive + idleTimeout)
    }

    private func schedule(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        idleTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [self] in
            idleTimer = nil
            guard let idleTimeout, context.channel.isActive else { return }
            let due = lastActive + idleTimeout
            if !reading && unanswered > 0 {
                return  // an answer is being prepared: not idleness (`answered` restarts the timer)
            } else if NIODeadline.now() < due {
                schedule(context, at: due)
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func releaseQuiesce(_ context: ChannelHandlerContext) {
        guard quiesceHeld else { return }
        quiesceHeld = false
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, case .collecting = state {
            quiesceHeld = true  // passed on once the update request being read is answered
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Hummingbird's HTTP/1.1 channel with `ClientFastPath` placed right after the HTTP/1 parser.
struct CourierHTTP1Channel: ServerChildChannel {
    let inner: HTTP1Channel
    let fastPath: @Sendable () -> ClientFastPath

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(fastPath(), position: .before(try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)))
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
