import CourierArchive
import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// The JSON API's batch imports (SPEC §8): `POST /api/v1/batch-imports` with several `file`
/// parts, `PATCH …/{id}/rows/{n}` to edit a row's fields, `POST …/{id}/submit`.
struct ImportJSON: Encodable {
    struct Row: Encodable {
        let n: Int
        let file: String
        let appId: String?
        let newApp: Bool
        let type: String?
        let version: String?
        let fileCount: Int
        let size: Int64
        /// `ready`, `created` or `error`.
        let status: String
        let error: String?
        /// The created package's `.amr` URL.
        let package: String?
    }
    let id: Int64
    /// `open`, `submitting` or `done`.
    let status: String
    let expiresAt: Date
    let rows: [Row]

    init(_ record: ImportRecord, rows: [ImportRowRecord], publicURL: String) {
        id = record.id ?? 0
        status = record.status
        expiresAt = record.expiresAt
        self.rows = rows.map { r in
            let version = r.draft.version
            return Row(n: r.n, file: r.fileName, appId: r.appId, newApp: r.newApp, type: r.type, version: version.isEmpty ? nil : version,
                       fileCount: r.fileCount, size: r.size, status: r.created ? "created" : (r.error == nil ? "ready" : "error"),
                       error: r.error, package: r.created ? r.appId.map { "\(publicURL)\(Route.amr.path($0, version + ".amr"))" } : nil)
        }
    }
}

extension APIController {
    func addImportRoutes(to routes: SignedInRoutes) {
        routes.post(.apiImports, needs: .uploadPackages) { request, context in
            let form = try await services.readMultipart(request, files: Int(BatchImportRules.maxTotalBytes), field: "files")
            let files = form.files.filter { $0.field == "file" && $0.size > 0 }
            for f in form.files where !files.contains(where: { $0.path == f.path }) { unlink(f.path) }
            let record = try await services.actions.startImport(by: context.acting, files: files)
            return try await importJSON(record.id ?? 0, status: .created)
        }
        routes.get(.apiImport, needs: .uploadPackages) { _, context in
            try await importJSON(try importID(context))
        }
        routes.patch(.apiImportRow, needs: .uploadPackages) { request, context in
            let id = try importID(context)
            guard let n = context.parameters.decoded("n").flatMap({ Int($0) }),
                  let row = try await services.store.importRows(id).first(where: { $0.n == n }) else {
                throw NotFound("This import has no such row.")
            }
            // Fields left out keep their value; a platform is chosen by sending its minimum ("" drops it).
            // Any JSON object: keys that are not settings (or the platform flags, chosen by their
            // minimum) are ignored, as before; a setting must be text (null leaves it as it is).
            let data = try await request.body.collect(upTo: 64 * 1024)
            guard let body = (try? JSONSerialization.jsonObject(with: Data(buffer: data))) as? [String: Any] else {
                throw HTTPError(.badRequest, message: "The request body is not the JSON this endpoint expects.")
            }
            var d = row.draft
            for f in PackageField.all where !f.isFlag && f.key != "type" {
                guard let sent = body[f.key], !(sent is NSNull) else { continue }
                guard let value = sent as? String else { throw FieldError(f.key, "\(f.key) must be text.") }
                d[f.key] = value
            }
            if let v = body["androidMin"] as? String { d.android = !v.isEmpty }
            if let v = body["iosMin"] as? String { d.ios = !v.isEmpty }
            try await services.actions.editImportRow(by: context.acting, id: id, n: n, draft: d)
            return try await importJSON(id)
        }
        routes.post(.apiImportSubmit, needs: .uploadPackages) { _, context in
            let id = try importID(context)
            _ = try await services.actions.submitImport(by: context.acting, id: id, confirmed: true)
            return try await importJSON(id)
        }
    }

    func importID(_ context: SignedInContext) throws -> Int64 {
        guard let id = context.parameters.decoded("import").flatMap({ Int64($0) }) else { throw NotFound("There is no such import.") }
        return id
    }

    func importJSON(_ id: Int64, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let record = try await services.store.importRecord(id) else {
            throw NotFound("There is no such import (an import left unsubmitted is removed after 24 hours).")
        }
        return try json(ImportJSON(record, rows: try await services.store.importRows(id), publicURL: services.config.publicURL), status: status)
    }
}
