import CourierDomain
import CourierCore
import CourierStore
import Foundation
import Hummingbird

struct PackagesController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.newPackage, needs: .uploadPackages) { _, context in
            let app = try await services.app(context)
            // A new version starts from the newest one's settings, as `courier push` does.
            let newest = try await services.store.packages(of: app.id).first
            var draft = newest?.nextVersionDraft ?? PackageDraft()
            if newest == nil { draft.android = true }
            let highest = try await services.store.facts(of: app.id).highestVersion
            draft.version = PackageVersion.suggestedNext(after: highest)?.description ?? ""
            return try await form(context, app: app, draft: draft, failure: .none, startedFrom: newest?.version)
        }
        routes.post(.packages, needs: .uploadPackages) { request, context in
            let app = try await services.app(context)
            let form = try await services.readMultipart(request)
            let draft = PackageDraft(fields: form.fields)
            let chosen = form.files.first { $0.field == "file" && $0.size > 0 }?.filename
            do {
                if !form.fields.isChecked("confirm") {
                    defer { form.discard() }
                    var errors = FieldErrors([FieldError("confirm", "Tick the box to confirm the package details; they cannot be changed after submission.")])
                    let zip = form.takeFile("file")?.path
                    for e in try await services.actions.packageProblems(appId: app.id, draft: draft, zipPath: zip).errors { errors.append(e) }
                    throw errors
                }
                let p = try await services.actions.addPackage(by: context.acting, appId: app.id, draft: draft, zipPath: form.takeFile("file")?.path)
                return Response.redirect(to: Route.package.path([p.appId, p.version], query: Notice.query(
                    "Version \(p.version) was added: \(AuditWords.count(String(p.fileCount), "file")), \(humanSize(p.size)). Create a release task to offer it to clients.",
                    for: context.user)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await self.form(context, app: app, draft: draft, failure: failure, chosenFile: chosen)
            }
        }
        routes.get(.package, needs: .read) { request, context in
            try await packagePage(request, context, failure: .none)
        }
        routes.post(.packageRevoke, needs: .editReleases) { request, context in
            let (app, p) = try await services.package(context)
            do {
                _ = try await services.actions.revoke(by: context.acting, appId: app.id, version: p.version, reason: context.form["reason"])
                return Response.redirect(to: Route.package.path([app.id, p.version], query: Notice.query(
                    "\(p.version) is revoked: it is never offered again, and devices that have it are sent back to the newest version below it that they may have.",
                    for: context.user)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await packagePage(request, context, failure: failure)
            }
        }
        routes.get(.versionDiff, needs: .read) { request, context in
            let app = try await services.app(context)
            let packages = try await services.store.packages(of: app.id)   // newest first
            let live = AppReleases(try await services.store.tasks(of: app.id)).liveOfficial?.version
            let query = request.uri.queryParameters
            let to = query["to"].map(String.init) ?? packages.first?.version ?? ""
            let from = query["from"].map(String.init)
                ?? live.flatMap { l in l != to ? l : nil } ?? packages.first { $0.packageVersion < (packages.first { $0.version == to }?.packageVersion ?? PackageVersion(parts: [0, 0, 0, 0])) }?.version ?? ""
            var changes: VersionChanges?
            var problem: String?
            if let a = packages.first(where: { $0.version == from }), let b = packages.first(where: { $0.version == to }) {
                if a.version == b.version { problem = "Choose two different versions." } else {
                    changes = try await VersionChanges.make(services, from: a, to: b, limit: 1000)
                }
            } else if packages.count < 2 {
                problem = "This app has fewer than two versions: nothing to compare yet."
            } else {
                problem = "Choose two versions of this app."
            }
            return services.views.render("diff", VersionDiffPage(
                chrome: Chrome(context, section: .apps), appId: app.id, appName: app.name, appURL: Route.app.path(app.id),
                action: Route.versionDiff.path(app.id),
                fromChoices: packages.map { .init(version: $0.version, selected: $0.version == from) },
                toChoices: packages.map { .init(version: $0.version, selected: $0.version == to) },
                changes: changes, problem: problem), status: changes == nil && packages.count >= 2 && (query["from"] != nil || query["to"] != nil) ? .unprocessableContent : .ok)
        }
        routes.get(.packagePreset, needs: .read) { _, context in
            let (app, p) = try await services.package(context)
            let settings = try await services.store.settings()
            let body = try DeliveryEntry.preset([DeliveryEntry.json(p, app: app, settings: settings, publicURL: services.config.publicURL)],
                                                updateReqRate: settings.updateReqRate)
            return Response(status: .ok, headers: [.contentType: "application/json",
                                                   .contentDisposition: "attachment; filename=\"h5_json.json\""],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    func form(_ context: SignedInContext, app: AppRecord, draft: PackageDraft, failure: FormFailure, startedFrom: String? = nil,
              chosenFile: String? = nil) async throws -> Response {
        guard let domain = try await services.store.settings().virtualDomain else { throw Actions.needsVirtualDomain }
        return services.views.render("package_new", PackageFormPage(
            app: app, draft: draft, virtualDomain: domain, maxUploadBytes: services.config.maxUploadBytes,
            failure: failure, startedFrom: startedFrom, chosenFile: chosenFile, chrome: Chrome(context, section: .apps)), status: failure.status)
    }
}

extension Services {
    /// What `p` changes for clients on the version they get now (the app's live official one),
    /// when that is an earlier version; nil otherwise.
    func changesSinceLive(_ p: PackageRecord, tasks: [TaskRecord]) async throws -> VersionChanges? {
        guard let live = AppReleases(tasks).liveOfficial, live.packageVersion < p.packageVersion,
              let base = try await store.package(p.appId, live.version) else { return nil }
        return try await VersionChanges.make(self, from: base, to: p)
    }

    /// Every whitelist's name by ID (tasks name their lists by ID).
    /// Each whitelist's name with how many values it holds now ("beta (2 values)"): a reviewer
    /// reads what a task on it reaches.
    func whitelistNames() async throws -> [Int64: String] {
        Dictionary(try await store.whitelistSummaries().compactMap { w, count in
            w.id.map { ($0, "\(w.name) (\(count) value\(count == 1 ? "" : "s"))") }
        }, uniquingKeysWith: { a, _ in a })
    }

    func package(_ context: SignedInContext) async throws -> (AppRecord, PackageRecord) {
        let app = try await app(context)
        let version = context.parameters.decoded("version") ?? ""
        guard let p = try await store.package(app.id, version) else {
            throw NotFound.package(app.id, version)
        }
        return (app, p)
    }

    /// Streams a multipart request body to temp files, refusing more than the upload limit
    /// (`files` bytes of files, with headroom for the form's other fields and part headers).
    func readMultipart(_ request: Request, files: Int? = nil, field: String = "file") async throws -> MultipartForm {
        guard let boundary = MultipartReader.boundary(of: request.headers[.contentType]) else {
            throw FieldError(field, "Send the form as multipart/form-data.")
        }
        let allowed = files ?? config.maxUploadBytes
        let limit = allowed + (files == nil ? 64 * 1024 : 1 << 20)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw UploadTooLarge(limit: allowed)
        }
        let reader = MultipartReader(maxTotal: limit, tempPath: { [blobs = store.blobs] in blobs.temporaryPath(suffix: ".upload") })
        return try await reader.read(request.body, boundary: boundary)
    }
}

extension PackagesController {
    func packagePage(_ request: Request, _ context: SignedInContext, failure: FormFailure) async throws -> Response {
        let (app, p) = try await services.package(context)
        let files = try await services.store.files(of: p.id ?? 0, page: request.uri.queryParameters["files"].flatMap { Int($0) } ?? 1,
                                              perPage: 100)
        let settings = try await services.store.settings()
        let tasks = try await services.store.tasks(of: app.id)
        var page = PackagePage(
            app: app, package: p, files: files, settings: settings, services: services, tasks: tasks,
            whitelistNames: try await services.whitelistNames(), canRelease: context.user.role.may(.editReleases),
            notice: Notice.shown(request, for: context.user), chrome: Chrome(context, section: .apps))
        page.changes = try await services.changesSinceLive(p, tasks: tasks)
        page.compareURL = Route.versionDiff.path([app.id], query: [("to", p.version)])
        if let r = try await services.store.revocations()[p.id ?? 0] {
            page.revokedLine = "Revoked by \(r.revokedBy) on \(displayDate.string(from: r.revokedAt)) UTC: never offered again; devices that have it are sent back."
            page.revokedReason = r.reason
            page.status = "Revoked"
            page.statusKey = "rejected"
        } else {
            page.canRevoke = context.user.role.may(.editReleases) && tasks.contains { $0.packageId == p.id && !$0.neverReleased }
            page.revokeAction = Route.packageRevoke.path(app.id, p.version)
            page.typedReason = context.form["reason"]
            page.reasonError = failure.fields["reason"] ?? failure.formError
        }
        return services.views.render("package", page, status: failure.status)
    }
}
