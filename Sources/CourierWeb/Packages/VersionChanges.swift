import CourierCore
import CourierStore

/// What changed between two versions of an app, for a reviewer (issue 18): files added,
/// removed and changed with their sizes, and what a device on the older version downloads (the
/// patch, or the whole package).
struct VersionChanges {
    struct Row {
        let change: String
        let path: String
        let size: String
    }

    let from: String
    let to: String
    let summary: String
    let rows: [Row]
    let hasRows: Bool
    /// Rows past those shown.
    let more: Int
    let hasMore: Bool
    let download: String
    /// Every patch to the newer version, with its size and share ("From 1.0.0.1: 3.6 KB (0.6 %)"), or nil.
    let patchList: String?
    let diffURL: String

    /// `to` against `from` (both of one app), showing at most `limit` files.
    static func make(_ services: Services, from: PackageRecord, to: PackageRecord, limit: Int = 50) async throws -> VersionChanges {
        let diff = try await services.store.diff(from: from.id ?? 0, to: to.id ?? 0)
        let patches = try await services.store.patches(of: to.appId).filter { $0.version == to.version }
        return VersionChanges(diff, from: from, to: to, patches: patches, bases: services.config.patchBases, limit: limit)
    }

    init(_ diff: PackageDiff, from: PackageRecord, to: PackageRecord, patches: [PatchRecord], bases: Int, limit: Int) {
        let patch = patches.first { $0.base == from.version }
        let offered = patches.filter { $0.offered(fullSize: to.size) }.sorted { $0.base > $1.base }
        patchList = offered.isEmpty ? nil : "Patches to \(to.version): " + offered.map {
            String(format: "from %@, %@ (%.1f %%)", $0.base, humanSize($0.size), PatchRules.share(patchSize: $0.size, fullSize: to.size))
        }.joined(separator: "; ") + "."
        self.from = from.version
        self.to = to.version
        func files(_ n: Int) -> String { "\(n) file\(n == 1 ? "" : "s")" }
        summary = diff.isEmpty ? "\(to.version) holds the same files as \(from.version)."
            : "\(files(diff.changed.count)) changed, \(diff.added.count) added, \(diff.removed.count) removed: "
                + "\(humanSize(diff.newBytes)) of new or changed content."
        let all = diff.changed.map { Row(change: "Changed", path: $0.path, size: "\(humanSize($0.sizeFrom)) → \(humanSize($0.sizeTo))") }
            + diff.added.map { Row(change: "Added", path: $0.path, size: humanSize($0.size)) }
            + diff.removed.map { Row(change: "Removed", path: $0.path, size: humanSize($0.size)) }
        rows = Array(all.prefix(limit))
        hasRows = !rows.isEmpty
        more = all.count - rows.count
        hasMore = more > 0
        let full = humanSize(to.size)
        if let patch, patch.offered(fullSize: to.size) {
            download = String(format: "A device on %@ downloads a %@ patch instead of the full %@ (%.1f %% of it).",
                              from.version, humanSize(patch.size), full, PatchRules.share(patchSize: patch.size, fullSize: to.size))
        } else if let patch {
            download = "A device on \(from.version) downloads the full \(full): a patch would be \(humanSize(patch.size)), more than half of it."
        } else {
            download = "No patch from \(from.version): a device on it downloads the full \(full). Patches are built in the background for "
                + "versions being released, from the \(bases) highest earlier versions that reached clients."
        }
        diffURL = Route.versionDiff.path([to.appId], query: [("from", from.version), ("to", to.version)])
    }
}

/// The version-diff page: any two versions of an app, picked.
struct VersionDiffPage {
    struct Choice {
        let version: String
        let selected: Bool
    }
    let chrome: Chrome
    let appId: String
    let appName: String
    let appURL: String
    let action: String
    let fromChoices: [Choice]
    let toChoices: [Choice]
    let changes: VersionChanges?
    let problem: String?
}
