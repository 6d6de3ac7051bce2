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
    /// The task the status comes from ("task 3"), to pause, promote or roll it back.
    let taskURL: String?
    let taskLabel: String?
    /// A reviewer's part to know about: awaiting, or rejected (with why, on the task).
    let approvalLine: String?
}

/// An H5 app with its packages, newest first.
struct AppPage {
    let chrome: Chrome
    let id: String
    let name: String
    let type: String
    let packages: [PackageRow]
    let needsDomain: Bool
    let appsURL = Route.apps.path()
    let settingsURL = Route.settings.path()
    /// The page's buttons: a release task for the newest version, a new package.
    let actions: [PageAction]
    /// What clients are offered now.
    let liveOfficial: String?
    let liveOfficialURL: String?
    let runningGray: [ReviewFacts.Live]
    let hasRunningGray: Bool
    let notice: Notice.Shown?
    /// Distinct devices per installed version over the last 24 hours.
    let adoption: Adoption?

    /// Renaming (the ID never changes), for those who may edit apps.
    let canRename: Bool
    let renameAction: String
    let typedName: String
    let nameError: String?

    init(_ app: AppRecord, packages: [PackageRow], releases: AppReleases = AppReleases([]), whitelistNames: [Int64: String] = [:],
         hasVirtualDomain: Bool, user: UserRecord,
         typedName: String? = nil, failure: FormFailure = .none, notice: Notice.Shown? = nil, adoption: Adoption? = nil, chrome: Chrome) {
        self.chrome = chrome
        self.notice = notice
        self.adoption = adoption
        let official = releases.liveOfficial
        liveOfficial = official.map { "\($0.version) (task \($0.id ?? 0))" }
        liveOfficialURL = official.map { Route.task.path(String($0.id ?? 0)) }
        runningGray = releases.runningGray.map { ReviewFacts.live($0, whitelistNames: whitelistNames) }
        hasRunningGray = !runningGray.isEmpty
        canRename = user.role.may(.editApps)
        renameAction = Route.appName.path(app.id)
        self.typedName = typedName ?? app.name
        nameError = failure.fields["name"] ?? failure.formError
        id = app.id
        name = app.name
        type = app.type?.rawValue ?? "not chosen yet"
        self.packages = packages
        needsDomain = !hasVirtualDomain
        actions = PageAction.shown(to: user, [
            (packages.first.map { "Create release task for \($0.version)" } ?? "", packages.first.map { Route.newTask.path(app.id, $0.version) },
             "release-newest", .editReleases, false),
            ("Add offline package", hasVirtualDomain ? Route.newPackage.path(app.id) : nil, "add-package", .uploadPackages, true),
        ])
    }
}
