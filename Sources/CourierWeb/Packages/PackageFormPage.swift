import CourierCore
import CourierStore

/// Add offline package: every field of SPEC §2, what was typed, and why it was refused.
struct PackageFormPage {
    let chrome: Chrome
    let appId: String
    let appName: String
    let fixedType: String?
    let virtualDomain: String
    let vhost: String
    let version: String
    let typeNormal: Bool
    let typeGlobal: Bool
    let android: Bool
    let androidMin: String
    let androidMax: String
    let ios: Bool
    let iosMin: String
    let iosMax: String
    /// The settings drawn from `PackageField.all` (everything but the version, type and range).
    let settingFields: [SettingFieldView]
    let maxUploadBytes: Int
    let errors: [String: String]
    let formError: String?
    let hasErrors: Bool
    let action: String
    let appURL: String
    let appsURL = Route.apps.path()
    /// The version whose settings the form starts from ("as `courier push` does").
    let startedFrom: String?
    /// After a refused upload: the browser does not keep the chosen file; say so beside it.
    let chooseAgain: String?

    init(app: AppRecord, draft d: PackageDraft, virtualDomain: String, maxUploadBytes: Int, failure: FormFailure,
         startedFrom: String? = nil, chosenFile: String? = nil, chrome: Chrome) {
        self.chrome = chrome
        self.startedFrom = startedFrom
        let refused = failure.status != .ok
        chooseAgain = refused && failure.fields["file"] == nil
            ? "Choose the file again\(chosenFile.map { " (\($0))" } ?? ""): browsers do not keep a chosen file when a form comes back. Every other field is kept as you typed it; tick the confirmation again."
            : nil
        appId = app.id
        appName = app.name
        fixedType = app.type?.rawValue
        self.virtualDomain = virtualDomain
        vhost = Paths.vhost(app.id, domain: virtualDomain)
        version = d.version
        let type = app.type?.rawValue ?? d.type
        typeNormal = type != "global"
        typeGlobal = type == "global"
        android = d.android; androidMin = d.androidMin; androidMax = d.androidMax
        ios = d.ios; iosMin = d.iosMin; iosMax = d.iosMax
        settingFields = PackageField.described.map { SettingFieldView($0, value: d[$0.key], error: failure.fields[$0.key]) }
        self.maxUploadBytes = maxUploadBytes
        errors = failure.fields
        formError = failure.formError
        hasErrors = !failure.fields.isEmpty
        // Streamed multipart: the CSRF token travels in the query string.
        action = Route.packages.path([app.id], query: [("csrf", chrome.csrf)])
        appURL = Route.app.path(app.id)
    }
}

extension PackageDraft {
    /// Reads the fields of the Add-offline-package form or the API's multipart request. The
    /// console marks platforms with checkboxes; an API caller chooses one by sending its minimum.
    init(fields f: FormFields) {
        self.init()
        version = f["version"]
        type = f["type"]
        androidMin = f["androidMin"]; androidMax = f["androidMax"]
        iosMin = f["iosMin"]; iosMax = f["iosMax"]
        if f.has("platformCheckboxes") {
            android = f.isChecked("android")
            ios = f.isChecked("ios")
        } else {
            android = !androidMin.isEmpty || !androidMax.isEmpty
            ios = !iosMin.isEmpty || !iosMax.isEmpty
        }
        for field in PackageField.described where f.has(field.key) { self[field.key] = f[field.key] }
    }
}

/// One setting of the package form, drawn from its `PackageField`.
struct SettingFieldView {
    struct Option { let value: String; let label: String; let checked: Bool }
    let key: String
    let label: String
    let hint: String
    let value: String
    let placeholder: String
    let line: Bool
    let lines: Bool
    let options: [Option]
    let hasOptions: Bool
    let error: String?

    init(_ field: PackageField, value: String, error: String?) {
        key = field.key
        label = field.label
        hint = field.hint
        self.value = value
        self.error = error
        switch field.input {
        case .line(let p): placeholder = p; line = true; lines = false
        case .lines(let p): placeholder = p; line = false; lines = true
        case .choice, .flag: placeholder = ""; line = false; lines = false
        }
        // A value that is none of the choices (an old draft, a refused API value) checks the default.
        let chosen = field.choices.contains { $0.value == value } ? value : field.defaultValue
        options = field.choices.map { Option(value: $0.value, label: $0.label, checked: $0.value == chosen) }
        hasOptions = !options.isEmpty
    }
}
