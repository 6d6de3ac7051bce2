import Foundation

// Release health (SPEC §5): what devices reported for a task, hour by hour, the failure rate
// with its Wilson bound, the gate that pauses a ramp, and the ramp's steps.

/// The devices that reported each kind of event in one hour of a task (each device once per
/// kind and hour), and the devices that checked (an estimate: `HyperLogLog`).
public struct HealthHour: Sendable, Equatable {
    /// Hours since 1970 (UTC).
    public var hour: Int64
    public var checks = 0, downloads = 0, installs = 0, verifyFailed = 0, installFailed = 0, trialFailed = 0, rollbacks = 0

    public init(hour: Int64) { self.hour = hour }

    public var start: Date { Date(timeIntervalSince1970: TimeInterval(hour) * 3600) }
    public var failures: Int { verifyFailed + installFailed + trialFailed }

    /// Adds a stored counter by its event name (`checked`, `download_ok`, …); unknown names are
    /// left out (a newer version's kinds).
    public mutating func add(_ event: String, _ count: Int) {
        switch event {
        case "checked": checks += count
        case "download_ok": downloads += count
        case "install_ok": installs += count
        case "verify_failed": verifyFailed += count
        case "install_failed": installFailed += count
        case "trial_failed": trialFailed += count
        case "rollback": rollbacks += count
        default: break
        }
    }

    /// The event names counted by the hour.
    public static let events: Set = ["checked", "download_ok", "install_ok", "verify_failed", "install_failed", "trial_failed", "rollback"]
}

/// A task's health over its hours: failures ÷ (installs + failures) and its 95 % Wilson bounds.
public struct ReleaseHealth: Sendable, Equatable {
    public let hours: [HealthHour]
    public let installs: Int
    public let failures: Int

    public init(hours: [HealthHour]) {
        self.hours = hours.sorted { $0.hour < $1.hour }
        installs = hours.reduce(0) { $0 + $1.installs }
        failures = hours.reduce(0) { $0 + $1.failures }
    }

    init(hours: [HealthHour], installs: Int, failures: Int) { self.hours = hours; self.installs = installs; self.failures = failures }

    /// What came after a baseline (what a person accepted when resuming the task).
    public func since(_ baseline: RampPlan.Baseline?) -> ReleaseHealth {
        guard let baseline else { return self }
        return ReleaseHealth(hours: hours, installs: max(0, installs - baseline.installs), failures: max(0, failures - baseline.failures))
    }

    public var trials: Int { installs + failures }
    /// "1 failure in 3 installs and failures", counted right for one.
    public static func failuresWords(_ failures: Int, of trials: Int) -> String {
        "\(failures) failure\(failures == 1 ? "" : "s") in \(trials) \(trials == 1 ? "install or failure" : "installs and failures")"
    }
    /// nil before anything was installed or failed.
    public var failureRate: Double? { trials == 0 ? nil : Double(failures) / Double(trials) }
    public var failureRateLow: Double? { trials == 0 ? nil : Wilson.bounds(failures, of: trials).low }

    /// The hours from `first` to `last` with none missing (an hour nobody reported is zeros), at
    /// most `limit` of them, the newest kept.
    public func filled(from first: Int64, to last: Int64, limit: Int = ReleaseHealth.maxHours) -> [HealthHour] {
        guard last >= first else { return [] }
        let start = max(first, last - Int64(limit) + 1)
        let byHour = Dictionary(hours.map { ($0.hour, $0) }, uniquingKeysWith: { a, _ in a })
        return (start...last).map { byHour[$0] ?? HealthHour(hour: $0) }
    }

    /// Hours of counters kept per task (30 days): storage stays bounded however long a task runs.
    public static let maxHours = 720
}

/// The Wilson score interval of a proportion (z = 1.96 for 95 %).
public enum Wilson {
    public static func bounds(_ successes: Int, of trials: Int, z: Double = 1.959_963_984_540_054) -> (low: Double, high: Double) {
        guard trials > 0 else { return (0, 1) }
        let n = Double(trials), p = Double(min(max(successes, 0), trials)) / n
        let z2 = z * z
        let centre = p + z2 / (2 * n)
        let margin = z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        let denominator = 1 + z2 / n
        return (max(0, (centre - margin) / denominator), min(1, (centre + margin) / denominator))
    }
}

/// The health gate of a ramp (SPEC §5): pause when the failure rate's Wilson lower bound is above
/// the threshold, once enough installs and failures were seen.
public enum HealthGate {
    public static let defaultThreshold = 5.0
    public static let minimumTrials = 50

    public enum Verdict: Sendable, Equatable {
        /// Too few installs and failures to judge: the ramp goes on.
        case tooFew(trials: Int)
        case healthy(low: Double)
        /// Pause, with the sentence that says why (for the history and the audit log).
        case pause(String)
    }

    /// `threshold` in percent.
    public static func verdict(_ health: ReleaseHealth, threshold: Double) -> Verdict {
        let trials = health.trials
        guard trials >= minimumTrials, let low = health.failureRateLow, let rate = health.failureRate else { return .tooFew(trials: trials) }
        guard low * 100 > threshold else { return .healthy(low: low) }
        return .pause("\(ReleaseHealth.failuresWords(health.failures, of: trials)), a failure rate of \(percent(rate * 100)) %; "
                      + "its 95 % lower bound \(percent(low * 100)) % is above the threshold of \(percent(threshold)) %")
    }

    static func percent(_ x: Double) -> String { String(format: "%.1f", x) }
}
