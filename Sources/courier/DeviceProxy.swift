import ArgumentParser
import CourierClient
import Foundation
import HTTPTypes
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// `courier device`'s H5 container for a browser (`--proxy-server=http://127.0.0.1:P`): requests
/// under an app's virtual host are answered from the installed package, else from the online
/// copy (fallback); a global package's files from it; anything else gets 502 with a sentence (it
/// is not an open proxy). Every answer says where it came from (`X-Courier-Source`). An app's
/// entry page served from its package counts as loaded (its trial passes).
struct DeviceProxy {
    let device: CourierDevice
    /// Installed files never change under their path (a version's folder is replaced whole, by
    /// the same signed bytes): small ones are kept in memory once read.
    let files = InstalledFiles()
    let port: Int
    let output: Output
    static let maxFallbackBytes = 64 << 20

    init(device: CourierDevice, port: Int, output: Output) throws {
        guard (1...65535).contains(port) else { throw ValidationError("--proxy-port must be from 1 to 65535.") }
        self.device = device
        self.port = port
        self.output = output
    }

    /// Serves until stopped, running `alongside` (the device's checking rounds) meanwhile.
    func run(alongside: @escaping @Sendable () async -> Void) async throws {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in await answer(request) }
        router.on("/", method: .get, use: handler)
        router.on("/**", method: .get, use: handler)
        router.on("/", method: .head, use: handler)
        router.on("/**", method: .head, use: handler)
        var logger = Logger(label: "courier-device")
        logger.logLevel = .warning
        let say = output, port = port
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), onServerRunning: { _ in
            say.say("Proxy on 127.0.0.1:\(port): start a browser with --proxy-server=http://127.0.0.1:\(port) and open an app's virtual host.",
                    ["event": "proxy", "port": port])
        }, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            group.addTask { await alongside() }
            try await group.next()
            group.cancelAll()
        }
    }

    func answer(_ request: Request) async -> Response {
        let host = request.head.authority ?? ""
        guard let url = URL(string: "https://\(host)\(request.uri.path)") else { return refuse("That address cannot be read.") }
        var resolution = device.resolve(url)
        // Opening an app: a package waiting for it (lazy) installs first; opening its entry page
        // (the main URL, or any HTML page when it has none) counts for the trial.
        let vhostApp = device.store.state.apps.first { $0.value.current?.vhost.flatMap { URL(string: $0)?.host?.lowercased() } == url.host?.lowercased() }
        if let (appId, app) = vhostApp, app.pending != nil || Self.isEntry(url.path, app) {
            _ = try? await device.opened(appId)
            resolution = device.resolve(url)
        }
        switch resolution {
        case .package(let path, let type, let appId, let version), .global(let path, let type, let appId, let version):
            guard let body = files.read(path) else { return refuse("\(url.path) could not be read from the device.") }
            let isGlobal = if case .global = resolution { true } else { false }
            if !isGlobal, let app = device.store.state.apps[appId], Self.isEntry(url.path, app) {
                try? device.store.markLoaded(appId, version)
            }
            return Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-store",
                                                   HTTPField.Name("X-Courier-Source")!: "\(isGlobal ? "global" : "package") \(version)"],
                            body: .init(byteBuffer: body))
        case .fallback(let online):
            do {
                // Bounded as it arrives, redirects not followed: the online copy comes from the package's own server.
                let (status, type, data) = try await URLSessionTransport().get(online, limit: Self.maxFallbackBytes)
                return Response(status: .init(code: (100...599).contains(status) ? status : 502),
                                headers: [.contentType: type ?? "application/octet-stream",
                                          .cacheControl: "no-store", HTTPField.Name("X-Courier-Source")!: "fallback"],
                                body: .init(byteBuffer: ByteBuffer(data: data)))
            } catch {
                return refuse("The online copy of \(url.path) could not be fetched: \(error.localizedDescription)")
            }
        case .passThrough:
            if vhostApp != nil { return refuse("\(url.path) is not a path a package can hold, and there is no online copy to fetch.") }
            return refuse("\(host) is not an app's virtual host nor the global resource host: this proxy serves Courier's packages only.")
        }
    }

    static func isEntry(_ path: String, _ app: DeviceState.App) -> Bool {
        app.current?.mainUrl.map { $0 == path } ?? (path.hasSuffix(".html") || path.hasSuffix(".htm"))
    }

    func refuse(_ sentence: String) -> Response {
        Response(status: .badGateway, headers: [.contentType: "text/plain; charset=utf-8", HTTPField.Name("X-Courier-Source")!: "none"],
                 body: .init(byteBuffer: ByteBuffer(string: sentence + "\n")))
    }
}

/// A bounded cache of installed files: at most 64 MB, files up to 1 MB; when full it starts over.
final class InstalledFiles: Sendable {
    private let cache = NIOLockedValueBox<(files: [String: ByteBuffer], bytes: Int)>(([:], 0))
    static let maxBytes = 64 << 20
    static let maxFile = 1 << 20

    func read(_ path: String) -> ByteBuffer? {
        if let hit = cache.withLockedValue({ $0.files[path] }) { return hit }
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let buffer = ByteBuffer(data: data)
        guard data.count <= Self.maxFile else { return buffer }
        cache.withLockedValue { c in
            if c.bytes + data.count > Self.maxBytes { c = ([:], 0) }
            c.files[path] = buffer
            c.bytes += data.count
        }
        return buffer
    }
}
