import Foundation
import HTTPTypes
import Hummingbird

/// An address range of reverse proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`).
public struct TrustedProxy: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefix: Int
    public let description: String

    /// `10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`; nil when it is none of these.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let bytes = Self.bytes(first) else { return nil }
        let bits = bytes.count * 8
        let prefix = parts.count == 2 ? Int(parts[1]) : bits
        guard let prefix, (0...bits).contains(prefix) else { return nil }
        network = bytes
        self.prefix = prefix
        description = text
    }

    /// The 4 or 16 bytes of an address (an IPv4-mapped IPv6 address counts as its IPv4 one).
    static func bytes(_ address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b.prefix(10).allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b.suffix(4)) }
        return b
    }

    func contains(_ address: String) -> Bool {
        guard let b = Self.bytes(address), b.count == network.count else { return false }
        var left = prefix
        for (x, y) in zip(b, network) where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
            if x & mask != y & mask { return false }
            left -= 8
        }
        return true
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the nearest
    /// address in `X-Forwarded-For` that is not itself a trusted proxy (the ones further left
    /// were written by whoever sent the request, and anyone can write them).
    static func clientAddress(peer: String, forwardedFor: [String], trusted: [TrustedProxy]) -> String {
        guard !trusted.isEmpty, trusted.contains(where: { $0.contains(peer) }) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { address(of: $0.trimmingCharacters(in: .whitespaces)) }
        guard !hops.isEmpty else { return peer }   // the proxy's own request
        for hop in hops.reversed() {
            // Unreadable: believe nothing past it, and never take it for the proxy (or loopback).
            guard bytes(hop) != nil else { return unknown }
            if !trusted.contains(where: { $0.contains(hop) }) { return hop }
        }
        return hops[0]
    }

    /// What a client is called when a trusted proxy forwards an address that cannot be read.
    static let unknown = "unknown"

    /// The address of a hop as proxies write it: `1.2.3.4`, `1.2.3.4:5555`, `::1`, `[::1]`, `[::1]:5555`.
    static func address(of hop: String) -> String {
        if hop.hasPrefix("["), let close = hop.firstIndex(of: "]") { return String(hop[hop.index(after: hop.startIndex)..<close]) }
        let colons = hop.filter { $0 == ":" }.count
        if colons == 1, let colon = hop.firstIndex(of: ":") { return String(hop[..<colon]) }
        return hop
    }
}

/// Sets `remoteIP` from `X-Forwarded-For` when the peer is a trusted proxy (login throttling
/// and `/metrics` then see people, not the proxy). Nothing else is taken from forwarded
/// headers: URLs and cookie flags come from `--public-url` and `--console-url`.
struct ClientAddressMiddleware: RouterMiddleware {
    let trusted: [TrustedProxy]
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard !trusted.isEmpty else { return try await next(request, context) }
        var context = context
        context.peerIsTrustedProxy = trusted.contains { $0.contains(context.remoteIP) }
        context.remoteIP = TrustedProxy.clientAddress(peer: context.remoteIP, forwardedFor: request.headers[values: .xForwardedFor],
                                                      trusted: trusted)
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let xRealIP = HTTPField.Name("X-Real-IP")!
    static let forwarded = HTTPField.Name("Forwarded")!
}
