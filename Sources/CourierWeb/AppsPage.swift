import CourierCore
import CourierStore

/// The H5 apps list: search, one page of apps, links to the pages around it.
struct AppsPage {
    struct Row {
        let id: String
        let name: String
        let type: String
        let packageCount: Int
        let latestVersion: String
        let url: String
    }

    let chrome: Chrome
    /// The search, nil when there is none (an empty string is true to Mustache).
    let q: String?
    let rows: [Row]
    let pager: Pager
    let canEdit: Bool
    let newAppURL = Route.newApp.path()
    let batchReleaseURL = Route.batchRelease.path()
    let canRelease: Bool
    let newImportURL = Route.newImport.path()
    let canImport: Bool
    let searchAction = Route.apps.path()

    init(_ page: Page<AppSummary>, query q: String, user: UserRecord, chrome: Chrome) {
        self.chrome = chrome
        self.q = q.isEmpty ? nil : q
        rows = page.items.map {
            Row(id: $0.id, name: $0.name, type: $0.type?.rawValue ?? "—", packageCount: $0.packageCount,
                latestVersion: $0.latestVersion ?? "—", url: Route.app.path($0.id))
        }
        pager = Pager(page) { Route.apps.path([], query: [("page", String($0)), ("q", q)]) }
        canEdit = user.role.may(.editApps)
        canRelease = user.role.may(.editReleases)
        canImport = user.role.may(.uploadPackages)
    }
}
