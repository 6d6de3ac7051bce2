import CourierCore
import CourierStore
import Foundation
import Hummingbird

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
        mainUrl = f["mainUrl"]
        extendInfo = f["extendInfo"]
        if f.has("downloadPolicy") { downloadPolicy = f["downloadPolicy"] }
        if f.has("installPolicy") { installPolicy = f["installPolicy"] }
    }
}

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
    let mainUrl: String
    let extendInfo: String
    let wifi: Bool
    let lazy: Bool
    let suggestedVersion: String
    let maxUploadBytes: Int
    let errors: [String: String]
    let hasErrors: Bool
}

struct FileRow {
    let path: String
    let size: String
    let sha256: String
    let fallbackURL: String
}

struct PackagePage {
    let chrome: Chrome
    let appId: String
    let appName: String
    let version: String
    let type: String
    let status: String
    let statusKey: String
    let size: String
    let sizeBytes: Int64
    let md5: String
    let sha256: String
    let fileCount: Int
    let android: String?
    let ios: String?
    let mainUrl: String?
    let extendInfo: String
    let downloadPolicy: String
    let installPolicy: String
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
}

struct PackagesController {
    let services: Services

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("apps/:id/packages/new") { _, context in
            _ = try context.require(.admin, .developer)
            let app = try services.app(context)
            var draft = PackageDraft()
            draft.android = true
            draft.version = (try services.store.facts(of: app.id).highestVersion?.nextPatch() ?? PackageVersion(parts: [1, 0, 0, 0])).description
            return try form(context, app: app, draft: draft, errors: FieldErrors(), status: .ok)
        }
        group.post("apps/:id/packages") { request, context in
            let user = try context.require(.admin, .developer)
            let app = try services.app(context)
            let form = try await services.readMultipart(request)
            let draft = PackageDraft(fields: form.fields)
            do {
                if !form.fields.isChecked("confirm") {
                    form.discard()
                    var errors = FieldErrors([FieldError("confirm", "Tick the box to confirm the package details; they cannot be changed after submission.")])
                    let facts = try services.store.facts(of: app.id)
                    do { _ = try draft.validate(for: facts) } catch let e as FieldErrors { e.errors.forEach { errors.append($0) } }
                    throw errors
                }
                let file = form.takeFile("file")
                let p = try await services.ingest.ingest(appId: app.id, draft: draft, zipPath: file?.path, user: user.name)
                return Response.redirect(to: Paths.package(p))
            } catch let e as FieldErrors {
                return try self.form(context, app: app, draft: draft, errors: e, status: .unprocessableContent)
            } catch let e as FieldError {
                return try self.form(context, app: app, draft: draft, errors: FieldErrors([e]), status: .unprocessableContent)
            }
        }
        group.get("apps/:id/packages/:version") { request, context in
            let (app, p) = try services.package(context)
            let all = try services.store.files(of: p.id!)
            let perPage = 100
            let pageCount = max(1, (all.count + perPage - 1) / perPage)
            let page = max(1, min(pageCount, request.uri.queryParameters["files"].flatMap { Int($0) } ?? 1))
            let domain = try services.store.settings().virtualDomain
            func range(_ min: String?, _ max: String?) -> String? { min.map { "\($0) – \(max ?? "any later version")" } }
            let files = all[((page - 1) * perPage)..<min(all.count, page * perPage)].map {
                FileRow(path: $0.path, size: humanSize($0.size), sha256: $0.sha256, fallbackURL: services.contentLink(Paths.fallbackBase(p) + $0.path))
            }
            let url = Paths.package(p)
            return services.views.render("package", PackagePage(
                chrome: Chrome(context, section: "apps"), appId: app.id, appName: app.name, version: p.version,
                type: p.type.rawValue, status: p.status.label, statusKey: p.status.rawValue, size: humanSize(p.size),
                sizeBytes: p.size, md5: p.md5, sha256: p.blob, fileCount: p.fileCount,
                android: range(p.androidMin, p.androidMax), ios: range(p.iosMin, p.iosMax), mainUrl: p.mainUrl,
                extendInfo: p.extendInfo, downloadPolicy: p.downloadPolicy == .all ? "Any network" : "Wi-Fi only",
                installPolicy: p.installPolicy == .preload ? "Preload (install when downloaded)" : "Lazy (install when first opened)",
                vhost: Paths.vhost(p.appId, domain: domain), amrURL: services.contentLink(Paths.amr(p)),
                presetURL: url + "/h5_json.json", fallbackBaseURL: services.config.publicURL + Paths.fallbackBase(p),
                // Installing a key re-signs every package, so either all are signed or none.
                signed: try services.store.settings().signingKeyPEM != nil,
                createdAt: displayDate.string(from: p.createdAt), createdBy: p.createdBy, files: Array(files),
                filePage: page, filePageCount: pageCount,
                prevFilesURL: page > 1 ? url + "?files=\(page - 1)#files" : nil,
                nextFilesURL: page < pageCount ? url + "?files=\(page + 1)#files" : nil))
        }
        group.get("apps/:id/packages/:version/h5_json.json") { _, context in
            let (app, p) = try services.package(context)
            let body = try DeliveryEntry.preset([DeliveryEntry.json(p, app: app, settings: services.store.settings(), publicURL: services.config.publicURL)])
            return Response(status: .ok, headers: [.contentType: "application/json",
                                                   .contentDisposition: "attachment; filename=\"h5_json.json\""],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    func form(_ context: AppContext, app: AppRecord, draft d: PackageDraft, errors: FieldErrors,
              status: HTTPResponse.Status) throws -> Response {
        let domain = try services.store.settings().virtualDomain
        guard let domain else {
            throw HTTPError(.conflict, message: "Set the virtual domain on the configuration page before adding packages.")
        }
        let fixed = app.type?.rawValue
        let type = fixed ?? d.type
        return services.views.render("package_new", PackageFormPage(
            chrome: Chrome(context, section: "apps"), appId: app.id, appName: app.name, fixedType: fixed,
            virtualDomain: domain, vhost: Paths.vhost(app.id, domain: domain), version: d.version,
            typeNormal: type != "global", typeGlobal: type == "global", android: d.android, androidMin: d.androidMin,
            androidMax: d.androidMax, ios: d.ios, iosMin: d.iosMin, iosMax: d.iosMax, mainUrl: d.mainUrl,
            extendInfo: d.extendInfo, wifi: d.downloadPolicy != "all", lazy: d.installPolicy != "preload",
            suggestedVersion: d.version, maxUploadBytes: services.config.maxUploadBytes,
            errors: dictionary(errors), hasErrors: !errors.isEmpty), status: status)
    }
}

extension Services {
    func package(_ context: AppContext) throws -> (AppRecord, PackageRecord) {
        let app = try app(context)
        let version = context.parameters.get("version") ?? ""
        guard let p = try store.package(app.id, version) else {
            throw HTTPError(.notFound, message: "App \(app.id) has no package version \(version).")
        }
        return (app, p)
    }

    /// Streams a multipart request body to temp files, refusing more than the upload limit.
    func readMultipart(_ request: Request) async throws -> MultipartForm {
        guard let boundary = MultipartReader.boundary(of: request.headers[.contentType]) else {
            throw FieldError("file", "Send the package as multipart/form-data.")
        }
        // Headroom over the file limit for the form's other fields.
        let limit = config.maxUploadBytes + 64 * 1024
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw UploadTooLarge(limit: config.maxUploadBytes)
        }
        let reader = MultipartReader(maxTotal: limit, tempPath: { [blobs = store.blobs] in blobs.temporaryPath(suffix: ".upload") })
        return try await reader.read(request.body, boundary: boundary)
    }
}
