import CourierCore
import CourierStore
import Foundation
import Hummingbird
import Metrics

/// What clients fetch without signing in: `.amr` files, fallback files, preset files.
struct DeliveryController {
    let services: Services
    let fileIO = FileIO()

    func addRoutes(to router: RouterGroup<AppContext>, table: RouteTable) {
        // HEAD answers the same headers (size, ETag) without the body.
        for method in [HTTPRequest.Method.get, .head] {
            table.add(.init(method: method, route: .amr, permission: nil, surface: .open))
            table.add(.init(method: method, route: .fallback, permission: nil, surface: .open))
            router.on(Route.amr.routerPath, method: method) { request, context in
                let file = context.parameters.decoded("file") ?? ""
                guard file.hasSuffix(".amr"), let id = context.parameters.decoded("id") else { throw NotFound("No such package.") }
                let name = file.dropLast(4)
                // `{V}.patch-{B}.amr` (SPEC §3): a patch from B to V, while it exists.
                if let dash = name.range(of: ".patch-") {
                    guard let patch = try await services.store.patch(id, String(name[..<dash.lowerBound]), from: String(name[dash.upperBound...])),
                          let blob = patch.blob else {
                        throw NotFound("No such patch.")
                    }
                    return try await serve(request, context, blob: blob, offset: 0, size: patch.size, etag: blob,
                                           type: "application/octet-stream", download: "\(id)_\(patch.version).patch-\(patch.base).amr",
                                           counted: services.delivery.metrics.packageBytesPatch)
                        .sandboxed(unless: services.config.separateContentHost)
                }
                guard let p = try await services.store.package(id, String(name)) else { throw NotFound("No such package.") }
                return try await serve(request, context, blob: p.blob, offset: 0, size: p.size, etag: p.blob,
                                       type: "application/octet-stream", download: "\(p.appId)_\(p.version).amr",
                                       counted: services.delivery.metrics.packageBytesFull)
                    .sandboxed(unless: services.config.separateContentHost)
            }
            router.on(Route.fallback.routerPath, method: method) { request, context in
                guard let path = context.parameters.decodedCatchAll()?.joined(separator: "/"), let id = context.parameters.decoded("id"), let version = context.parameters.decoded("version"),
                      let p = try await services.store.package(id, version), let f = try await services.store.file(of: p.id!, path: path) else {
                    throw NotFound("No such file.")
                }
                // Straight from the stored tar inside the .amr: no per-file extraction.
                // Pages and SVGs are revalidated (ETag, 304) rather than cached for a year, so a copy
                // cached in another mode or before an upgrade never runs without today's headers.
                let type = MediaType.forPath(path)
                return try await serve(request, context, blob: p.blob, offset: p.tarOffset + f.tarOffset, size: f.size,
                                       etag: f.sha256, type: type, download: nil, revalidate: MediaType.isActive(type))
                    .sandboxed(unless: services.config.separateContentHost)
            }
        }
        table.add(.init(method: .get, route: .clientPreset, permission: nil, surface: .open))
        router.get(Route.clientPreset.routerPath) { _, context in
            let file = context.parameters.decoded("file") ?? ""
            let id = String(file.dropLast(5))
            guard file.hasSuffix(".json"), try await services.store.app(id) != nil else { throw NotFound("No such app.") }
            // The app's current official release, from the same snapshot the update API reads.
            let snapshot = services.delivery.snapshot
            let entries = snapshot.official[id].flatMap { snapshot.entries[id]?[$0]?.update }.map { [$0] } ?? []
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: DeliveryEntry.answer(entries, updateReqRate: snapshot.updateReqRate)))
        }
    }

    /// Serves `size` bytes of a blob from `offset`, with ETag, one Range, and immutable caching
    /// (every URL names a fixed version, so its bytes never change).
    func serve(_ request: Request, _ context: AppContext, blob: String, offset: Int64, size: Int64, etag: String,
               type: String, download: String?, revalidate: Bool = false, counted: Metrics.Counter? = nil) async throws -> Response {
        var headers: HTTPFields = [.contentType: type, .eTag: "\"\(etag)\"", .acceptRanges: "bytes", .xContentTypeOptions: "nosniff",
                                   .cacheControl: revalidate ? "no-cache" : "public, max-age=31536000, immutable"]
        if let download { headers[.contentDisposition] = "attachment; filename=\"\(download)\"" }
        if let match = request.headers[.ifNoneMatch], match.contains("\"\(etag)\"") || match == "*" {
            return Response(status: .notModified, headers: headers)
        }
        var first: Int64 = 0, last = size - 1
        var status = HTTPResponse.Status.ok
        if let range = request.headers[.range] {
            switch Self.parseRange(range, size: size) {
            case .whole: break
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            case .part(let a, let b):
                (first, last) = (a, b)
                status = .partialContent
                headers[.contentRange] = "bytes \(first)-\(last)/\(size)"
            }
        }
        headers[.contentLength] = String(max(0, last - first + 1))
        guard size > 0, request.method != .head else { return Response(status: status, headers: headers) }
        let body = try await fileIO.loadFile(path: services.store.blobs.path(for: blob),
                                             range: Int(offset + first)...Int(offset + last), context: context)
        counted?.increment(by: Int64(last - first + 1))   // what is sent (a resumed download counts its rest)
        return Response(status: status, headers: headers, body: body)
    }

    enum RangeAnswer: Equatable { case whole, part(Int64, Int64), unsatisfiable }

    /// `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges, another unit or a malformed
    /// header are ignored (the whole file, as HTTP allows); a well-formed single range that
    /// misses the file is unsatisfiable.
    static func parseRange(_ header: String, size: Int64) -> RangeAnswer {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2, spec.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              !(spec[0].isEmpty && spec[1].isEmpty) else { return .whole }
        if spec[0].isEmpty {
            guard let n = Int64(spec[1]) else { return .whole }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .part(max(0, size - n), size - 1)
        }
        guard let a = Int64(spec[0]) else { return .whole }
        guard a < size else { return .unsatisfiable }
        if spec[1].isEmpty { return .part(a, size - 1) }
        guard let b = Int64(spec[1]) else { return .part(a, size - 1) }   // beyond Int64: to the end
        return b >= a ? .part(a, min(b, size - 1)) : .whole
    }
}

