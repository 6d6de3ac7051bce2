import CourierCore
import CourierStore
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Issue 15, 3.5: behind a reverse proxy every request comes from the proxy's address. With
/// `--trusted-proxy` its `X-Forwarded-For` names the person; from anyone else it is ignored.
final class ProxyTests: XCTestCase {
    func testTheForwardedAddressIsBelievedOnlyFromATrustedProxy() {
        let proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"].compactMap(TrustedProxy.init)
        XCTAssertEqual(proxies.count, 3)
        XCTAssertNil(TrustedProxy("10.0.0.0/33"))
        XCTAssertNil(TrustedProxy("example.com"))
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.7"], trusted: proxies), "203.0.113.7")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "198.51.100.1", forwardedFor: ["203.0.113.7"], trusted: proxies), "198.51.100.1",
                       "an untrusted peer's header is ignored")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.2.3.4, 203.0.113.7, 10.1.1.1"], trusted: proxies), "203.0.113.7",
                       "the nearest untrusted hop; what the client wrote further left is not believed")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "::ffff:127.0.0.1", forwardedFor: ["203.0.113.7"], trusted: proxies), "203.0.113.7")
        // Unreadable: never the proxy's own (loopback) address; ports and brackets are read.
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["junk"], trusted: proxies), "unknown")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.9:5555"], trusted: proxies), "203.0.113.9")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["[2001:db8::1]:443"], trusted: proxies), "2001:db8::1")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["[2001:db8::1]"], trusted: proxies), "2001:db8::1")
        XCTAssertEqual(TrustedProxy.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.7"], trusted: []), "127.0.0.1")
    }

    /// Failed sign-ins through the proxy lock out the address that made them, not everyone.
    func testSignInThrottlingAndMetricsSeeThePersonBehindTheProxy() async throws {
        for trusted in [true, false] {
            let h = try await Harness.make(trustedProxies: trusted ? [TrustedProxy("127.0.0.1")!] : [])
            defer { h.cleanUp() }
            try await h.addUser("alice")
            try await h.testLive { client in
                for _ in 0..<5 {
                    let r = try await LoginForm.open(client).submit(name: "alice", password: "wrong-horse", headers: [.xForwardedFor: "203.0.113.7"])
                    XCTAssertEqual(r.status, .unauthorized)
                }
                let blocked = try await LoginForm.open(client).submit(name: "alice", password: "correct-horse", headers: [.xForwardedFor: "203.0.113.7"])
                XCTAssertEqual(blocked.status, .tooManyRequests)
                let other = try await LoginForm.open(client).submit(name: "alice", password: "correct-horse", headers: [.xForwardedFor: "203.0.113.8"])
                XCTAssertEqual(other.status, trusted ? .seeOther : .tooManyRequests,
                               trusted ? "another person behind the proxy signs in" : "without --trusted-proxy the header is not believed")
                // /metrics: open from loopback, but not to someone forwarded by a proxy.
                await assertEqual(try await client.execute(uri: "/metrics", method: .get).status, .ok)
                await assertEqual(try await client.execute(uri: "/metrics", method: .get, headers: [.xForwardedFor: "203.0.113.7"]).status, .forbidden)
                await assertEqual(try await client.execute(uri: "/metrics", method: .get, headers: [.xForwardedFor: "127.0.0.1"]).status,
                                  trusted ? .ok : .forbidden)
            }
        }
    }

    func testMetricsRefuseARequestForwardedByAProxyThatIsNotTheDeclaredOne() async throws {
        // Proxies are declared, but this request comes through another (here: from loopback,
        // which is not among them): it is not the operator on the machine.
        let h = try await Harness.make(trustedProxies: [TrustedProxy("10.0.0.0/8")!])
        defer { h.cleanUp() }
        try await h.testLive { client in
            await assertEqual(try await client.execute(uri: "/metrics", method: .get).status, .ok)
            await assertEqual(try await client.execute(uri: "/metrics", method: .get, headers: [.xForwardedFor: "127.0.0.1"]).status, .forbidden)
            await assertEqual(try await client.execute(uri: "/metrics", method: .get, headers: [.xRealIP: "127.0.0.1"]).status, .forbidden)
            await assertEqual(try await client.execute(uri: "/metrics", method: .get, headers: [.forwarded: "for=127.0.0.1"]).status, .forbidden)
        }
        // A trusted proxy forwarding what cannot be read: not loopback.
        let trusting = try await Harness.make(trustedProxies: [TrustedProxy("127.0.0.1")!])
        defer { trusting.cleanUp() }
        try await trusting.testLive { client in
            await assertEqual(try await client.execute(uri: "/metrics", method: .get, headers: [.xForwardedFor: "unknown"]).status, .forbidden)
        }
    }
}
