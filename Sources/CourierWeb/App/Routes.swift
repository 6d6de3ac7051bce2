import CourierCore
import Foundation
import Hummingbird

/// One URL pattern Courier answers: the router registers it and every link, redirect and form
/// action is built from it, so a renamed route cannot leave a dead link behind.
struct Route: Sendable, Hashable, CustomStringConvertible {
    /// `/apps/:id/packages/:version`; `**` takes the rest of the path.
    let pattern: String
    /// A form this route accepts, declared beside it (`Route("/x", example: ["name": "A"])`): the
    /// route walk posts it for every role that may (StructureTests), so a new page's form needs
    /// no test of its own to be walked. Forms needing fresh values (a new name each time) are
    /// given by the walk instead.
    let example: [String: String]

    init(_ pattern: String, example: [String: String] = [:]) { self.pattern = pattern; self.example = example }

    static func == (a: Route, b: Route) -> Bool { a.pattern == b.pattern }
    func hash(into h: inout Hasher) { h.combine(pattern) }

    /// The path with `values` in place of the pattern's parameters, in order, each percent-encoded
    /// (the catch-all keeps its slashes).
    func path(_ values: String...) -> String { path(values, query: []) }

    /// The same with a query string (empty values left out).
    func path(_ values: [String], query: [(String, String)]) -> String {
        var rest = values[...]
        func encodePath(_ s: String) -> String {
            s.split(separator: "/", omittingEmptySubsequences: false).map { Self.encode(String($0)) }.joined(separator: "/")
        }
        let base = pattern.split(separator: "/", omittingEmptySubsequences: false).map { part -> String in
            if part.hasPrefix(":") { return Self.encode(rest.popFirst() ?? "") }
            if part == "**" { return encodePath(rest.popFirst() ?? "") }
            return String(part)
        }.joined(separator: "/")
        let pairs = query.filter { !$0.1.isEmpty }.map { "\($0.0)=\(Self.encode($0.1))" }
        return pairs.isEmpty ? base : base + "?" + pairs.joined(separator: "&")
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    static func encode(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? "" }

    /// The pattern as Hummingbird reads it (no leading slash needed, same syntax).
    var routerPath: RouterPath { RouterPath(stringLiteral: pattern) }
    var description: String { pattern }
}

extension Route {
    // The console.
    static let home = Route("/")
    static let login = Route("/login")
    static let setup = Route("/setup/:token")
    static let logout = Route("/logout")
    static let apps = Route("/apps")
    static let newApp = Route("/apps/new")
    static let app = Route("/apps/:id")
    static let appName = Route("/apps/:id/name")
    static let newPackage = Route("/apps/:id/packages/new")
    static let packages = Route("/apps/:id/packages")
    static let package = Route("/apps/:id/packages/:version")
    static let packagePreset = Route("/apps/:id/packages/:version/h5_json.json")
    static let packageRevoke = Route("/apps/:id/packages/:version/revoke")
    static let versionDiff = Route("/apps/:id/diff")
    static let settings = Route("/settings")
    static let virtualDomain = Route("/settings/virtual-domain", example: ["virtualDomain": "h5app.example.com", "confirm": "true"])
    static let globalLocation = Route("/settings/global", example: ["globalHost": "mcube.example.com", "appKey": "53E5279071442_test"])
    static let signingKey = Route("/settings/signing-key")
    static let generateKey = Route("/settings/signing-key/generate")
    static let account = Route("/account")
    static let tokens = Route("/tokens")
    static let tokenRevoke = Route("/tokens/:token/revoke")
    static let users = Route("/users")
    static let userRole = Route("/users/:name/role")
    static let userDisable = Route("/users/:name/disable")
    static let userEnable = Route("/users/:name/enable")
    static let userPassword = Route("/users/:name/password")
    static let audit = Route("/audit")
    static let auditCSV = Route("/audit.csv")
    static let whitelists = Route("/whitelists")
    static let whitelist = Route("/whitelists/:whitelist")
    static let whitelistValues = Route("/whitelists/:whitelist/values")
    static let whitelistRemove = Route("/whitelists/:whitelist/remove")
    static let whitelistDelete = Route("/whitelists/:whitelist/delete")
    static let newTask = Route("/apps/:id/packages/:version/tasks/new")
    static let packageTasks = Route("/apps/:id/packages/:version/tasks")
    static let batchRelease = Route("/releases/batch")
    static let newImport = Route("/imports/new")
    static let imports = Route("/imports")
    static let importPage = Route("/imports/:import")
    static let importRow = Route("/imports/:import/rows/:n")
    static let importSubmit = Route("/imports/:import/submit")
    static let task = Route("/tasks/:task")
    static let taskApprove = Route("/tasks/:task/approve")
    static let taskReject = Route("/tasks/:task/reject")
    static let approvals = Route("/approvals")
    static let simulate = Route("/simulate")
    static let approvalSettings = Route("/settings/approval")
    static let updateInterval = Route("/settings/update-interval", example: ["updateReqRate": "1800"])
    static let webhookSettings = Route("/settings/webhook", example: ["webhookUrl": "http://127.0.0.1:9/hook"])
    static let taskOperation = Route("/tasks/:task/:operation")

