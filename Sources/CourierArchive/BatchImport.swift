import CourierCore
import Foundation

/// One file of a batch import (SPEC §6) as inspected when it arrives: the app it is for, what
/// its layout says, the version it would get, or why it cannot be imported.
public struct ImportRow: Sendable, Equatable {
    public var fileName: String
    /// The app the file name names (nil when the name is not `{8 digits}.zip`).
    public var appId: String?
    /// The app does not exist yet: the import would create it (named by its ID).
    public var newApp: Bool
    /// The resource package type the zip's layout shows.
    public var type: PackageType?
    /// The version assigned: 0.0.0.1 for a new app, else the app's highest plus one in its last part.
    public var version: PackageVersion?
    public var fileCount: Int
    /// The zip's size in bytes.
    public var size: Int64
    /// Why the file cannot be imported; nil when it is ready.
    public var error: String?

    public var isReady: Bool { error == nil }

    public init(fileName: String, appId: String?, newApp: Bool, type: PackageType?, version: PackageVersion?, fileCount: Int,
                size: Int64, error: String?) {
        self.fileName = fileName; self.appId = appId; self.newApp = newApp; self.type = type; self.version = version
        self.fileCount = fileCount; self.size = size; self.error = error
    }
}

/// The rules of a batch import that need no database (SPEC §6): the limits of the whole
/// import, the file names, and each zip's own checks. One bad file never stops the others.
public enum BatchImportRules {
    public static let maxFiles = 100
    public static let maxTotalBytes: Int64 = 300 << 20
    public static let firstVersion = PackageVersion(parts: [0, 0, 0, 1])

    /// The limits of the import as a whole; breaking one refuses the whole import.
    public static func checkAll(sizes: [Int64]) throws(FieldError) {
        guard !sizes.isEmpty else { throw FieldError("files", "Choose the .zip files to import (up to \(maxFiles)).") }
        guard sizes.count <= maxFiles else {
            throw FieldError("files", "An import takes at most \(maxFiles) files; \(sizes.count) were sent. Import them in several goes.")
        }
        // Compared part by part: the sizes come from outside.
        var total: Int64 = 0
        for s in sizes {
            guard s >= 0, s <= maxTotalBytes - total else {
                throw FieldError("files", "The files are larger than \(maxTotalBytes >> 20) MB together, the limit for one import.")
            }
            total += s
        }
    }

    /// The app a file name names: `{8 digits}.zip`, the ID not reserved.
    public static func appID(fromFileName name: String) throws(FieldError) -> AppID {
        let base = (name as NSString).lastPathComponent
        guard base.utf8.count == 12, base.lowercased().hasSuffix(".zip"), base.utf8.prefix(8).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw FieldError("file", "“\(base)” is not named after its app: name each file {8-digit app ID}.zip, like 20171228.zip.")
        }
        do { return try AppID(validating: String(base.dropLast(4)), field: "file") } catch let e as FieldError {
            throw FieldError("file", "“\(base)”: \(e.message)")
        } catch {
            throw FieldError("file", "“\(base)” is not named after its app.")
        }
    }

    /// Inspects each file in order. `facts` holds what is known of the existing apps the files
    /// name (an ID missing from it is a new app); `global` is the global resource location, if set.
    public static func inspect(_ files: [(name: String, path: String, size: Int64)], facts: [String: AppFacts],
                               global: GlobalLocation?) -> [ImportRow] {
        var seen: [String: String] = [:]   // app ID → the file that came first
        return files.map { file in
            var row = ImportRow(fileName: (file.name as NSString).lastPathComponent, appId: nil, newApp: false, type: nil,
                                version: nil, fileCount: 0, size: file.size, error: nil)
            do {
                let id = try appID(fromFileName: file.name)
                row.appId = id.rawValue
                if let first = seen[id.rawValue] {
                    throw FieldError("file", "A second file for app \(id.rawValue): an import takes one package per app (\(first) came first).")
                }
                seen[id.rawValue] = row.fileName
                let known = facts[id.rawValue]
                row.newApp = known == nil
                let zip = try ZipReader(path: file.path)
                let type = PackageLayout.inferredType(of: zip.entries, appID: id, globalHost: global?.host)
                row.type = type
                if let fixed = known?.fixedType, fixed != type {
                    throw FieldError("type", "App \(id.rawValue)'s packages are \(fixed.rawValue); this zip's layout is \(type.rawValue).")
                }
                let content = try PackageLayout.contentFiles(of: zip.entries, appID: id, type: type, global: global, mainUrl: nil)
                // Every byte is read once now (sizes and CRCs checked), so a damaged zip fails
                // here, on its own row, and not at submission.
                for f in content { try zip.read(f.entry) { _ in } }
                row.fileCount = content.count
                if let highest = known?.highestVersion {
                    guard let next = highest.nextPatch() else {
                        throw FieldError("version", "App \(id.rawValue)'s highest version is \(highest); its last part cannot go higher. Add this package on its own with a version you choose.")
                    }
                    row.version = next
                } else {
                    row.version = firstVersion
                }
            } catch let e as FieldError {
                row.error = e.message
            } catch let e as FieldErrors {
                row.error = e.description
            } catch {
                row.error = "The file could not be read as a zip."
            }
            return row
        }
    }
}
