import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// Creating an app: the rules of SPEC §2, shared by the console and the JSON API.
func createApp(_ store: Store, id: String, name: String) throws -> AppRecord {
    var errors = FieldErrors()
    let appID = errors.collect { try AppID(validating: id) }
    let appName = errors.collect { try AppName.validate(name) }
    guard errors.isEmpty, let appID, let appName else { throw errors }
    do { return try store.createApp(id: appID, name: appName) } catch let e as FieldError { throw FieldErrors([e]) }
}

struct AppRow {
    let id: String
    let name: String
    let type: String
    let packageCount: Int
    let latestVersion: String
}

struct AppsPage {
    let chrome: Chrome
    let q: String
    let rows: [AppRow]
    let total: Int
    let page: Int
    let pageCount: Int
    let prevURL: String?
    let nextURL: String?
    let canEdit: Bool
}

struct NewAppPage {
    let chrome: Chrome
    let id: String
    let name: String
    let errors: [String: String]
}

struct PackageRow {
    let version: String
    let status: String
    let statusKey: String
    let size: String
    let fileCount: Int
    let createdAt: String
    let url: String
    let amrURL: String
}

struct AppPage {
    let chrome: Chrome
    let id: String
    let name: String
    let type: String
    let packages: [PackageRow]
    let canAdd: Bool
    let needsDomain: Bool
}

struct AppsController {
    let services: Services

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("apps") { request, context in
            let q = request.uri.queryParameters["q"].map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            let pageNumber = request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1
            let page = try services.store.apps(search: q, page: pageNumber)
            func link(_ n: Int) -> String {
                "/apps?page=\(n)" + (q.isEmpty ? "" : "&q=" + (q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
            }
            let rows = page.items.map {
                AppRow(id: $0.id, name: $0.name, type: $0.type?.rawValue ?? "—", packageCount: $0.packageCount,
                       latestVersion: $0.latestVersion ?? "—")
            }
            return services.views.render("apps", AppsPage(
                chrome: Chrome(context, section: "apps"), q: q, rows: rows, total: page.total, page: page.page,
                pageCount: page.pageCount, prevURL: page.page > 1 ? link(page.page - 1) : nil,
                nextURL: page.page < page.pageCount ? link(page.page + 1) : nil,
                canEdit: context.user?.role != .reviewer))
        }
        group.get("apps/new") { _, context in
            _ = try context.require(.admin, .developer)
            return services.views.render("app_new", NewAppPage(chrome: Chrome(context, section: "apps"), id: "", name: "", errors: [:]))
        }
        group.post("apps") { _, context in
            _ = try context.require(.admin, .developer)
            do {
                let app = try createApp(services.store, id: context.form["id"], name: context.form["name"])
                return Response.redirect(to: Paths.app(app.id))
            } catch let e as FieldErrors {
                return services.views.render("app_new", NewAppPage(chrome: Chrome(context, section: "apps"), id: context.form["id"],
                                                                   name: context.form["name"], errors: dictionary(e)),
                                             status: e["id"]?.contains("already exists") == true ? .conflict : .unprocessableContent)
            }
        }
        group.get("apps/:id") { _, context in
            let app = try services.app(context)
            let packages = try services.store.packages(of: app.id)
            let domain = try services.store.settings().virtualDomain
            return services.views.render("app", AppPage(
                chrome: Chrome(context, section: "apps"), id: app.id, name: app.name, type: app.type?.rawValue ?? "not chosen yet",
                packages: packages.map { services.row($0) }, canAdd: context.user?.role != .reviewer && domain != nil,
                needsDomain: domain == nil))
        }
    }
}

extension Services {
    func app(_ context: AppContext) throws -> AppRecord {
        let id = context.parameters.get("id") ?? ""
        guard let app = try store.app(id) else { throw HTTPError(.notFound, message: "There is no app with ID \(id).") }
        return app
    }

    func row(_ p: PackageRecord) -> PackageRow {
        PackageRow(version: p.version, status: p.status.label, statusKey: p.status.rawValue, size: humanSize(p.size),
                   fileCount: p.fileCount, createdAt: displayDate.string(from: p.createdAt),
                   url: Paths.package(p), amrURL: contentLink(Paths.amr(p)))
    }
}
