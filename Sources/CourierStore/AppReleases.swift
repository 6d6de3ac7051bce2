import CourierCore
import Foundation

/// What an app's tasks amount to for the people in the console: the task each package's status
/// comes from, what is live officially, what runs as grayscale, what waits for a reviewer.
/// Built from the app's tasks (`Store.tasks(of:)`), newest first.
public struct AppReleases: Sendable {
    public let tasks: [TaskRecord]

    public init(_ tasks: [TaskRecord]) {
        self.tasks = tasks.sorted { ($0.id ?? 0) > ($1.id ?? 0) }
    }

    /// The task a package's status comes from (SPEC §5): its newest, passing over tasks that
    /// ended without ever releasing (rejected, withdrawn) when an earlier one did release.
    public static func shown(_ newestFirst: [TaskRecord]) -> TaskRecord? {
        newestFirst.first { !($0.neverReleased && $0.taskStatus.hasEnded) } ?? newestFirst.first
    }

    public func current(of packageId: Int64?) -> TaskRecord? { Self.shown(tasks.filter { $0.packageId == packageId }) }
    public func of(package packageId: Int64?) -> [TaskRecord] { tasks.filter { $0.packageId == packageId } }

    /// The official release clients are offered now: the highest version of an official task
    /// that released (releasing or finished) and was not rolled back; paused ones offer nothing.
    public var liveOfficial: TaskRecord? {
        tasks.filter { $0.isOfficial && $0.offersOfficially }.max { $0.packageVersion < $1.packageVersion }
    }

    /// Grayscale releases under way (releasing or paused), newest first.
    public var runningGray: [TaskRecord] {
        tasks.filter { $0.taskType == .gray && [.releasing, .paused].contains($0.taskStatus) }
    }

    public var awaitingReviewer: [TaskRecord] { tasks.filter { $0.approvalState == .awaiting } }

    /// The official release offered now above `t`'s version: the one a client in range gets
    /// instead of `t` (and a client whose `t` was rolled back is sent to).
    public func officialAbove(_ t: TaskRecord) -> TaskRecord? {
        liveOfficial.flatMap { $0.id != t.id && $0.packageVersion > t.packageVersion ? $0 : nil }
    }

    /// The highest official release offered now below `t`'s version (where a rollback of `t`
    /// sends its clients when nothing is above).
    public func officialBelow(_ t: TaskRecord) -> TaskRecord? {
        tasks.filter { $0.offersOfficially && $0.packageVersion < t.packageVersion }.max { $0.packageVersion < $1.packageVersion }
    }
}

extension TaskRecord {
    public var packageVersion: PackageVersion { PackageVersion(parts: version.split(separator: ".").compactMap { Int($0) }) }

    /// An official task that clients are offered: it released and was neither paused nor rolled back.
    public var offersOfficially: Bool {
        isOfficial && !rolledBack && !neverReleased && [.releasing, .finished].contains(taskStatus)
    }

    /// The status a person reads for this task (the package's words, "Rolled back" when it was).
    public var statusLabel: String { rolledBack ? "Rolled back" : packageStatus.label }
    public var statusKey: String { rolledBack ? "rejected" : packageStatus.rawValue }

}