    // Operations.
    static let healthz = Route("/healthz")
    static let readyz = Route("/readyz")
    static let metrics = Route("/metrics")

    // What clients fetch.
    static let amr = Route("/packages/:id/:file")
    static let fallback = Route("/fallback/:id/:version/**")
    static let clientPreset = Route("/client/v1/preset/:file")
    static let clientUpdate = Route("/client/v1/update")
    static let clientEvents = Route("/client/v1/events")

    // The JSON API.
    static let apiSettings = Route("/api/v1/settings")
    static let apiSigningKey = Route("/api/v1/settings/signing-key")
    static let apiGenerateKey = Route("/api/v1/settings/signing-key/generate")
    static let apiPublicKey = Route("/api/v1/settings/public-key")
    static let apiApps = Route("/api/v1/apps")
    static let apiApp = Route("/api/v1/apps/:id")
    static let apiPackages = Route("/api/v1/apps/:id/packages")
    static let apiWhitelists = Route("/api/v1/whitelists")
    static let apiWhitelist = Route("/api/v1/whitelists/:whitelist")
    static let apiWhitelistValues = Route("/api/v1/whitelists/:whitelist/values")
    static let apiPackageTasks = Route("/api/v1/apps/:id/packages/:version/tasks")
    static let apiPackageDiff = Route("/api/v1/apps/:id/packages/:version/diff")
    static let apiPackageRevoke = Route("/api/v1/apps/:id/packages/:version/revoke")
    static let apiAdoption = Route("/api/v1/apps/:id/adoption")
    static let apiTask = Route("/api/v1/tasks/:task")
    static let apiTaskOperation = Route("/api/v1/tasks/:task/:operation")
    static let apiTaskApprove = Route("/api/v1/tasks/:task/approve")
    static let apiTaskHealth = Route("/api/v1/tasks/:task/health")
    static let apiSimulate = Route("/api/v1/simulate")
    static let apiTaskReject = Route("/api/v1/tasks/:task/reject")
    static let apiAudit = Route("/api/v1/audit")
    static let apiOpenAPI = Route("/api/v1/openapi.json")
    static let apiImports = Route("/api/v1/batch-imports")
    static let apiImport = Route("/api/v1/batch-imports/:import")
    static let apiImportRow = Route("/api/v1/batch-imports/:import/rows/:n")
    static let apiImportSubmit = Route("/api/v1/batch-imports/:import/submit")
}

/// Every route registered, with the permission it needs: what the route-table test walks.
final class RouteTable: @unchecked Sendable {
    struct Entry: Sendable, Equatable {
        enum Surface: Sendable { case console, api, open }
        let method: HTTPRequest.Method
        let route: Route
        let permission: Permission?
        let surface: Surface
    }
    private let lock = NSLock()
    private var list: [Entry] = []
    var entries: [Entry] { lock.withLock { list } }
    /// Records a route (once, however often the router is built from the same services).
    func add(_ e: Entry) { lock.withLock { if !list.contains(e) { list.append(e) } } }
}

/// Registers signed-in routes, each with the permission it needs: checked before the handler
/// runs (role, and scope for tokens) and recorded in the route table.
struct SignedInRoutes {
    let group: RouterGroup<SignedInContext>
    let table: RouteTable
    let surface: RouteTable.Entry.Surface

    func on(_ method: HTTPRequest.Method, _ route: Route, needs permission: Permission,
            _ handler: @escaping @Sendable (Request, SignedInContext) async throws -> Response) {
        table.add(.init(method: method, route: route, permission: permission, surface: surface))
        group.on(route.routerPath, method: method) { request, context in
            try context.acting.require(permission)
            return try await handler(request, context)
        }
    }

    func get(_ route: Route, needs permission: Permission, _ handler: @escaping @Sendable (Request, SignedInContext) async throws -> Response) {
        on(.get, route, needs: permission, handler)
    }
    func post(_ route: Route, needs permission: Permission, _ handler: @escaping @Sendable (Request, SignedInContext) async throws -> Response) {
        on(.post, route, needs: permission, handler)
    }
    func put(_ route: Route, needs permission: Permission, _ handler: @escaping @Sendable (Request, SignedInContext) async throws -> Response) {
        on(.put, route, needs: permission, handler)
    }
    func patch(_ route: Route, needs permission: Permission, _ handler: @escaping @Sendable (Request, SignedInContext) async throws -> Response) {
        on(.patch, route, needs: permission, handler)
    }
    func delete(_ route: Route, needs permission: Permission, _ handler: @escaping @Sendable (Request, SignedInContext) async throws -> Response) {
        on(.delete, route, needs: permission, handler)
    }
}

extension Parameters {
    /// A path parameter as it was meant: Hummingbird hands them over still percent-encoded, so a
    /// user named "dan o" arrives as "dan%20o". Nil when absent or not valid percent-encoding.
    /// Every route reads its parameters through this (a test checks no `parameters.get` is left).
    func decoded(_ name: String) -> String? {
        get(name).flatMap { $0.removingPercentEncoding }
    }

    /// The catch-all tail, decoded segment by segment.
    func decodedCatchAll() -> [String]? {
        var segments: [String] = []
        for s in getCatchAll() {
            guard let d = String(s).removingPercentEncoding else { return nil }
            segments.append(d)
        }
        return segments
    }
}
