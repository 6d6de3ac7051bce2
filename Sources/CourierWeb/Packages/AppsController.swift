import CourierCore
import CourierStore
import Foundation
import Hummingbird

struct AppsController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.apps, needs: .read) { request, context in
            let q = request.uri.queryParameters["q"].map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
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
        let packages = try await services.store.packages(of: app.id).map { services.row($0, task: releases.current(of: $0.id)) }
        let hasDomain = try await services.store.settings().virtualDomain != nil
        return services.views.render("app", AppPage(
            app, packages: packages, releases: releases, whitelistNames: try await services.whitelistNames(),
            hasVirtualDomain: hasDomain, user: context.user, typedName: name,
            failure: failure, notice: notice, chrome: Chrome(context, section: .apps)), status: failure.status)
    }
}

extension Services {
    func app(_ context: SignedInContext) async throws -> AppRecord {
        let id = context.parameters.decoded("id") ?? ""
        guard let app = try await store.app(id) else { throw NotFound.app(id) }
        return app
    }

    func row(_ p: PackageRecord, task: TaskRecord?) -> PackageRow {
        // A rolled-back release reads as such, not as a finished one.
        PackageRow(version: p.version, status: task?.rolledBack == true ? "Rolled back" : p.status.label,
                   statusKey: task?.rolledBack == true ? "rejected" : p.status.rawValue, size: humanSize(p.size),
                   fileCount: p.fileCount, createdAt: displayDate.string(from: p.createdAt),
                   url: Route.package.path(p.appId, p.version), amrURL: contentLink(Paths.amr(p)),
                   taskURL: task.map { Route.task.path(String($0.id ?? 0)) }, taskLabel: task.map { "task \($0.id ?? 0)" },
                   approvalLine: task.flatMap { [.awaiting, .rejected].contains($0.approvalState) ? TaskLinkRow.approvalLine($0) : nil })
    }
}