/// `GET /{appKey}/{path}` and `/mcube/{appKey}/{path}` (the mPaaS private-cloud form): the files
/// of the global packages' current official releases, so the global resource host can point at
/// Courier. A middleware, since the app key is a setting, not a route.
struct GlobalResourceMiddleware: RouterMiddleware {
    let services: Services

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head else { return try await next(request, context) }
        let snapshot = services.delivery.snapshot
        guard let key = snapshot.globalAppKey, !snapshot.globalFiles.isEmpty else { return try await next(request, context) }
        // Decoded as every route's parameters are (`%41` is `A`); not decodable: not a file.
        guard let decoded = request.uri.path.removingPercentEncoding else { return try await next(request, context) }
        var path = Substring(decoded)
        if path.hasPrefix("/mcube/") { path = path.dropFirst(6) }
        guard path.hasPrefix("/\(key)/"), let file = snapshot.globalFiles[String(path.dropFirst(key.count + 2))] else {
            return try await next(request, context)
        }
        if let host = services.config.contentHost {
            let asked = (request.head.authority ?? "").lowercased().split(separator: ":").first.map(String.init) ?? ""
            guard asked == host else { return try await next(request, context) }
        }
        // The URL names no version, so the bytes can change: revalidate by ETag.
        return try await DeliveryController(services: services)
            .serve(request, context, blob: file.blob, offset: file.offset, size: file.size, etag: file.sha256,
                   type: MediaType.forPath(String(path)), download: nil, revalidate: true)
            .sandboxed(unless: services.config.separateContentHost)
    }
}

extension Response {
    /// Package content on the console's origin: scripts run in an opaque origin, without the
    /// console's cookies, storage or pages (SPEC §4). Never `allow-same-origin`.
    func sandboxed(unless separateHost: Bool) -> Response {
        guard !separateHost else { return self }
        var r = self
        r.headers[.contentSecurityPolicy] = "sandbox allow-scripts allow-forms allow-popups"
        return r
    }
}

extension MediaType {
    /// Types a browser runs as a document (scripts inside included).
    static func isActive(_ type: String) -> Bool {
        ["text/html", "image/svg+xml", "application/xml", "application/xhtml+xml", "text/xml"].contains { type.hasPrefix($0) }
    }

    static func forPath(_ path: String) -> String {
        let ext = (path as NSString).pathExtension.lowercased()
        let known: [String: String] = [
            "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
            "mjs": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "json": "application/json",
            "map": "application/json", "svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
            "gif": "image/gif", "webp": "image/webp", "ico": "image/x-icon", "woff": "font/woff", "woff2": "font/woff2",
            "ttf": "font/ttf", "otf": "font/otf", "txt": "text/plain; charset=utf-8", "xml": "application/xml", "xhtml": "application/xhtml+xml",
            "wasm": "application/wasm", "mp3": "audio/mpeg", "mp4": "video/mp4", "pdf": "application/pdf",
        ]
        return known[ext] ?? "application/octet-stream"
    }
}
