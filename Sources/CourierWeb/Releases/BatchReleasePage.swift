import CourierDomain
import CourierCore
import CourierStore
import Foundation

/// Batch release: the apps whose newest version is to be released or release finished, one
/// task form for all of them, and afterwards each app's outcome (SPEC §5).
struct BatchReleasePage {
    struct Candidate {
        let appId: String
        let name: String
        let version: String
        let status: String
        let statusKey: String
        let checked: Bool
        let url: String
    }
    struct Outcome {
        let appId: String
        let version: String
        let created: Bool
        let taskURL: String?
        let taskId: Int64?
        let error: String?
        /// The task waits for a reviewer.
        let awaiting: Bool
    }

    let chrome: Chrome
    let search: String
    let candidates: [Candidate]
    /// More apps match than the page lists: narrow the search.
    let truncated: Bool
    let limit = Actions.maxBatch
    let settings: TaskSettingsForm
    let appsError: String?
    let formError: String?
    let outcomes: [Outcome]?
    let showOutcomes: Bool  // a stored value: templates see stored properties only
    let createdCount: Int
    let failedCount: Int
    let action = Route.batchRelease.path()
    let appsURL = Route.apps.path()
    let confirmOfficial: String
    let confirmGray: String
    let awaitingCount: Int
    /// swift-mustache treats any number, 0 too, as true: sections need a Bool.
    let hasAwaiting: Bool

    init(search: String, candidates found: [(app: AppRecord, newest: PackageRecord)], chosen: Set<String>, draft: TaskDraft,
         whitelists: [WhitelistRecord], failure: FormFailure, preview: String?, outcomes done: [Actions.BatchOutcome]?,
         rules: SettingsRecord = SettingsRecord(), chrome: Chrome) {
        self.chrome = chrome
        confirmOfficial = "Create an official release task for each chosen app? "
            + (rules.officialNeedsApproval ? "Each will wait for a reviewer; once approved, every client in range gets the app's newest version."
                                           : "Every client in range will get their newest versions.")
        confirmGray = "Create a grayscale release task for each chosen app?" + (rules.grayNeedsApproval ? " Each will wait for a reviewer." : "")
        awaitingCount = done?.filter { $0.task?.approvalState == .awaiting }.count ?? 0
        hasAwaiting = awaitingCount > 0
        self.search = search
        truncated = found.count > Actions.maxBatch
        candidates = found.prefix(Actions.maxBatch).map { app, p in
            Candidate(appId: app.id, name: app.name, version: p.version, status: p.status.label, statusKey: p.status.rawValue,
                      checked: chosen.contains(app.id), url: Route.app.path(app.id))
        }
        settings = TaskSettingsForm(draft: draft, whitelists: whitelists, failure: failure, preview: preview, approval: rules)
        appsError = failure.fields["apps"]
        formError = failure.formError
        outcomes = done.map { list in
            list.map { o in
                Outcome(appId: o.appId, version: o.version ?? "—", created: o.task != nil,
                        taskURL: o.task.map { Route.task.path(String($0.id ?? 0)) }, taskId: o.task?.id, error: o.error,
                        awaiting: o.task?.approvalState == .awaiting)
            }
        }
        showOutcomes = done != nil
        createdCount = done?.filter { $0.task != nil }.count ?? 0
        failedCount = done?.filter { $0.task == nil }.count ?? 0
    }
}
