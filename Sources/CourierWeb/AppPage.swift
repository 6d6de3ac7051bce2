import CourierCore
import CourierStore

/// One row of an app's package list.
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

/// An H5 app with its packages, newest first.
struct AppPage {
    let chrome: Chrome
    let id: String
    let name: String
    let type: String
    let packages: [PackageRow]
    let canAdd: Bool
    let needsDomain: Bool
    let appsURL = Route.apps.path()
    let settingsURL = Route.settings.path()
    let newPackageURL: String
    /// "Create release task" for the newest version, for those who may release.
    let newestVersion: String?
    let newTaskURL: String?

    /// Renaming (the ID never changes), for those who may edit apps.
    let canRename: Bool
    let renameAction: String
    let typedName: String
    let nameError: String?

    init(_ app: AppRecord, packages: [PackageRow], hasVirtualDomain: Bool, user: UserRecord, typedName: String? = nil,
         failure: FormFailure = .none, chrome: Chrome) {
        self.chrome = chrome
        canRename = user.role.may(.editApps)
        renameAction = Route.appName.path(app.id)
        self.typedName = typedName ?? app.name
        nameError = failure.fields["name"] ?? failure.formError
        id = app.id
        name = app.name
        type = app.type?.rawValue ?? "not chosen yet"
        self.packages = packages
        canAdd = user.role.may(.uploadPackages) && hasVirtualDomain
        needsDomain = !hasVirtualDomain
        newPackageURL = Route.newPackage.path(app.id)
        newestVersion = packages.first?.version
        newTaskURL = user.role.may(.editReleases) ? packages.first.map { Route.newTask.path(app.id, $0.version) } : nil
    }
}
