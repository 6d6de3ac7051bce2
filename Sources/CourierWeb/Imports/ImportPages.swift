import CourierArchive
import CourierCore
import CourierStore
import Foundation

/// Batch import HTML5 app: the upload form.
struct ImportFormPage {
    let chrome: Chrome
    let action: String
    let maxFiles = BatchImportRules.maxFiles
    let maxBytes = Int(BatchImportRules.maxTotalBytes)
    let maxMB = Int(BatchImportRules.maxTotalBytes >> 20)
    let errors: [String: String]
    let formError: String?
    let appsURL = Route.apps.path()

    init(failure: FormFailure, chrome: Chrome) {
        self.chrome = chrome
        // Streamed multipart: the CSRF token travels in the query string.
        action = Route.imports.path([], query: [("csrf", chrome.csrf)])
        errors = failure.fields
        formError = failure.formError
    }
}

/// The import results page: one row per file, its outcome, and the submission.
struct ImportPage {
    struct Row {
        let n: Int
        let fileName: String
        let appId: String
        let newApp: Bool
        let type: String
        let version: String
        /// The settings the row will be created with, in a few words, and where they came from.
        let settings: String
        let fileCount: Int
        let size: String
        let ready: Bool
        let created: Bool
        let error: String?
        let editURL: String?
        let packageURL: String?
    }

    let chrome: Chrome
    let id: Int64
    let rows: [Row]
    let readyCount: Int
    let createdCount: Int
    let failedCount: Int
    let open: Bool
    let submitting: Bool
    let expires: String
    let submitAction: String
    let errors: [String: String]
    let formError: String?
    let appsURL = Route.apps.path()
    let newImportURL = Route.newImport.path()

    /// "Android 10.0 and up, iOS 9.0 to 12, Wi-Fi only, install when opened, /www/index.html".
    static func settingsWords(_ d: PackageDraft) -> String {
        func platform(_ name: String, _ on: Bool, _ min: String, _ max: String) -> String? {
            guard on else { return nil }
            return max.isEmpty ? "\(name) \(min) and up" : "\(name) \(min) to \(max)"
        }
        // The choices in words, then the one-line settings that are set (JSON is left to the edit page).
        let choices = PackageField.described.compactMap { f in f.choices.first { $0.value == d[f.key] }?.words }
        let lines = PackageField.described.compactMap { f -> String? in
            guard case .line = f.input, !d[f.key].isEmpty else { return nil }
            return d[f.key]
        }
        return ([platform("Android", d.android, d.androidMin, d.androidMax), platform("iOS", d.ios, d.iosMin, d.iosMax)].compactMap { $0 }
                + choices + lines).joined(separator: ", ")
    }

    init(_ record: ImportRecord, rows: [ImportRowRecord], failure: FormFailure, chrome: Chrome) {
        self.chrome = chrome
        let id = record.id ?? 0
        self.id = id
        open = record.status == "open"
        self.rows = rows.map { r in
            let draft = r.draft
            let editable = record.status == "open" && !r.refused && !r.created
            return Row(n: r.n, fileName: r.fileName, appId: r.appId ?? "—", newApp: r.newApp, type: r.type ?? "—",
                       version: draft.version.isEmpty ? "—" : draft.version,
                       settings: r.refused ? "—" : Self.settingsWords(draft) + (r.newApp ? " (defaults for a new app)" : ""),
                       fileCount: r.fileCount, size: humanSize(r.size),
                       ready: r.error == nil && !r.created, created: r.created, error: r.error,
                       editURL: editable ? Route.importRow.path(String(id), String(r.n)) : nil,
                       packageURL: r.created ? r.appId.map { Route.package.path($0, draft.version) } : nil)
        }
        readyCount = self.rows.filter(\.ready).count
        createdCount = rows.filter(\.created).count
        failedCount = rows.filter { $0.error != nil && !$0.created }.count
        submitting = record.status == "submitting"
        expires = displayDate.string(from: record.expiresAt)
        submitAction = Route.importSubmit.path(String(id))
        errors = failure.fields
        formError = failure.formError
    }
}

/// Edit one row of an import: the fields of SPEC §2, with the single-package form's messages.
struct ImportRowPage {
    let chrome: Chrome
    let fileName: String
    let appId: String
    let newApp: Bool
    let fields: PackageFormPage
    let action: String
    let importURL: String
    let formError: String?
    let appsURL = Route.apps.path()

    init(record: ImportRecord, row: ImportRowRecord, fields: PackageFormPage, failure: FormFailure, chrome: Chrome) {
        self.chrome = chrome
        fileName = row.fileName
        appId = row.appId ?? ""
        newApp = row.newApp
        self.fields = fields
        action = Route.importRow.path(String(record.id ?? 0), String(row.n))
        importURL = Route.importPage.path(String(record.id ?? 0))
        formError = failure.formError
    }
}
