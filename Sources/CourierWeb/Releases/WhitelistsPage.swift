import CourierDomain
import CourierCore
import CourierStore

extension Whitelist.Kind {
    var label: String {
        switch self {
        case .user: "User IDs"
        case .device: "Device IDs"
        case .regex: "User-ID regular expressions"
        }
    }
}

/// The list of whitelists and the form that creates one.
struct WhitelistsPage {
    struct Row {
        let name: String
        let kind: String
        let count: Int
        let url: String
    }
    struct Kind {
        let value: String
        let label: String
        let checked: Bool
    }

    let chrome: Chrome
    let rows: [Row]
    let canEdit: Bool
    let name: String
    let values: String
    let kinds: [Kind]
    let errors: [String: String]
    let formError: String?
    let notice: String?
    let action = Route.whitelists.path()
    let maxValues = Actions.maxWhitelistValues
    let maxExpressions = Whitelist.maxExpressions

    init(_ all: [(WhitelistRecord, count: Int)], form: FormFields, failure: FormFailure, notice: String?, user: UserRecord, chrome: Chrome) {
        self.chrome = chrome
        rows = all.map { w, count in
            Row(name: w.name, kind: Whitelist.Kind(rawValue: w.kind)?.label ?? w.kind, count: count, url: Route.whitelist.path(String(w.id ?? 0)))
        }
        canEdit = user.role.may(.editReleases)
        name = form["name"]
        values = form["values"]
        let chosen = form.has("kind") ? form["kind"] : "user"
        kinds = Whitelist.Kind.allCases.map { Kind(value: $0.rawValue, label: $0.label, checked: $0.rawValue == chosen) }
        errors = failure.fields
        formError = failure.formError
        self.notice = notice
    }
}

/// One whitelist: its values (the first 500 shown), adding, removing, deleting.
struct WhitelistPage {
    struct TaskLink {
        let label: String
        let url: String
    }

    let chrome: Chrome
    let name: String
    let kind: String
    let count: Int
    let shown: [String]
    /// Values not shown; nil when all are (0 is true to Mustache).
    let more: Int?
    let usedBy: [TaskLink]
    let canEdit: Bool
    let values: String
    let errors: [String: String]
    let formError: String?
    let notice: Notice.Shown?
    let addAction: String
    let removeAction: String
    let deleteAction: String
    let listURL = Route.whitelists.path()

    init(_ w: WhitelistRecord, values all: Set<String>, usedBy tasks: [TaskRecord], form: FormFields, failure: FormFailure,
         notice: Notice.Shown?, user: UserRecord, chrome: Chrome) {
        self.chrome = chrome
        name = w.name
        kind = Whitelist.Kind(rawValue: w.kind)?.label ?? w.kind
        count = all.count
        let sorted = all.sorted()
        shown = Array(sorted.prefix(500))
        more = sorted.count > 500 ? sorted.count - 500 : nil
        usedBy = tasks.map { TaskLink(label: "Task \($0.id ?? 0) (\($0.appId) \($0.version))", url: Route.task.path(String($0.id ?? 0))) }
        canEdit = user.role.may(.editReleases)
        values = form["values"]
        errors = failure.fields
        formError = failure.formError
        self.notice = notice
        let id = String(w.id ?? 0)
        addAction = Route.whitelistValues.path(id)
        removeAction = Route.whitelistRemove.path(id)
        deleteAction = Route.whitelistDelete.path(id)
    }
}
