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
        /// The app's release to find again (its newest unfinished task, else its newest task),
        /// with its version; else the newest package's status.
        let status: String?
        let releaseVersion: String?
        let statusKey: String
        let taskURL: String?
        let taskLabel: String?
        let latestURL: String?
        /// What clients are offered officially now.
        let officialVersion: String
    }

    let chrome: Chrome
    /// The search, nil when there is none (an empty string is true to Mustache).
    let q: String?
    let rows: [Row]
    let pager: Pager
    let totalLabel: String
    let canEdit: Bool
    let newAppURL = Route.newApp.path()
    let batchReleaseURL = Route.batchRelease.path()
    let canRelease: Bool
    let newImportURL = Route.newImport.path()
    let canImport: Bool
    let searchAction = Route.apps.path()

    init(_ page: Page<AppSummary>, tasks: [Int64: TaskRecord] = [:], query q: String, user: UserRecord, chrome: Chrome) {
        self.chrome = chrome
        self.q = q.isEmpty ? nil : q
        rows = page.items.map { a in
            let t = a.releaseTaskId.flatMap { tasks[$0] }
            return Row(id: a.id, name: a.name, type: a.type?.rawValue ?? "—", packageCount: a.packageCount,
                       latestVersion: a.latestVersion ?? "—", url: Route.app.path(a.id),
                       status: t?.statusLabel ?? a.latestStatus?.label, releaseVersion: t?.version,
                       statusKey: t?.statusKey ?? a.latestStatus?.rawValue ?? "",
                       taskURL: t.map { Route.task.path(String($0.id ?? 0)) }, taskLabel: t.map { "task \($0.id ?? 0)" },
                       latestURL: a.latestVersion.map { Route.package.path(a.id, $0) }, officialVersion: a.officialVersion ?? "—")
        }
        pager = Pager(page) { Route.apps.path([], query: [("page", String($0)), ("q", q)]) }
        totalLabel = page.total == 1 ? "1 app" : "\(page.total) apps"
        canEdit = user.role.may(.editApps)
        canRelease = user.role.may(.editReleases)
        canImport = user.role.may(.uploadPackages)
    }
}
