import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest
@testable import CourierWeb

/// The client update API's event-loop path (`ClientFastPath`) against the router's: same bytes
/// for every request, the router for whatever needs a write or a worded 400, and the order of
/// pipelined answers kept.
final class FastPathTests: XCTestCase {
    typealias Client = ReleaseTests.Client

    /// Releases 1.0.0.1 officially and 1.0.0.2 to half the devices in Hangzhou or a whitelist.
    func released() async throws -> (Harness, String) {
        let (h, token) = try await releasedHarness()
        let list = try await h.services.actions.createWhitelist(by: .commandLine, name: "beta", kind: "user", values: ["u-listed"])
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#).status, .created)
            let gray = #"{"type":"gray","mode":"whitelist","whitelistIds":[\#(list.id ?? 0)],"rules":[{"field":"city","op":"in","values":["Hangzhou"]}]}"#
            await assertEqual(try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.2/tasks", json: gray).status, .created)
        }
        return (h, token)
    }

    static let requests: [String] = [
        #"{"platform":"android","clientVersion":"10.2.3","deviceId":"d-1","userId":"u-listed","city":"Hangzhou","apps":[{"id":"20171228","version":"0"}]}"#,
        #"{"platform":"android","clientVersion":"10.2.3","deviceId":"d-2","userId":"u-listed","city":"Beijing","apps":[{"id":"20171228","version":"1.0.0.1"}]}"#,
        #"{"platform":"IOS","clientVersion":" 14 ","userId":"u-other","apps":[{"id":"20171228","version":null}],"all":true}"#,
        #"{"platform":"android","clientVersion":"10","apps":[],"all":true,"extra":{"nested":[1,2.5e3,true,null,"\u00e9\ud83d\ude00"]}}"#,
        #"{"platform":"android","clientVersion":"10","userId":"u-listed","city":"hangzhou","apps":[{"id":"20171228","version":"1.0.0.2"},{"id":"99999999","version":"0"}]}"#,
        #"{"platform":"android","clientVersion":"1","apps":[{"id":"20171228","version":"0"}]}"#,
    ]
    static let badRequests: [String] = [
        "not json", "[]", "{}", #"{"platform":"windows","clientVersion":"1"}"#, #"{"platform":"android","clientVersion":10}"#,
        #"{"platform":"android","clientVersion":"1","apps":[{"id":"20171228","version":"1.0"}]}"#,
        #"{"platform":"android","clientVersion":"1"} trailing"#, #"{"platform":"android","clientVersion":"1\ud800"}"#,
    ]

