import CourierDomain
import CourierArchive
import CourierCore
import CourierPostgres
import CourierSQLite
import CourierStore
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOPosix
import Logging
import Mustache
import ServiceLifecycle

public struct CourierConfiguration: Sendable {
    public var dataDirectory = "./data"
    public var host = "127.0.0.1"
    public var port = 8080
    /// This server among the nodes: the same after a restart (the housekeeping lease's holder,
    /// the owner of what it adds to a shared blob folder), and never another node's, even with
    /// the same host name, folder and port (containers): a random id kept in its own data folder
    /// (`node-id`, made on first start). Each node needs a data folder of its own.
    public func nodeName() throws -> String {
        try PrivateDirectory.prepare(dataDirectory)
        let path = dataDirectory + "/node-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8),
           let id = UUID(uuidString: text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return "\(ProcessInfo.processInfo.hostName):\(port) \(id.uuidString)"
        }
        let id = UUID().uuidString
        guard FileManager.default.createFile(atPath: path, contents: Data((id + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CourierStartupError("Cannot write \(path): this node's name among the nodes is kept there.")
        }
        return "\(ProcessInfo.processInfo.hostName):\(port) \(id)"
    }
    /// Base of the URLs clients are given (`package_url`, `fallback_base_url`).
    public var publicURL = "http://127.0.0.1:8080"
    /// The console's own address; nil means the same as `publicURL` (a shared origin).
    public var consoleURL: String?
    /// Folder holding `Templates/` and `Public/`.
    public var resourcesDirectory = FileManager.default.currentDirectoryPath
    public var maxUploadBytes = 300 * 1024 * 1024
    public var secureCookies = false
    public var logLevel: Logger.Level = .info
    /// A connection that sends no request part for this long is closed (a half-sent header, a
    /// stalled body, an idle keep-alive), so slow clients cannot hold every file descriptor.
    public var idleTimeoutSeconds = 30
    /// Event-loop threads that read and write connections (and answer the client update API);
    /// nil: one per core.
    public var threads: Int?
    /// Log lines as JSON objects (`--log-format json`); what Courier says at start goes there too.
    public var logJSON = false
    /// Lets `/metrics` be read from other addresses than loopback (`Authorization: Bearer …`).
    public var metricsToken: String?
    /// Reverse proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`).
    public var trustedProxies: [TrustedProxy] = []
    /// How many earlier versions each offered version gets patches from (`--patch-bases`, SPEC §3).
    public var patchBases = PatchRules.defaultBases
    /// Test hook: a pause inside each patch build (`COURIER_TEST_PATCH_PAUSE_MS`).
    public var testPatchPause: Duration?
    /// Courier's state on PostgreSQL (`--database postgres://…`); nil: SQLite in `dataDirectory`.
    public var database: String?
    /// The blob folder every node shares (`--blob-dir`), with `database`; nil: `dataDirectory`.
    public var blobDirectory: String?

    public init() {}

    static func hostname(of url: String) -> String? { URL(string: url)?.host?.lowercased() }

    /// `scheme://host[:port]` of the console, as configured (never from a request's Host).
    var consoleOrigin: String {
        guard let u = URL(string: consoleURL ?? publicURL), let scheme = u.scheme, let host = u.host else { return "'self'" }
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(h)" + (u.port.map { ":\($0)" } ?? "")
    }

    /// The console and package content are kept apart by host when the console URL names a
    /// different host than the public URL; otherwise they share an origin and package content
    /// is sandboxed (SPEC §4).
    public var separateContentHost: Bool {
        guard let consoleURL, let c = Self.hostname(of: consoleURL), let p = Self.hostname(of: publicURL) else { return false }
        return c != p
    }

    /// Over https the cookies are `__Host-` cookies: bound to the console's own host, so a page
    /// on a sibling host (`content.corp.example` beside `courier.corp.example`) cannot plant one.
    var sessionCookie: String { (secureCookies ? "__Host-" : "") + "courier_session" }
    /// The sign-in form's token (no session exists yet): a cookie and the same value in the form.
    var loginCookie: String { (secureCookies ? "__Host-" : "") + "courier_login" }

    /// True when the separate hosts look like one site (same last two labels): cookies set by
    /// package pages could then reach the console unless it runs over https.
    public var contentHostIsSameSite: Bool {
        guard separateContentHost, let c = consoleURL.flatMap(Self.hostname), let p = Self.hostname(of: publicURL) else { return false }
        func site(_ h: String) -> String { h.split(separator: ".").suffix(2).joined(separator: ".") }
        return site(c) == site(p) && c.contains(".")
    }

    /// The host console and API requests must name, when the hosts are separate.
    var consoleHost: String? { separateContentHost ? consoleURL.flatMap(Self.hostname) : nil }
    /// The host package content requests must name, when the hosts are separate.
    var contentHost: String? { separateContentHost ? Self.hostname(of: publicURL) : nil }
}

/// Everything a controller may need, built once at start-up.
public struct Services: Sendable {
    public let config: CourierConfiguration
    public let store: Store
    public let views: Views
    public let actions: Actions
    public let signer: SigningKeyCache
    public let throttle: LoginThrottle
    public let passwords: PasswordHasher
    public let delivery: Delivery
    /// Posts release events to the webhook (a service of the running server).
    let webhook: WebhookSender
    /// The one-time first-run setup address, while no user exists.
    public let setup: FirstRunSetup
    /// Builds patches in the background (a service of the running server; tests call it).
    public let patches: PatchService
    /// This server among the nodes (`CourierConfiguration.nodeName`): its leases' holder.
    public let node: String
    /// Every route with the permission it needs, filled in by `buildRouter`.
    let routes = RouteTable()

    /// Where a person follows a link to package content: on the console's origin a path, with a
    /// separate content host its full URL there.
    func contentLink(_ path: String) -> String { config.separateContentHost ? config.publicURL + path : path }
}

/// Where Courier's state lives: the embedded SQLite database in a data folder, or PostgreSQL
/// with a blob folder several nodes share.
public struct StoreLocation: Sendable {
    public var dataDirectory: String
    public var database: String?
    public var blobDirectory: String?
    /// The server's name among the nodes (`CourierConfiguration.nodeName`), for what it adds to
    /// the shared blob folder; nil for a command.
    public var node: String?
    public init(dataDirectory: String, database: String? = nil, blobDirectory: String? = nil, node: String? = nil) {
        self.dataDirectory = dataDirectory; self.database = database; self.blobDirectory = blobDirectory; self.node = node
    }
    /// Several nodes may share it: the start-up sweep spares what another node may be writing.
    public var shared: Bool { database != nil }
    /// For `/readyz` and the log: which database, never a password.
    public var description: String {
        guard let database else { return "sqlite:" + dataDirectory + "/courier.sqlite" }
        return (try? PostgresURL(database).redacted) ?? "postgres (an unreadable URL)"
    }
}

/// The one place a store is chosen (the command line's commands and the server).
public func openStore(_ location: StoreLocation, logger: Logger? = nil) async throws -> any Store {
    guard let database = location.database else { return try SQLiteStore(dataDirectory: location.dataDirectory, logger: logger) }
    return try await PostgresStore(url: database, blobDirectory: location.blobDirectory ?? location.dataDirectory, node: location.node,
                                   logger: logger ?? Logger(label: "courier.postgres"))
}

public func buildServices(_ config: CourierConfiguration, logger: Logger) async throws -> Services {
    let node = try config.nodeName()
    let location = StoreLocation(dataDirectory: config.dataDirectory, database: config.database, blobDirectory: config.blobDirectory,
                                 node: node)
    let store = try await openStore(location, logger: logger)
    // On a shared blob folder another node may be writing a file now: only what has been left
    // alone for an hour is swept, and imports being submitted are left to their node.
    let swept = try await store.sweep(grace: location.shared ? 3600 : 0)
    let expiredImports = try await store.sweepImports(startingUp: !location.shared)
    if expiredImports > 0 { logger.notice("Removed unsubmitted batch imports past their 24 hours", metadata: ["imports": "\(expiredImports)"]) }
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
    let passwords = PasswordHasher()
    let metrics = CourierMetrics()
    let delivery = try await Delivery(store: store, publicURL: config.publicURL, metrics: metrics, logger: logger)
    let webhook = WebhookSender(store: store, logger: logger)
    return Services(config: config, store: store, views: Views(library: library),
                    actions: Actions(store: store, signer: signer, passwords: passwords, metrics: metrics, events: webhook),
                    signer: signer, throttle: LoginThrottle(ledger: store.signInLedger), passwords: passwords,
                    delivery: delivery, webhook: webhook,
                    setup: FirstRunSetup(open: try await store.userCount() == 0),
                    patches: PatchService(store: store, delivery: delivery, bases: config.patchBases, logger: logger,
                                          pause: config.testPatchPause, node: node),
                    node: node)
}

/// A line for the operator: printed as it is, or a log line when the log is JSON; flushed at
/// once, so it is seen even when the output goes to a file.
public func announce(_ message: String, _ config: CourierConfiguration, _ logger: Logger) {
    if config.logJSON { logger.notice("\(message)") } else { print(message) }
    fflush(nil)
}

public struct CourierStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public func buildRouter(_ services: Services) -> Router<AppContext> {
    let router = Router(context: AppContext.self)
    let config = services.config
    // Outermost, so every answer gets it: 404 pages, /static files, JSON, errors.
    router.add(middleware: EveryAnswerMiddleware())
    router.add(middleware: ClientAddressMiddleware(trusted: config.trustedProxies))
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: RequestMetricsMiddleware(metrics: services.delivery.metrics))
    // Anything no route or static file matched, and errors of the public file routes, as an HTML
    // page (the API and console groups answer their own errors first). It must wrap
    // FileMiddleware, which serves a file only when the routes answer 404.
    router.add(middleware: HTMLErrorMiddleware(views: services.views))
    router.add(middleware: GlobalResourceMiddleware(services: services))
    let publicDir = URL(fileURLWithPath: config.resourcesDirectory).appendingPathComponent("Public").path
    router.add(middleware: FileMiddleware(publicDir, urlBasePath: "/static", cacheControl: .init([(MediaType(type: .any), [.maxAge(300)])])))

    // Clients and public files: no login. With a separate content host they answer only there.
    DeliveryController(services: services)
        .addRoutes(to: router.group().add(middleware: HostGate(host: config.contentHost, serves: "package content")), table: services.routes)
    ClientController(services: services)
        .addRoutes(to: router.group().add(middleware: HostGate(host: config.contentHost, serves: "the client API")), table: services.routes)

    // The JSON API: bearer tokens, JSON errors. (A group's `add(middleware:)` changes that
    // group, so each gets its own.)
    func apiGroup() -> RouterGroup<AppContext> {
        router.group().add(middleware: APIErrorMiddleware()).add(middleware: HostGate(host: config.consoleHost, serves: "the JSON API"))
    }
    HealthController(services: services).addRoutes(to: router.group(), table: services.routes)
    services.routes.add(.init(method: .get, route: .apiPublicKey, permission: nil, surface: .open))
    apiGroup().get(Route.apiPublicKey.routerPath) { _, _ in try await publicKeyResponse(services) }
    services.routes.add(.init(method: .get, route: .apiOpenAPI, permission: nil, surface: .open))
    apiGroup().get(Route.apiOpenAPI.routerPath) { _, _ in
        let permissions = Dictionary(services.routes.entries.compactMap { e in e.permission.map { ("\(e.method) \(e.route.pattern)", $0) } },
                                     uniquingKeysWith: { a, _ in a })
        let document = OpenAPI.document(serverURL: config.consoleURL ?? config.publicURL, permissions: permissions)
        let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
    let api = apiGroup().add(middleware: BearerAuthMiddleware(store: services.store)).group(context: SignedInContext.self)
    APIController(services: services).addRoutes(to: SignedInRoutes(group: api, table: services.routes, surface: .api))
    SimulatorController(services: services).addAPIRoutes(to: SignedInRoutes(group: api, table: services.routes, surface: .api))

    // The console: HTML error pages, sessions, CSRF on every state change.
    let pages = router.group().add(middleware: SecurityHeadersMiddleware(consoleOrigin: config.consoleOrigin)).add(middleware: HTMLErrorMiddleware(views: services.views))
        .add(middleware: HostGate(host: config.consoleHost, serves: "the console"))
    AuthController(services: services).addRoutes(to: pages, table: services.routes)
    SetupController(services: services).addRoutes(to: pages, table: services.routes)
    let console = SignedInRoutes(
        group: pages.add(middleware: SessionMiddleware(store: services.store, cookieName: config.sessionCookie))
            .add(middleware: CSRFMiddleware()).group(context: SignedInContext.self),
        table: services.routes, surface: .console)
    AuthController(services: services).addSignedInRoutes(to: console)
    console.get(.home, needs: .read) { _, _ in Response.redirect(to: Route.apps.path()) }
    SettingsController(services: services).addRoutes(to: console)
    AppsController(services: services).addRoutes(to: console)
    PackagesController(services: services).addRoutes(to: console)
    WhitelistsController(services: services).addRoutes(to: console)
    TasksController(services: services).addRoutes(to: console)
    SimulatorController(services: services).addRoutes(to: console)
    ImportsController(services: services).addRoutes(to: console)
    AuditController(services: services).addRoutes(to: console)
    UsersController(services: services).addRoutes(to: console)
    AccountController(services: services).addRoutes(to: console)
    TokensController(services: services).addRoutes(to: console)
    return router
}

public func buildApplication(_ config: CourierConfiguration) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "courier")
    logger.logLevel = config.logLevel
    let services = try await buildServices(config, logger: logger)
    if let path = services.setup.path {
        announce("No user exists yet. Create the first administrator at \(config.consoleURL ?? config.publicURL)\(path)"
                 + " (this address works once; or run: courier user add NAME --role admin).", config, logger)
    }
    return Application(router: buildRouter(services),
                       server: httpServer(services),
                       // No Server header: neither path names the software (the event-loop path writes the
                       // router's headers, FastPathTests compares them).
                       configuration: .init(address: .hostname(config.host, port: config.port)),
                       services: [Housekeeping(actions: services.actions, logger: logger, tally: services.delivery.tally,
                                               node: services.node),
                                  services.patches, services.webhook] + followers(services),
                       eventLoopGroupProvider: config.threads.map { .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0)) }
                           ?? .singleton,
                       logger: logger)
}

