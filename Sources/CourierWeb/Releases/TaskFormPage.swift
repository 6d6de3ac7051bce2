import CourierCore
import CourierStore
import Foundation

/// The settings of a release task as the form shows them (type, mode, whitelists, time window,
/// percentage, advanced rules, Markdown description and its preview): one task's form and the
/// batch release share them (Templates/task_fields.mustache).
struct TaskSettingsForm {
    typealias Choice = TaskFormPage.Choice
    let types: [Choice]
    let modes: [Choice]
    let whitelists: [TaskFormPage.ListChoice]
    let endTime: String
    let userCount: String
    let percentage: String
    /// A percentage task's ramp: the steps as typed, the threshold, and the schedule they make.
    let steps: String
    let healthThreshold: String
    let defaultThreshold = RampPlan.percent(HealthGate.defaultThreshold)
    let timeline: [HealthView.TimelineRow]
    let hasTimeline: Bool
    let stepsError: String?
    let thresholdError: String?
    let rules: [TaskFormPage.RuleRow]
    let description: String
    let preview: String?
    let errors: [String: String]
    let whitelistsURL = Route.whitelists.path()
    /// What waits for a reviewer under the configuration, said before the user submits.
    let approvalHint: String?
    /// The end time is read as UTC: the form says what time that is now.
    let nowUTC = displayDate.string(from: Date())

    static let ruleRows = 3

    init(draft d: TaskDraft, whitelists lists: [WhitelistRecord], failure: FormFailure, preview: String?, approval: SettingsRecord = SettingsRecord()) {
        approvalHint = switch (approval.officialNeedsApproval, approval.grayNeedsApproval) {
        case (true, true): "Official and grayscale releases will wait for a reviewer: clients are offered them once approved."
        case (true, false): "An official release (or a grayscale one to 100 %) will wait for a reviewer: clients are offered it once approved."
        case (false, true): "A grayscale release will wait for a reviewer: clients are offered it once approved."
        case (false, false): nil
        }
        let official = TaskType(rawValue: d.type) == .official
        types = [Choice(value: TaskType.gray.rawValue, label: "Grayscale release", checked: !official),
                 Choice(value: TaskType.official.rawValue, label: "Official release", checked: official)]
        let mode = ModeName(rawValue: d.mode) ?? .whitelist
        modes = [Choice(value: ModeName.whitelist.rawValue, label: "Whitelist", checked: mode == .whitelist),
                 Choice(value: ModeName.timeWindow.rawValue, label: "Time window", checked: mode == .timeWindow),
                 Choice(value: ModeName.percentage.rawValue, label: "Percentage", checked: mode == .percentage)]
        whitelists = lists.map { TaskFormPage.ListChoice(id: $0.id ?? 0, name: $0.name, checked: d.whitelistIds.contains($0.id ?? -1)) }
        endTime = d.endTime
        userCount = d.userCount
        percentage = d.percentage
        let count = max(Self.ruleRows, d.rules.count + 1)
        rules = (0..<count).map { i in
            let r = i < d.rules.count ? d.rules[i] : TaskDraft.Rule(field: "", op: "in", values: [])
            return TaskFormPage.RuleRow(
                index: i,
                fields: [Choice(value: "", label: "—", checked: r.field.isEmpty)]
                    + TargetingRule.Field.allCases.map { Choice(value: $0.rawValue, label: $0.label, checked: $0.rawValue == r.field) },
                ops: TargetingRule.Operator.allCases.map { Choice(value: $0.rawValue, label: $0.label, checked: $0.rawValue == r.op) },
                values: r.values.joined(separator: ", "), error: failure.fields["rules.\(i)"])
        }
        description = d.description
        self.preview = preview
        errors = failure.fields
        steps = d.stepLines
        healthThreshold = d.healthThreshold
        // The schedule as it would run if created now; on a preview, what is wrong with it.
        var stepsError = failure.fields["steps"], thresholdError = failure.fields["healthThreshold"]
        var timeline: [HealthView.TimelineRow] = []
        if mode == .percentage, !official, let initial = TaskDraft.parsePercentage(d.percentage) {
            let now = Date()
            do {
                if let plan = try d.validateRamp(.gray(.percentage(initial), rules: []), now: now) {
                    timeline = plan.timeline(start: now, current: initial).map {
                        HealthView.TimelineRow(at: $0.done ? "now" : displayDate.string(from: $0.at) + " UTC", what: $0.what, done: $0.done)
                    }
                }
            } catch {
                if preview != nil {
                    stepsError = stepsError ?? error["steps"]
                    thresholdError = thresholdError ?? error["healthThreshold"]
                }
            }
        }
        self.timeline = timeline
        hasTimeline = !timeline.isEmpty
        self.stepsError = stepsError
        self.thresholdError = thresholdError
    }
}

