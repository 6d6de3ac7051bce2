import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Where a web view's request goes (SPEC §10 Serve): a file of the installed package under the
/// app's virtual host, a global package's file under the global host, the online copy while the
/// package is not installed or lacks the file, or not Courier's at all.
public enum Resolution: Equatable, Sendable {
    /// A file on the device: its path, content type, and the package it comes from.
    case package(path: String, contentType: String, appId: String, version: String)
    /// A global package's file (`https://{globalHost}/{appKey}/…`, `…/mcube/{appKey}/…`).
    case global(path: String, contentType: String, appId: String, version: String)
    /// Fetch it from Courier's fallback address.
    case fallback(URL)
    /// Not under any app's virtual host: the web view loads it as usual.
    case passThrough
}

extension CourierDevice {
    /// Where `url` goes, from what is installed now.
    public func resolve(_ url: URL) -> Resolution {
        guard let host = url.host?.lowercased() else { return .passThrough }
        let state = store.state
        var path = url.path
        if path.isEmpty || path == "/" { path = "/index.html" }
        let relative = String(path.dropFirst())
        // An app's virtual host: `{appId}.{virtualDomain}`, as the answer said and only for that app.
        for (appId, app) in state.apps.sorted(by: { $0.key < $1.key }) {
            guard host.hasPrefix(appId + "."), let serving = app.current,
                  let vhost = serving.vhost.flatMap({ URL(string: $0)?.host?.lowercased() }), vhost == host else { continue }
            guard TarExtractor.isSafe(relative) else { return .passThrough }
            if let version = app.installed {
                let file = store.folder(appId, version) + "/" + relative
                if Self.isRegularFile(file) {
                    return .package(path: file, contentType: MediaTypes.of(relative), appId: appId, version: version)
                }
            }
            guard let base = serving.fallbackBase.flatMap(URL.init(string:)) else { return .passThrough }
            return .fallback(base.appendingPathComponent(relative))
        }
        // A global package's file: its tar holds `{globalHost}/{appKey}/…`.
        var parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.first == "mcube" { parts.removeFirst() }
        let globalPath = ([host] + parts).joined(separator: "/")
        if TarExtractor.isSafe(globalPath), parts.count >= 2 {
            for (appId, app) in state.apps.sorted(by: { $0.key < $1.key }) {
                guard let root = app.globalRoot, globalPath.hasPrefix(root + "/"), let version = app.installed else { continue }
                let file = store.folder(appId, version) + "/" + globalPath
                if Self.isRegularFile(file) {
                    return .global(path: file, contentType: MediaTypes.of(globalPath), appId: appId, version: version)
                }
            }
        }
        return .passThrough
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}

/// Content types by extension, for files served from the device.
enum MediaTypes {
    static let known: [String: String] = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
        "mjs": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "json": "application/json",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "svg": "image/svg+xml",
        "webp": "image/webp", "ico": "image/x-icon", "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf",
        "txt": "text/plain; charset=utf-8", "xml": "application/xml", "wasm": "application/wasm", "mp4": "video/mp4",
        "mp3": "audio/mpeg", "map": "application/json",
    ]
    static func of(_ path: String) -> String {
        let ext = path.split(separator: ".").last.map { $0.lowercased() } ?? ""
        return known[ext] ?? "application/octet-stream"
    }
}
