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
    let diffURL: String

    /// `to` against `from` (both of one app), showing at most `limit` files.
    static func make(_ services: Services, from: PackageRecord, to: PackageRecord, limit: Int = 50) async throws -> VersionChanges {
        let diff = try await services.store.diff(from: from.id ?? 0, to: to.id ?? 0)
        let patch = try await services.store.patch(to.appId, to.version, from: from.version)
        return VersionChanges(diff, from: from, to: to, patch: patch, bases: services.config.patchBases, limit: limit)
    }

    init(_ diff: PackageDiff, from: PackageRecord, to: PackageRecord, patch: PatchRecord?, bases: Int, limit: Int) {
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
