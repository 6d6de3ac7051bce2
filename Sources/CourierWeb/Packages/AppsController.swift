import CourierCore
import CourierStore
import Foundation
import Hummingbird

struct AppsController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.apps, needs: .read) { request, context in
            let q = request.queryFields["q"].trimmingCharacters(in: .whitespaces)
            let page = try await services.store.apps(search: q, page: request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1)
            let tasks = try await services.store.tasks(ids: page.items.compactMap(\.releaseTaskId))
            return services.views.render("apps", AppsPage(page, tasks: tasks, query: q, user: context.user, chrome: Chrome(context, section: .apps)))
        }
        routes.get(.newApp, needs: .editApps) { _, context in
            services.views.render("app_new", NewAppPage(id: "", name: "", failure: .none, chrome: Chrome(context, section: .apps)))
        }
        routes.post(.apps, needs: .editApps) { _, context in
            do {
                let app = try await services.actions.createApp(by: context.acting, id: context.form["id"], name: context.form["name"])
                return Response.redirect(to: Route.app.path([app.id], query: Notice.query(
                    "App \(app.id) (\(app.name)) was created. Add its first offline package.", for: context.user)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return services.views.render("app_new", NewAppPage(id: context.form["id"], name: context.form["name"], failure: failure,
                                                                   chrome: Chrome(context, section: .apps)), status: failure.status)
            }
        }
        routes.get(.app, needs: .read) { request, context in
            try await appPage(context, app: try await services.app(context), name: nil, failure: .none,
                              notice: Notice.shown(request, for: context.user))
        }
        routes.post(.appName, needs: .editApps) { _, context in
            let app = try await services.app(context)
            do {
                let renamed = try await services.actions.renameApp(by: context.acting, id: app.id, name: context.form["name"])
                return Response.redirect(to: Route.app.path([app.id], query: Notice.query("The app is now named \(renamed.name).", for: context.user)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await appPage(context, app: app, name: context.form["name"], failure: failure)
            }
        }
    }
}

extension AppsController {
    func appPage(_ context: SignedInContext, app: AppRecord, name: String?, failure: FormFailure,
                 notice: Notice.Shown? = nil) async throws -> Response {
        let releases = AppReleases(try await services.store.tasks(of: app.id))
        let revoked = Dictionary(try await services.store.revocations().values.filter { $0.appId == app.id }.map { ($0.version, $0) },
                                 uniquingKeysWith: { a, _ in a })
        let packages = try await services.store.packages(of: app.id).map { services.row($0, task: releases.current(of: $0.id), revoked: revoked[$0.version]) }
        let adoption = try await Adoption(app: app.id, store: services.store)
        let hasDomain = try await services.store.settings().virtualDomain != nil
        return services.views.render("app", AppPage(
            app, packages: packages, releases: releases, whitelistNames: try await services.whitelistNames(),
            hasVirtualDomain: hasDomain, user: context.user, typedName: name,
            failure: failure, notice: notice, adoption: adoption, chrome: Chrome(context, section: .apps)), status: failure.status)
    }
}

extension Services {
    func app(_ context: SignedInContext) async throws -> AppRecord {
        let id = context.parameters.decoded("id") ?? ""
        guard let app = try await store.app(id) else { throw NotFound.app(id) }
        return app
    }

    func row(_ p: PackageRecord, task: TaskRecord?, revoked: Revocation? = nil) -> PackageRow {
        // A rolled-back release reads as such, not as a finished one; a revoked one as revoked.
        PackageRow(version: p.version, status: revoked != nil ? "Revoked" : task?.rolledBack == true ? "Rolled back" : p.status.label,
                   statusKey: revoked != nil || task?.rolledBack == true ? "rejected" : p.status.rawValue, size: humanSize(p.size),
                   fileCount: p.fileCount, createdAt: displayDate.string(from: p.createdAt),
                   url: Route.package.path(p.appId, p.version), amrURL: contentLink(Paths.amr(p)),
                   taskURL: task.map { Route.task.path(String($0.id ?? 0)) }, taskLabel: task.map { "task \($0.id ?? 0)" },
                   approvalLine: revoked.map { "Revoked by \($0.revokedBy): \($0.reason)" }
                       ?? task.flatMap { [.awaiting, .rejected].contains($0.approvalState) ? TaskLinkRow.approvalLine($0) : nil })
    }
}

/// Adoption (SPEC §5): how many distinct devices reported each installed version in their
/// update checks over the last 24 hours, from the hourly sketches (an estimate).
struct Adoption {
    struct Row: Encodable {
        let version: String
        let devices: Int
    }
    let versions: [Row]
    let since: Date
    let hasVersions: Bool
    let total: Int
    /// "about ±1.6 %" (one standard error; ±3.3 % for 95 % of counts).
    let error = String(format: "±%.1f %%", HyperLogLog.standardError * 100)
    let error95 = String(format: "±%.1f %%", HyperLogLog.standardError * 200)
    let sinceText: String
    let apiURL: String

    init(app: String, store: Store, now: Date = Date()) async throws {
        let hour = Int64(now.timeIntervalSince1970 / 3600)
        since = Date(timeIntervalSince1970: TimeInterval(hour - 23) * 3600)
        let sketches = try await store.adoption(app: app, sinceHour: hour - 23)
        versions = sketches.compactMap { v, s in PackageVersion(fast: v).map { ($0, Row(version: v, devices: s.estimate)) } }
            .sorted { $0.0 > $1.0 }.map(\.1)
        hasVersions = !versions.isEmpty
        var all = HyperLogLog()
        for s in sketches.values { all.merge(s) }
        total = all.estimate
        sinceText = displayDate.string(from: since) + " UTC"
        apiURL = Route.apiAdoption.path(app)
    }
}
