import CourierDomain
import CourierArchive
import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// `Authorization: Bearer <token>` for the JSON API; cookies are not accepted there.
struct BearerAuthMiddleware: RouterMiddleware {
    let store: Store
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              let (token, user) = try await store.token(secret: String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"],
                            message: "Send an API token: Authorization: Bearer <token> (create one on the API tokens page or with `courier token create`).")
        }
        let now = Date()
        if let why = token.refusal(now: now) ?? (user.disabled ? "The user of this API token is disabled." : nil) {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: #"Bearer error="invalid_token""#], message: why)
        }
        if let id = token.id, token.lastUsedAt.map({ now.timeIntervalSince($0) >= 60 }) ?? true {
            try? await store.touchToken(id, at: now)   // a busy database must not fail the request
        }
        var context = context
        context.user = user
        context.token = token
        return try await next(request, context)
    }
}

/// API errors as `{"error":{"message","field"}}`.
struct APIErrorMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let shown = PresentedError.of(error, request, context)
            var response = Self.error(shown.status, shown.fields.first?.message ?? shown.message,
                                      field: shown.fields.first?.field, all: shown.fields)
            for h in shown.headers { response.headers.append(h) }
            return response
        }
    }

    static func error(_ status: HTTPResponse.Status, _ message: String, field: String?, all: [FieldError] = []) -> Response {
        var body: [String: Any] = ["message": message]
        if let field, !field.isEmpty { body["field"] = field }
        if all.count > 1 { body["errors"] = all.map { ["field": $0.field, "message": $0.message] } }
        let data = (try? JSONSerialization.data(withJSONObject: ["error": body], options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

struct SettingsJSON: Codable {
    var virtualDomain: String?
    var globalHost: String?
    var appKey: String?
    var signingKeyFingerprint: String?
    var officialNeedsApproval: Bool?
    var grayNeedsApproval: Bool?
    var updateReqRate: Int?
    /// The webhook's address (SPEC §5); `""` removes it.
    var webhookUrl: String?
    /// Answered once, by the PUT that set the address.
    var webhookSecret: String?
}

struct AppJSON: Encodable {
    let id: String
    let name: String
    /// Always sent: `null` until the first package fixes it (SPEC §8).
    let type: String?
    let packages: [PackageJSON]?

    enum CodingKeys: String, CodingKey { case id, name, type, packages }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(type, forKey: .type)   // encode, not encodeIfPresent: the key is there, null
        try c.encodeIfPresent(packages, forKey: .packages)
    }
}

/// A package in the API's answers: its facts, then every setting of `PackageField.all` by its key
/// (a setting not set is null).
struct PackageJSON: Encodable {
    let appId: String
    let status: String
    let size: Int64
    let sha256: String
    let md5: String
    let files: Int
    let amrUrl: String
    let fallbackBaseUrl: String
    let createdAt: Date
    let settings: [String: String]
    /// Set when the version was revoked (SPEC §5).
    var revocation: Revocation?

    init(_ p: PackageRecord, publicURL: String, revocation: Revocation? = nil) {
        self.revocation = revocation
        appId = p.appId; status = p.status.rawValue
        size = p.size; sha256 = p.blob; md5 = p.md5; files = p.fileCount
        amrUrl = publicURL + Paths.amr(p)
        fallbackBaseUrl = publicURL + Paths.fallbackBase(p)
        createdAt = p.createdAt
        settings = p.settingValues
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        try c.encode(appId, forKey: JSONKey("appId")); try c.encode(status, forKey: JSONKey("status")); try c.encode(size, forKey: JSONKey("size"))
        try c.encode(sha256, forKey: JSONKey("sha256")); try c.encode(md5, forKey: JSONKey("md5")); try c.encode(files, forKey: JSONKey("files"))
        try c.encode(amrUrl, forKey: JSONKey("amrUrl")); try c.encode(fallbackBaseUrl, forKey: JSONKey("fallbackBaseUrl"))
        try c.encode(createdAt, forKey: JSONKey("createdAt"))
        try c.encode(revocation != nil, forKey: JSONKey("revoked"))
        if let r = revocation {
            try c.encode(r.reason, forKey: JSONKey("revokedReason")); try c.encode(r.revokedBy, forKey: JSONKey("revokedBy"))
            try c.encode(r.revokedAt, forKey: JSONKey("revokedAt"))
        }
        for f in PackageField.all where !f.isFlag {
            let value = settings[f.key] ?? f.defaultValue
            if f.optional && value.isEmpty { try c.encodeNil(forKey: JSONKey(f.key)) } else { try c.encode(value, forKey: JSONKey(f.key)) }
        }
    }
}

/// The console's JSON twin (SPEC §8): the same actions, answers in JSON.
struct APIController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.apiSettings, needs: .read) { _, context in
            var answer = settingsJSON(try await services.store.settings())
            // A hook's address often carries its receiver's token: only those who may set it see it.
            if context.acting.may(.editSettings) { answer.webhookUrl = try await services.store.webhook()?.url }
            return try json(answer)
        }
        routes.put(.apiSettings, needs: .editSettings) { request, context in
            let body = try await decode(SettingsJSON.self, request)
            if let domain = body.virtualDomain { _ = try await services.actions.setVirtualDomain(by: context.acting, domain, confirmed: true) }
            if body.globalHost != nil || body.appKey != nil {
                _ = try await services.actions.setGlobalLocation(by: context.acting, host: body.globalHost ?? "", appKey: body.appKey ?? "")
            }
            if body.officialNeedsApproval != nil || body.grayNeedsApproval != nil {
                let s = try await services.store.settings()
                _ = try await services.actions.setApprovalRules(by: context.acting, official: body.officialNeedsApproval ?? s.officialNeedsApproval,
                                                                gray: body.grayNeedsApproval ?? s.grayNeedsApproval)
            }
            if let rate = body.updateReqRate { _ = try await services.actions.setUpdateReqRate(by: context.acting, String(rate)) }
            var secret: String?
            if let url = body.webhookUrl { secret = try await services.actions.setWebhook(by: context.acting, url: url)?.secret }
            var answer = settingsJSON(try await services.store.settings())
            answer.webhookUrl = try await services.store.webhook()?.url
            answer.webhookSecret = secret
            return try json(answer)
        }
        routes.put(.apiSigningKey, needs: .editSigningKey) { request, context in
            let pem = String(buffer: try await request.body.collect(upTo: 64 * 1024))
            let (s, count) = try await services.actions.installSigningKey(by: context.acting, try await Actions.makeKey { try SigningKey(pem: pem) })
            return try json(["fingerprint": s.signingKeyFingerprint ?? "", "resignedPackages": String(count)])
        }
        routes.post(.apiGenerateKey, needs: .editSigningKey) { _, context in
            let key = try await Actions.makeKey { try SigningKey.generate() }
            let (s, count) = try await services.actions.installSigningKey(by: context.acting, key)
            return try json(["fingerprint": s.signingKeyFingerprint ?? "", "publicKey": key.publicKeyPEM,
                             "resignedPackages": String(count)], status: .created)
        }
        routes.get(.apiApps, needs: .read) { request, _ in
            let page = try await services.store.apps(search: request.queryFields["q"],
                                               page: request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1, perPage: 100)
            struct List: Encodable { let apps: [AppJSON]; let total: Int; let page: Int; let pageCount: Int }
            return try json(List(apps: page.items.map { AppJSON(id: $0.id, name: $0.name, type: $0.type?.rawValue, packages: nil) },
                                 total: page.total, page: page.page, pageCount: page.pageCount))
        }
        routes.post(.apiApps, needs: .editApps) { request, context in
            struct Body: Decodable { let id: String?; let name: String? }
            let body = try await decode(Body.self, request)
            let app = try await services.actions.createApp(by: context.acting, id: body.id ?? "", name: body.name ?? "")
            return try json(AppJSON(id: app.id, name: app.name, type: nil, packages: []), status: .created)
        }
        routes.get(.apiApp, needs: .read) { _, context in
            let app = try await services.app(context)
            let revoked = try await services.store.revocations()
            let packages = try await services.store.packages(of: app.id).map {
                PackageJSON($0, publicURL: services.config.publicURL, revocation: $0.id.flatMap { revoked[$0] })
            }
            return try json(AppJSON(id: app.id, name: app.name, type: app.type?.rawValue, packages: packages))
        }
        routes.post(.apiPackageRevoke, needs: .editReleases) { request, context in
            let app = try await services.app(context)
            struct Body: Decodable { let reason: String? }
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            let body = buffer.readableBytes == 0 ? Body(reason: nil) : try JSONDecoder().decode(Body.self, from: Data(buffer: buffer))
            let r = try await services.actions.revoke(by: context.acting, appId: app.id, version: context.parameters.decoded("version") ?? "",
                                                      reason: body.reason ?? "")
            guard let p = try await services.store.package(app.id, r.version) else { throw NotFound.package(app.id, r.version) }
            return try json(PackageJSON(p, publicURL: services.config.publicURL, revocation: r))
        }
        routes.get(.apiAdoption, needs: .read) { _, context in
            let app = try await services.app(context)
            let adoption = try await Adoption(app: app.id, store: services.store)
            struct Answer: Encodable { let versions: [Adoption.Row]; let since: Date; let devices: Int; let standardError: Double }
            return try json(Answer(versions: adoption.versions, since: adoption.since, devices: adoption.total, standardError: HyperLogLog.standardError))
        }
        routes.get(.apiPackageDiff, needs: .read) { request, context in
            let app = try await services.app(context)
            let version = context.parameters.decoded("version") ?? ""
            guard let to = try await services.store.package(app.id, version) else { throw NotFound.package(app.id, version) }
            let fromVersion = request.uri.queryParameters["from"].map(String.init) ?? ""
            guard !fromVersion.isEmpty else { throw FieldError("from", "Give the other version as ?from=, like ?from=1.0.0.1.") }
            guard let from = try await services.store.package(app.id, fromVersion) else {
                throw FieldError("from", "This app has no version \(fromVersion.prefix(20)).")
            }
            struct Patch: Encodable { let from: String; let size: Int64 }
            struct Answer: Encodable {
                let added: [PackageDiff.File]
                let removed: [PackageDiff.File]
                let changed: [PackageDiff.Changed]
                let patches: [Patch]
            }
            let diff = try await services.store.diff(from: from.id ?? 0, to: to.id ?? 0)
            let patches = try await services.store.patches(of: app.id).filter { $0.version == to.version && $0.offered(fullSize: to.size) }
                .sorted { $0.base < $1.base }.map { Patch(from: $0.base, size: $0.size) }
            return try json(Answer(added: diff.added, removed: diff.removed, changed: diff.changed, patches: patches))
        }
        routes.post(.apiPackages, needs: .uploadPackages) { request, context in
            let app = try await services.app(context)
            let form = try await services.readMultipart(request)
            let p = try await services.actions.addPackage(by: context.acting, appId: app.id, draft: PackageDraft(fields: form.fields),
                                                          zipPath: form.takeFile("file")?.path)
            return try json(PackageJSON(p, publicURL: services.config.publicURL), status: .created)
        }
        addReleaseRoutes(to: routes)
        addImportRoutes(to: routes)
        AuditController(services: services).addAPIRoutes(to: routes)
    }

    func settingsJSON(_ s: SettingsRecord) -> SettingsJSON {
        SettingsJSON(virtualDomain: s.virtualDomain, globalHost: s.globalHost, appKey: s.appKey,
                     signingKeyFingerprint: s.signingKeyFingerprint, officialNeedsApproval: s.officialNeedsApproval,
                     grayNeedsApproval: s.grayNeedsApproval, updateReqRate: s.updateReqRate)
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request, limit: Int = 64 * 1024) async throws -> T {
        let body = try await request.body.collect(upTo: limit)
        return try JSONDecoder().decode(T.self, from: Data(buffer: body))
    }
}

func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return Response(status: status, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}
