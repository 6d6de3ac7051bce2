import CourierDomain
import CourierArchive
import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// Batch import HTML5 app (SPEC §6): the upload form, the import results page with an Edit
/// form per row, and the submission. Only people who may add packages see imports.
struct ImportsController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.newImport, needs: .uploadPackages) { _, context in
            try await form(context, failure: .none)
        }
        routes.post(.imports, needs: .uploadPackages) { request, context in
            do {
                let form = try await services.readMultipart(request, files: Int(BatchImportRules.maxTotalBytes), field: "files")
                // Files under another name, and empty file inputs, are dropped at once.
                let files = form.files.filter { $0.field == "files" && $0.size > 0 }
                for f in form.files where !files.contains(where: { $0.path == f.path }) { unlink(f.path) }
                let record = try await services.actions.startImport(by: context.acting, files: files)
                return Response.redirect(to: Route.importPage.path(String(record.id ?? 0)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await self.form(context, failure: failure)
            }
        }
        routes.get(.importPage, needs: .uploadPackages) { _, context in
            try await page(context, failure: .none)
        }
        routes.get(.importRow, needs: .uploadPackages) { _, context in
            let (record, row) = try await row(context)
            return try await rowForm(context, record: record, row: row, draft: row.draft, failure: .none)
        }
        routes.post(.importRow, needs: .uploadPackages) { _, context in
            let (record, row) = try await row(context)
            let draft = PackageDraft(fields: context.form)
            do {
                try await services.actions.editImportRow(by: context.acting, id: record.id ?? 0, n: row.n, draft: draft)
                return Response.redirect(to: Route.importPage.path(String(record.id ?? 0)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await rowForm(context, record: record, row: row, draft: draft, failure: failure)
            }
        }
        routes.post(.importSubmit, needs: .uploadPackages) { _, context in
            let id = try importID(context)
            do {
                _ = try await services.actions.submitImport(by: context.acting, id: id, confirmed: context.form.isChecked("confirm"))
                return Response.redirect(to: Route.importPage.path(String(id)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure)
            }
        }
    }

    func importID(_ context: SignedInContext) throws -> Int64 {
        guard let id = context.parameters.decoded("import").flatMap({ Int64($0) }) else { throw NotFound("There is no such import.") }
        return id
    }

    func record(_ context: SignedInContext) async throws -> ImportRecord {
        guard let record = try await services.store.importRecord(try importID(context)) else {
            throw NotFound("There is no such import (an import left unsubmitted is removed after 24 hours).")
        }
        return record
    }

    func row(_ context: SignedInContext) async throws -> (ImportRecord, ImportRowRecord) {
        let record = try await record(context)
        guard let n = context.parameters.decoded("n").flatMap({ Int($0) }),
              let row = try await services.store.importRows(record.id ?? 0).first(where: { $0.n == n }) else {
            throw NotFound("This import has no such row.")
        }
        return (record, row)
    }

    func form(_ context: SignedInContext, failure: FormFailure) async throws -> Response {
        guard try await services.store.settings().virtualDomain != nil else { throw Actions.needsVirtualDomain }
        return services.views.render("import_new", ImportFormPage(failure: failure, chrome: Chrome(context, section: .apps)),
                                     status: failure.status)
    }

    func page(_ context: SignedInContext, failure: FormFailure) async throws -> Response {
        let record = try await record(context)
        let rows = try await services.store.importRows(record.id ?? 0)
        return services.views.render("import", ImportPage(record, rows: rows, failure: failure, chrome: Chrome(context, section: .apps)),
                                     status: failure.status)
    }

    func rowForm(_ context: SignedInContext, record: ImportRecord, row: ImportRowRecord, draft: PackageDraft,
                 failure: FormFailure) async throws -> Response {
        guard let appId = row.appId, !row.refused, !row.created, record.status == "open" else {
            throw Conflict("This row can no longer be edited.")
        }
        guard let domain = try await services.store.settings().virtualDomain else { throw Actions.needsVirtualDomain }
        var app = try await services.store.app(appId) ?? AppRecord(id: AppID(trusted: appId), name: appId)
        if app.type == nil { app.type = row.type.flatMap(PackageType.init(rawValue:)) }
        let fields = PackageFormPage(app: app, draft: draft, virtualDomain: domain, maxUploadBytes: 0, failure: failure,
                                     chrome: Chrome(context, section: .apps))
        return services.views.render("import_row", ImportRowPage(record: record, row: row, fields: fields, failure: failure,
                                                                 chrome: Chrome(context, section: .apps)),
                                     status: failure.status)
    }
}