/// Create a release task: the mPaaS form (type, mode, whitelists, time window, percentage,
/// advanced rules, Markdown description with a server-rendered preview).
struct TaskFormPage {
    struct Choice {
        let value: String
        let label: String
        let checked: Bool
    }
    struct ListChoice {
        let id: Int64
        let name: String
        let checked: Bool
    }
    struct RuleRow {
        let index: Int
        let fields: [Choice]
        let ops: [Choice]
        let values: String
        let error: String?
        /// The network types a device reports (SPEC §4), offered as choices for a network rule.
        let networks = ["WIFI", "5G", "4G", "3G", "2G"]
    }

    let chrome: Chrome
    let appId: String
    let appName: String
    let version: String
    let settings: TaskSettingsForm
    let formError: String?
    let openTaskURL: String?
    let openTaskId: Int64?
    let action: String
    let packageURL: String
    let appsURL = Route.apps.path()
    let appURL: String
    /// The questions asked before creating, which say when the release will wait for a reviewer.
    let confirmOfficial: String
    let confirmGray: String?

    init(app: AppRecord, package p: PackageRecord, draft d: TaskDraft, whitelists lists: [WhitelistRecord], openTask: TaskRecord?,
         failure: FormFailure, preview: String?, rules: SettingsRecord = SettingsRecord(), chrome: Chrome) {
        self.chrome = chrome
        appId = app.id
        appName = app.name
        version = p.version
        settings = TaskSettingsForm(draft: d, whitelists: lists, failure: failure, preview: preview, approval: rules)
        confirmOfficial = rules.officialNeedsApproval
            ? "Ask for an official release of \(app.id) \(p.version)? It will wait for a reviewer; once approved, every client in the package's range will get it."
            : "Release \(app.id) \(p.version) officially? Every client in the package's range will get it."
        confirmGray = rules.grayNeedsApproval ? "Ask for a grayscale release of \(app.id) \(p.version)? It will wait for a reviewer." : nil
        formError = failure.formError
        openTaskId = openTask?.id
        openTaskURL = openTask.map { Route.task.path(String($0.id ?? 0)) }
        action = Route.packageTasks.path(app.id, p.version)
        packageURL = Route.package.path(app.id, p.version)
        appURL = Route.app.path(app.id)
    }

    /// Reads the form: rule rows are `ruleField.N`, `ruleOp.N`, `ruleValues.N`; rows without a field are skipped.
    static func draft(from f: FormFields) -> TaskDraft {
        var d = TaskDraft()
        d.type = f["type"]
        d.mode = f["mode"]
        d.whitelistIds = f.all("whitelistIds").compactMap { Int64($0) }
        d.endTime = f["endTime"]
        d.userCount = f["userCount"]
        d.percentage = f["percentage"]
        d.stepLines = f["steps"]
        d.healthThreshold = f["healthThreshold"]
        d.description = f["description"]
        var i = 0
        while f.has("ruleField.\(i)"), i < 50 {
            let field = f["ruleField.\(i)"]
            if !field.isEmpty {
                d.rules.append(TaskDraft.Rule(field: field, op: f["ruleOp.\(i)"],
                                              values: f["ruleValues.\(i)"].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }))
            }
            i += 1
        }
        return d
    }
}

extension TargetingRule.Operator {
    var label: String {
        switch self {
        case .in: "in"
        case .notIn: "not in"
        case .between: "between"
        case .notBetween: "not between"
        }
    }
}