/// On a database several nodes share, the services that follow the others' changes.
func followers(_ services: Services) -> [any Service] {
    guard let shared = services.store as? PostgresStore else { return [] }
    return [CatalogueFollower(store: shared, delivery: services.delivery)]
}

/// Other nodes' changes reach this node's update answers within a second (SPEC §9). A rebuild
/// that failed (the database out of reach a moment) is tried again every two seconds: until
/// one succeeds the node offers nothing, and no other change may come to trigger it.
struct CatalogueFollower: Service {
    let store: PostgresStore
    let delivery: Delivery

    func run() async throws {
        try await cancelWhenGracefulShutdown { [store, delivery] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await store.followCatalogue() }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(2))
                        if delivery.rebuildOutcome?.failure != nil { try? await delivery.rebuild() }
                    }
                }
            }
        }
    }
}

/// HTTP/1.1 with the idle time-out, and the client update API's event-loop path in each connection.
func httpServer(_ services: Services) -> HTTPServerBuilder {
    // The idle time-out is kept by ClientFastPath, which sees every request (Hummingbird's
    // handler would not see those answered on the event loop).
    let configuration = HTTP1Channel.Configuration(idleTimeout: nil)
    let idle = TimeAmount.seconds(Int64(services.config.idleTimeoutSeconds))
    let delivery = services.delivery
    let contentHost = services.config.contentHost
    return HTTPServerBuilder { responder in
        CourierHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: configuration),
                            fastPath: { ClientFastPath(delivery: delivery, contentHost: contentHost, idleTimeout: idle) })
    }
}