    func testTheEventLoopPathAnswersByteForByteAsTheRouterDoes() async throws {
        let (h, _) = try await released()
        defer { h.cleanUp() }
        let expected = Box<[(HTTPResponse.Status, String)]>([])
        try await h.test { client in
            let c = Client(client: client)
            for body in Self.requests + Self.badRequests {
                let r = try await c.update(body)
                expected.value.append((r.status, r.text))
            }
        }
        XCTAssertEqual(expected.value.prefix(Self.requests.count).map(\.0), Array(repeating: .ok, count: Self.requests.count))
        XCTAssertTrue(expected.value[0].1.contains(#""version":"1.0.0.2""#), expected.value[0].1)
        let before = h.services.delivery.eventLoopAnswers.load(ordering: .relaxed)
        try await h.testLive { client in
            let c = Client(client: client)
            for (body, (status, text)) in zip(Self.requests + Self.badRequests, expected.value) {
                let r = try await c.update(body)
                XCTAssertEqual(r.status, status, body)
                XCTAssertEqual(r.text, text, body)
                XCTAssertEqual(r.headers[.contentType], "application/json", body)
                XCTAssertEqual(r.headers[.xContentTypeOptions], "nosniff", body)
                if status == .ok { XCTAssertEqual(r.headers[.cacheControl], "no-store", body) }
            }
        }
        XCTAssertEqual(h.services.delivery.eventLoopAnswers.load(ordering: .relaxed) - before, Self.requests.count,
                       "good requests are answered on the event loop, bad ones by the router")
    }

    /// Issue 19: the event-loop path writes the headers and keeps the metrics the router's
    /// middleware does. A middleware that adds a header to every answer makes this fail until
    /// the event-loop path writes it too.
    func testBothPathsAnswerWithTheSameHeadersAndCountInTheSameMetrics() async throws {
        let (h, _) = try await released()
        defer { h.cleanUp() }
        let body = Self.requests[0]
        try await h.testLive { client in
            let before = h.services.delivery.eventLoopAnswers.load(ordering: .relaxed)
            let fast = try await Client(client: client).update(body)
            XCTAssertEqual(h.services.delivery.eventLoopAnswers.load(ordering: .relaxed), before + 1, "answered on the event loop")
            // The same request with a query string is the router's (the event-loop path takes the bare path only).
            let routed = try await client.execute(uri: "/client/v1/update?via=router", method: .post,
                                                  headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
            XCTAssertEqual(h.services.delivery.eventLoopAnswers.load(ordering: .relaxed), before + 1, "answered by the router")
            XCTAssertEqual(fast.text, routed.text)
            // The router's path says which request it was, for its log line; the event-loop path logs
            // no line per request (metrics count them), so it has no ID to point to.
            let onlyRouted: Set<String> = ["x-request-id"]
            let names = { (r: TestResponse) in Set(r.headers.map { $0.name.canonicalName }) }
            XCTAssertEqual(names(fast), names(routed).subtracting(onlyRouted), "headers the event-loop path does not write")
            for name in names(fast).subtracting(["date", "content-length"]) {
                let field = HTTPField.Name(name)!
                XCTAssertEqual(fast.headers[field], routed.headers[field], name)
            }
        }
        let metrics = h.services.delivery.metrics.text()
        XCTAssertTrue(metrics.contains(#"courier_http_requests_total{route="/client/v1/update",method="POST",status="200"} 2"#)
                      || metrics.contains(#"courier_http_requests_total{method="POST",route="/client/v1/update",status="200"} 2"#),
                      "both answers counted in one series\n" + metrics.split(separator: "\n").filter { $0.contains("client/v1/update") }.joined(separator: "\n"))
    }

    func testPipelinedRequestsAreAnsweredInOrderWhicheverPathTakesThem() async throws {
        let (h, _) = try await released()
        defer { h.cleanUp() }
        try await h.testLive { client in
            let c = Client(client: client)
            // One connection, requests sent without waiting: good ones (event loop) and bad ones
            // and console pages (router) interleaved; each answer must match its request.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<60 {
                    group.addTask {
                        switch n % 3 {
                        case 0:
                            let r = try await c.update(#"{"platform":"android","clientVersion":"10","deviceId":"d-\#(n)","apps":[{"id":"20171228","version":"0"}]}"#)
                            XCTAssertEqual(r.status, .ok)
                            XCTAssertTrue(r.text.contains(#""version":"1.0.0.1""#), r.text)
                        case 1:
                            let r = try await c.update(#"{"platform":"android","clientVersion":"bad-\#(n)"}"#)
                            XCTAssertEqual(r.status, .badRequest)
                        default:
                            let r = try await client.execute(uri: "/login?n=\(n)", method: .get)
                            XCTAssertEqual(r.status, .ok)
                            XCTAssertTrue(r.text.contains("<form"), "a console page answers a console request")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    func testATimeWindowOverRealConnectionsAdmitsExactlyTheFirstDevices() async throws {
        let dir = temporaryDirectory()
        let (h, token) = try await releasedHarness(dir: dir)
        defer { h.cleanUp() }
        let end = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        let box = Box<Set<String>>([])
        try await h.testLive { client in
            let api = APITests.Caller(client: client, token: token)
            let r = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks",
                                       json: #"{"type":"gray","mode":"timeWindow","endTime":"\#(end)","userCount":50}"#)
            XCTAssertEqual(r.status, .created, r.text)
            let port = try XCTUnwrap(client.port)
            // Eight connections at once, each asking for its share of 300 devices twice.
            box.value = try await withThrowingTaskGroup(of: Set<String>.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        let own = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(20)))
                        own.connect()
                        defer { Task { try? await own.shutdown() } }
                        var mine: Set<String> = []
                        for n in stride(from: worker, to: 300, by: 8) {
                            for _ in 0..<2 {
                                let body = #"{"platform":"android","clientVersion":"10.2.3","deviceId":"d-\#(n)","apps":[{"id":"20171228","version":"0"}]}"#
                                let answer = try await own.execute(.init("/client/v1/update", method: .post, headers: [.contentType: "application/json"],
                                                                         body: ByteBuffer(string: body)))
                                XCTAssertEqual(answer.status, .ok)
                                if String(buffer: answer.body ?? ByteBuffer()).contains("1.0.0.1") { mine.insert("d-\(n)") }
                            }
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.formUnion($1) }
            }
        }
        XCTAssertEqual(box.value.count, 50)
        await assertEqual(try await h.store.admissions().values.first?.count, 50)
        let restarted = try await Harness.make(dir: dir)
        try await restarted.testLive { client in
            let c = Client(client: client)
            for device in box.value.sorted().prefix(10) { await assertEqual(try await c.versions(device: device), ["1.0.0.1"], device) }
            await assertEqual(try await c.versions(device: "d-new"), [], "the window is full after a restart too")
        }
    }
}
