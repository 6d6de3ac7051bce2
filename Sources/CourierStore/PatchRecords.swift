import CourierCore
import Foundation

/// A patch from one version of an app (the base) to a later one (SPEC §3 "Patches"), built in
/// the background; `blob` nil records one that was built and is not worth offering (at least
/// half the full `.amr`), so it is never built again.
public struct PatchRecord: Codable, Sendable, Equatable {
    public var packageId: Int64
    public var basePackageId: Int64
    public var appId: String
    public var version: String
    public var base: String
    public var blob: String?
    public var size: Int64
    public var changedFiles: Int
    public var removedFiles: Int
    public var createdAt: Date

    public init(packageId: Int64, basePackageId: Int64, appId: String, version: String, base: String, blob: String?, size: Int64,
                changedFiles: Int, removedFiles: Int, createdAt: Date = Date()) {
        self.packageId = packageId; self.basePackageId = basePackageId; self.appId = appId; self.version = version; self.base = base
        self.blob = blob; self.size = size; self.changedFiles = changedFiles; self.removedFiles = removedFiles; self.createdAt = createdAt
    }

    /// Whether the update answer offers it (PatchRules: smaller than half of the full `.amr`).
    public func offered(fullSize: Int64) -> Bool { blob != nil && PatchRules.worthOffering(patchSize: size, fullSize: fullSize) }
}

/// What changed between two versions of an app, file by file (the reviewer's view of issue 18,
/// and `GET …/diff?from=`): by path, sizes in bytes.
public struct PackageDiff: Sendable, Encodable, Equatable {
    public init() {}

    /// The difference between two packages' files (path → size and SHA-256), in path order.
    package init(from old: [String: (size: Int64, sha256: String)], to new: [String: (size: Int64, sha256: String)]) {
        for (path, f) in new.sorted(by: { $0.key < $1.key }) {
            if let o = old[path] {
                if o.sha256 != f.sha256 { changed.append(.init(path: path, sizeFrom: o.size, sizeTo: f.size)) }
            } else {
                added.append(.init(path: path, size: f.size))
            }
        }
        for (path, o) in old.sorted(by: { $0.key < $1.key }) where new[path] == nil { removed.append(.init(path: path, size: o.size)) }
    }
    public struct File: Sendable, Encodable, Equatable {
        public let path: String
        public let size: Int64
        public init(path: String, size: Int64) { self.path = path; self.size = size }
    }
    public struct Changed: Sendable, Encodable, Equatable {
        public let path: String
        public let sizeFrom: Int64
        public let sizeTo: Int64
        public init(path: String, sizeFrom: Int64, sizeTo: Int64) { self.path = path; self.sizeFrom = sizeFrom; self.sizeTo = sizeTo }
    }
    public var added: [File] = []
    public var removed: [File] = []
    public var changed: [Changed] = []
    /// Bytes of the files a patch carries (added and changed), before its tar headers.
    public var newBytes: Int64 { added.reduce(0) { $0 + $1.size } + changed.reduce(0) { $0 + $1.sizeTo } }
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
}