func publicKeyResponse(_ services: Services) async throws -> Response {
    // The parsed key is cached: RSA parsing is not repeated per download.
    guard let key = try? services.signer.current(try await services.store.settings()) else {
        throw NotFound("No signing key is configured yet.")
    }
    return Response(status: .ok, headers: [.contentType: "application/x-pem-file",
                                           .contentDisposition: "attachment; filename=\"courier-public-key.pem\""],
                    body: .init(byteBuffer: ByteBuffer(string: key.publicKeyPEM)))
}

/// Every ten seconds: finishes time-window tasks at their end time and takes the ramps' due
/// steps and health gates. Every minute: writes this node's counts of update checks, gives the
/// allocator's free pages back and forgets past hours' event reporters. Every ten minutes:
/// removes batch imports left unsubmitted past their 24 hours; every hour, old health counters.
/// The shared work runs under the `housekeeping` lease, so that of several nodes on one
/// database one does it at a time; the counts and the allocator's trim are each node's own.
struct Housekeeping: Service {
    let actions: Actions
    let logger: Logger
    /// This node's counts of update checks, written once a minute (every node writes its own).
    let tally: Tally
    /// This node, as the lease's holder: the same after a restart, so that a node that crashed
    /// holding the lease takes it back at once rather than after it expires.
    let node: String

