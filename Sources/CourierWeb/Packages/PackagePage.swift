import CourierStore

/// One package: its facts, downloads, and one page of its files (paged in SQL).
struct PackagePage {
    struct FileRow {
        let path: String
        let size: String
        let sha256: String
        let fallbackURL: String
    }

    let chrome: Chrome
    let appId: String
    let appName: String
    let version: String
    let type: String
    var status: String
    var statusKey: String
    let size: String
    let sizeBytes: Int64
    let md5: String
    let sha256: String
    let fileCount: Int
    let android: String?
    let ios: String?
    /// The settings drawn from `PackageField.all`, as `Fact.settings(of:)` reads them.
    let settingFacts: [Fact]
    let vhost: String
    let amrURL: String
    let presetURL: String
    let fallbackBaseURL: String
    let signed: Bool
    let createdAt: String
    let createdBy: String
    let files: [FileRow]
    let filePage: Int
    let filePageCount: Int
    let prevFilesURL: String?
    let nextFilesURL: String?
    let appsURL = Route.apps.path()
    let appURL: String
    /// The Create-release-task link, when the user may release and no task is unfinished.
    let newTaskURL: String?
    /// Its release tasks, newest first, and the one its status comes from when a reviewer's
    /// part (waiting, rejected) is what a person needs to know.
    let tasks: [TaskLinkRow]
    let hasTasks: Bool
    let approvalBanner: TaskLinkRow?
    let notice: Notice.Shown?
    /// What this version changes for clients on the live official one (issue 18).
    var changes: VersionChanges?
    /// Revoked (SPEC §5): by whom, when, why; or the form to revoke it.
    var revokedLine: String?
    var revokedReason: String?
    var canRevoke = false
    var revokeAction = ""
    var typedReason = ""
    var reasonError: String?
    var compareURL: String?

    init(app: AppRecord, package p: PackageRecord, files: Page<PackageFileRecord>, settings: SettingsRecord, services: Services,
         tasks: [TaskRecord] = [], whitelistNames: [Int64: String] = [:], canRelease: Bool = false, notice: Notice.Shown? = nil,
         chrome: Chrome) {
        self.notice = notice
        func range(_ min: String?, _ max: String?) -> String? { min.map { "\($0) – \(max ?? "any later version")" } }
        self.chrome = chrome
        appId = app.id
        appName = app.name
        version = p.version
        type = p.type.rawValue
        status = p.status.label
        statusKey = p.status.rawValue
        size = humanSize(p.size)
        sizeBytes = p.size
        md5 = p.md5
        sha256 = p.blob
        fileCount = p.fileCount
        android = range(p.androidMin, p.androidMax)
        ios = range(p.iosMin, p.iosMax)
        settingFacts = Fact.settings(of: p)
        vhost = Paths.vhost(p.appId, domain: settings.virtualDomain)
        amrURL = services.contentLink(Paths.amr(p))
        presetURL = Route.packagePreset.path(p.appId, p.version)
        fallbackBaseURL = services.config.publicURL + Paths.fallbackBase(p)
        // Installing a key re-signs every package, so either all are signed or none.
        signed = settings.signingKeyPEM != nil
        createdAt = displayDate.string(from: p.createdAt)
        createdBy = p.createdBy
        self.files = files.items.map {
            FileRow(path: $0.path, size: humanSize($0.size), sha256: $0.sha256,
                    fallbackURL: services.contentLink(Route.fallback.path(p.appId, p.version, $0.path)))
        }
        filePage = files.page
        filePageCount = files.pageCount
        let url = Route.package.path(p.appId, p.version)
        prevFilesURL = files.page > 1 ? url + "?files=\(files.page - 1)#files" : nil
        nextFilesURL = files.page < files.pageCount ? url + "?files=\(files.page + 1)#files" : nil
        appURL = Route.app.path(p.appId)
        let releases = AppReleases(tasks)
        let mine = releases.of(package: p.id)
        newTaskURL = canRelease && !mine.contains { !$0.taskStatus.hasEnded } ? Route.newTask.path(p.appId, p.version) : nil
        self.tasks = mine.map { TaskLinkRow($0, whitelistNames: whitelistNames) }
        hasTasks = !mine.isEmpty
        let current = releases.current(of: p.id)
        approvalBanner = current.flatMap { [.awaiting, .rejected].contains($0.approvalState) ? TaskLinkRow($0, whitelistNames: whitelistNames) : nil }
        if current?.rolledBack == true {   // a rolled-back release reads as such, not as a finished one
            status = "Rolled back"
            statusKey = "rejected"
        }
    }
}
