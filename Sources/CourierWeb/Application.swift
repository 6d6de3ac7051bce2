import CourierArchive
import CourierStore
import Foundation
import Hummingbird
import Logging
import Mustache

public struct CourierConfiguration: Sendable {
    public var dataDirectory = "./data"
    public var host = "127.0.0.1"
    public var port = 8080
    /// Base of the URLs clients are given (`package_url`, `fallback_base_url`).
    public var publicURL = "http://127.0.0.1:8080"
    /// Folder holding `Templates/` and `Public/`.
    public var resourcesDirectory = FileManager.default.currentDirectoryPath
    public var maxUploadBytes = 300 * 1024 * 1024
    public var secureCookies = false
    public var logLevel: Logger.Level = .info

    public init() {}
}

/// Everything a controller may need, built once at start-up.
public struct Services: Sendable {
    public let config: CourierConfiguration
    public let store: Store
    public let views: Views
    public let ingest: PackageIngest
    public let signer: SigningKeyCache
    public let throttle: LoginThrottle
}

public func buildServices(_ config: CourierConfiguration, logger: Logger) async throws -> Services {
    let store = try Store(dataDirectory: config.dataDirectory)
    let swept = try store.sweep()
    if swept.tempFiles + swept.orphanBlobs > 0 {
        logger.notice("Cleaned up after an interrupted upload", metadata: [
            "tempFiles": "\(swept.tempFiles)", "orphanBlobs": "\(swept.orphanBlobs)"])
    }
    let templates = URL(fileURLWithPath: config.resourcesDirectory).appendingPathComponent("Templates").path
    guard FileManager.default.fileExists(atPath: templates + "/layout.mustache") else {
        throw CourierStartupError("Templates not found in \(templates); run from the repository or set COURIER_RESOURCES.")
    }
    let library = try await MustacheLibrary(directory: templates)
    let signer = SigningKeyCache()
    return Services(config: config, store: store, views: Views(library: library), ingest: PackageIngest(store: store, signer: signer),
                    signer: signer, throttle: LoginThrottle())
}

public struct CourierStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public func buildRouter(_ services: Services) -> Router<AppContext> {
    let router = Router(context: AppContext.self)
    // Anything no route or static file matched, and errors of the public file routes, as an HTML
    // page (the API and console groups answer their own errors first). It must wrap
    // FileMiddleware, which serves a file only when the routes answer 404.
    router.add(middleware: HTMLErrorMiddleware(views: services.views))
    let publicDir = URL(fileURLWithPath: services.config.resourcesDirectory).appendingPathComponent("Public").path
    router.add(middleware: FileMiddleware(publicDir, urlBasePath: "/static", cacheControl: .init([(MediaType(type: .any), [.maxAge(300)])])))

    // Clients and public files: no login.
    DeliveryController(services: services).addRoutes(to: router)

    // The JSON API: bearer tokens, JSON errors.
    let api = router.group("api/v1").add(middleware: APIErrorMiddleware()).add(middleware: BearerAuthMiddleware(store: services.store))
    APIController(services: services).addRoutes(to: api)
    router.group("api/v1").add(middleware: APIErrorMiddleware()).get("settings/public-key") { _, _ in
        try publicKeyResponse(services.store)
    }

    // The console: HTML error pages, sessions, CSRF on every state change.
    let pages = router.group().add(middleware: SecurityHeadersMiddleware()).add(middleware: HTMLErrorMiddleware(views: services.views))
    AuthController(services: services).addRoutes(to: pages)
    let console = pages.add(middleware: SessionMiddleware(store: services.store))
        .add(middleware: CSRFMiddleware())
    console.get("/") { _, _ in Response.redirect(to: "/apps") }
    SettingsController(services: services).addRoutes(to: console)
    AppsController(services: services).addRoutes(to: console)
    PackagesController(services: services).addRoutes(to: console)
    return router
}

public func buildApplication(_ config: CourierConfiguration) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "courier")
    logger.logLevel = config.logLevel
    let services = try await buildServices(config, logger: logger)
    return Application(router: buildRouter(services),
                       configuration: .init(address: .hostname(config.host, port: config.port), serverName: "Courier"),
                       logger: logger)
}

func publicKeyResponse(_ store: Store) throws -> Response {
    let s = try store.settings()
    guard let pem = s.signingKeyPEM, let key = try? SigningKey(pem: pem) else {
        throw HTTPError(.notFound, message: "No signing key is configured yet.")
    }
    return Response(status: .ok, headers: [.contentType: "application/x-pem-file",
                                           .contentDisposition: "attachment; filename=\"courier-public-key.pem\""],
                    body: .init(byteBuffer: ByteBuffer(string: key.publicKeyPEM)))
}