    func run() async throws {
        var failure: Error?
        do { try await rounds() } catch is CancellationError {} catch { failure = error }
        // Shutting down: this node's last minute of checks is written and the lease let go before
        // the service ends (so before the database closes), in a task of its own that the
        // shutdown's cancellation does not stop.
        await Task { [actions, node, tally] in
            try? await tally.flush(to: actions.store)
            try? await actions.store.releaseLease("housekeeping", holder: node)
        }.value
        if let failure { throw failure }
    }

    /// Every ten seconds until the server shuts down; stops at once then (a sleeping loop would
    /// hold the shutdown up).
    private func rounds() async throws {
        try await cancelWhenGracefulShutdown { [actions, logger, node, tally] in
            var round = 0
            while !Task.isCancelled {
                round += 1
                if round % 6 == 0 { Allocator.trim() }
                // This node's marks on blobs it added a day ago and more: committed or failed by now.
                if round % 60 == 0 { actions.store.blobs.forgetPending(untouchedSince: Date().addingTimeInterval(-86_400)) }
                if round % 6 == 0 {
                    do { try await tally.flush(to: actions.store) } catch {
                        logger.error("Could not write the update checks' counts", metadata: ["error": "\(error)"])
                    }
                }
                let holding: Bool
                do { holding = try await actions.store.acquireLease("housekeeping", holder: node, for: 60) } catch {
                    logger.error("Could not take the housekeeping lease", metadata: ["error": "\(error)"])
                    holding = false
                }
                guard holding else {
                    try? await Task.sleep(for: .seconds(10))
                    continue
                }
                do {
                    let n = try await actions.finishEndedWindows()
                    if n > 0 { logger.info("Finished time-window tasks at their end time", metadata: ["tasks": "\(n)"]) }
                } catch {
                    logger.error("Could not finish ended time windows", metadata: ["error": "\(error)"])
                }
                do {
                    for line in try await actions.runRamps() { logger.info("Ramp", metadata: ["step": "\(line)"]) }
                } catch let e as Actions.RampFailures {
                    for line in e.done { logger.info("Ramp", metadata: ["step": "\(line)"]) }
                    logger.error("Could not take some ramps' steps", metadata: ["error": "\(e)"])
                } catch {
                    logger.error("Could not run the ramps' steps and health gates", metadata: ["error": "\(error)"])
                }
                if round % 360 == 1 {
                    do { _ = try await actions.store.pruneHealth(now: Date()) } catch {
                        logger.error("Could not prune old health counters", metadata: ["error": "\(error)"])
                    }
                }
                if round % 6 == 0 {
                    do { _ = try await actions.store.pruneEventsSeen() } catch {   // which devices reported in past hours
                        logger.error("Could not forget which devices reported in past hours", metadata: ["error": "\(error)"])
                    }
                }
                if round % 60 == 0 {   // every ten minutes: imports past their 24 hours
                    do {
                        let n = try await actions.store.sweepImports(startingUp: false)
                        if n > 0 { logger.info("Removed unsubmitted batch imports past their 24 hours", metadata: ["imports": "\(n)"]) }
                    } catch {
                        logger.error("Could not remove expired batch imports", metadata: ["error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: .seconds(10))
            }
        }
    }
}
