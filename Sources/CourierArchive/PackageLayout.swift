import CourierCore

/// Where global packages must put their files: `{id}/{globalHost}/{appKey}/...`.
public struct GlobalLocation: Sendable, Equatable {
    public var host: String
    public var appKey: String
    public init(host: String, appKey: String) {
        self.host = host
        self.appKey = appKey
    }
}

/// A file of the package's content: its path below `{id}/` and the zip entry holding it.
public struct ContentFile: Sendable {
    public let path: String
    public let entry: ZipEntry
}

/// The zip layout rules of SPEC §2 (top-level directory, global layout, main URL).
public enum PackageLayout {
    /// Checks the layout and returns the content files sorted by path (the tar's order).
    public static func contentFiles(of entries: [ZipEntry], appID: AppID, type: PackageType,
                                    global: GlobalLocation?, mainUrl: String?) throws -> [ContentFile] {
        let id = appID.rawValue
        let prefix = id + "/"
        var files: [ContentFile] = []
        for e in entries {
            let top = e.name.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            if top.count == 1 {
                throw FieldError("file", "“\(e.name)” is a file at the top level of the zip. The only top-level entry must be the directory \(id)/ holding all content.")
            }
            guard top[0] == id else {
                if top[0] == "__MACOSX" {
                    throw FieldError("file", "The zip has a “__MACOSX/” folder, which macOS Finder adds when compressing. Create the zip with `zip -r -X {id}.zip {id}` or remove that folder.")
                }
                let looksLikeID = top[0].utf8.count == 8 && top[0].allSatisfy(\.isNumber)
                throw FieldError("file", looksLikeID
                    ? "The zip's top-level directory is \(top[0])/, a different app ID; this package is for app \(id)."
                    : "The zip has a top-level directory “\(top[0])/”; the only top-level entry must be the directory \(id)/.")
            }
            guard !e.isDirectory else { continue }
            let path = String(e.name.dropFirst(prefix.count))
            if type == .global {
                guard let global else {
                    throw FieldError("type", "Global packages need the global resource host and app key; set them on the configuration page first.")
                }
                let base = "\(global.host)/\(global.appKey)/"
                guard path.hasPrefix(base) else {
                    throw FieldError("file", "“\(e.name)” is outside \(id)/\(base); a global package keeps every file under {id}/{globalHost}/{appKey}/.")
                }
                let url = "https://\(global.host)/\(global.appKey)/\(path.dropFirst(base.count))"
                if url.utf8.count > 100 {
                    throw FieldError("file", "“\(e.name)” would be served at \(url), which is \(url.utf8.count) characters; global resource URLs must be at most 100.")
                }
            }
            guard TarHeader.canEncode(path) else {
                throw FieldError("file", "“\(e.name)”: the path is too long to store (at most 100 characters per file name and 255 in all).")
            }
            files.append(ContentFile(path: path, entry: e))
        }
        guard !files.isEmpty else { throw FieldError("file", "The zip holds no files under \(id)/.") }
        files.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        if let mainUrl, !files.contains(where: { "/" + $0.path == mainUrl }) {
            throw FieldError("mainUrl", "The main entrance \(mainUrl) is not in the zip (expected \(id)\(mainUrl)).")
        }
        return files
    }

    /// For batch import: a zip whose content sits under `{id}/{globalHost}/` is global.
    public static func inferredType(of entries: [ZipEntry], appID: AppID, globalHost: String?) -> PackageType {
        guard let globalHost else { return .normal }
        let base = "\(appID.rawValue)/\(globalHost)/"
        return entries.contains { $0.name.hasPrefix(base) && !$0.isDirectory } ? .global : .normal
    }
}
