import CourierCore
import CourierStore
import Foundation

/// A task's release health on its page (SPEC §5): the counts by hour and the failure rate as
/// server-rendered SVG (no script), the gate's threshold and the moments the task was paused or
/// advanced marked on them, the hours as a table, and the ramp's timeline.
struct HealthView {
    struct Row {
        let at: String
        let checks: Int, downloads: Int, installs: Int, verifyFailed: Int, installFailed: Int, trialFailed: Int, rollbacks: Int
    }
    struct TimelineRow {
        let at: String
        let what: String
        let done: Bool
    }
    /// A moment on the charts: where (hours since the task's first hour) and what.
    struct Mark {
        let offset: Double
        let label: String
        let pause: Bool
    }

    let summary: String
    let gate: String?
    let countsSVG: String
    let rateSVG: String
    let rows: [Row]
    let hasRows: Bool
    let timeline: [TimelineRow]
    let hasTimeline: Bool
    let rampLine: String?
    let apiURL: String

    init(_ t: TaskRecord, hours stored: [HealthHour], history: [AuditRecord], now: Date = Date()) {
        let health = ReleaseHealth(hours: stored)
        let first = Int64(t.createdAt.timeIntervalSince1970 / 3600)
        let last = max(first, Int64(now.timeIntervalSince1970 / 3600), stored.last?.hour ?? first)
        let hours = health.filled(from: first, to: last)
        let startHour = hours.first?.hour ?? first
        let plan: RampPlan?, planUnreadable: Bool
        do { plan = try t.rampPlan(); planUnreadable = false } catch { plan = nil; planUnreadable = true }
        let threshold = plan?.threshold
        apiURL = Route.apiTaskHealth.path(String(t.id ?? 0))
        if let rate = health.failureRate, let low = health.failureRateLow {
            summary = "\(ReleaseHealth.failuresWords(health.failures, of: health.trials)): a failure rate of \(Self.percent(rate)) % "
                + "(95 % Wilson lower bound \(Self.percent(low)) %)."
        } else {
            summary = "No device has installed or failed to install this version yet."
        }
        if let threshold {
            let judged = health.since(plan?.gateBaseline)
            switch HealthGate.verdict(judged, threshold: threshold) {
            case .tooFew(let n):
                gate = "Health gate: pauses the ramp when the lower bound is above \(RampPlan.percent(threshold)) %, once \(HealthGate.minimumTrials) installs and failures are seen (\(n) so far)."
            case .healthy(let low):
                gate = "Health gate: passing (lower bound \(Self.percent(low)) %, threshold \(RampPlan.percent(threshold)) %)."
            case .pause(let why):
                gate = "Health gate: failing. \(why.prefix(1).uppercased() + why.dropFirst())."
            }
        } else {
            gate = nil
        }
        if let plan {
            timeline = plan.timeline(start: t.createdAt, current: t.percentage ?? 0).enumerated().map { i, r in
                TimelineRow(at: displayDate.string(from: r.at) + " UTC", what: r.what, done: i == 0 || r.done)
            }
            rampLine = plan.next == nil ? "Every step was taken." : "\(plan.done) of \(plan.steps.count) steps taken; the next is due "
                + (plan.nextDue.map { displayDate.string(from: $0) + " UTC" } ?? "?") + (t.taskStatus == .releasing ? "." : ", once the task is releasing again.")
        } else {
            timeline = []
            rampLine = planUnreadable ? "The ramp's schedule cannot be read by this version of Courier: it takes no step." : nil
        }
        hasTimeline = !timeline.isEmpty
        rows = hours.reversed().filter { $0.checks + $0.downloads + $0.installs + $0.failures + $0.rollbacks > 0 }.prefix(48).map { h in
            Row(at: displayDate.string(from: h.start), checks: h.checks, downloads: h.downloads, installs: h.installs,
                verifyFailed: h.verifyFailed, installFailed: h.installFailed, trialFailed: h.trialFailed, rollbacks: h.rollbacks)
        }
        hasRows = !rows.isEmpty
        let marks = Self.marks(history, since: Date(timeIntervalSince1970: TimeInterval(startHour) * 3600))
        countsSVG = Chart(id: "health-counts", title: "Devices per hour", hours: hours.count, startHour: startHour, marks: marks,
                          series: [
                            .init(name: "checked", colour: "#6b7280", values: hours.map { Double($0.checks) }),
                            .init(name: "downloaded", colour: "#2563eb", values: hours.map { Double($0.downloads) }),
                            .init(name: "installed", colour: "#16a34a", values: hours.map { Double($0.installs) }),
                            .init(name: "failed", colour: "#dc2626", values: hours.map { Double($0.failures) }),
                            .init(name: "rolled back", colour: "#d97706", values: hours.map { Double($0.rollbacks) }),
                          ], threshold: nil, unit: "").svg
        // The rate so far at the end of each hour (nil before any install or failure).
        var failures = 0, trials = 0
        var rate: [Double?] = [], low: [Double?] = []
        for h in hours {
            failures += h.failures; trials += h.installs + h.failures
            rate.append(trials == 0 ? nil : Double(failures) / Double(trials) * 100)
            low.append(trials == 0 ? nil : Wilson.bounds(failures, of: trials).low * 100)
        }
        rateSVG = Chart(id: "health-rate", title: "Failure rate so far (%)", hours: hours.count, startHour: startHour, marks: marks,
                        series: [.init(name: "failure rate", colour: "#dc2626", values: rate),
                                 .init(name: "95 % lower bound", colour: "#7c3aed", values: low, dashed: true)],
                        threshold: threshold, unit: "%").svg
    }

    static func percent(_ fraction: Double) -> String { String(format: "%.1f", fraction * 100) }

    /// An audit row's time (ISO 8601, UTC, with milliseconds).
    static func auditTime(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }

    /// Pauses, resumptions and changes of share from the task's history.
    static func marks(_ history: [AuditRecord], since start: Date) -> [Mark] {
        history.compactMap { r in
            guard let at = Self.auditTime(r.at) else { return nil }
            let d = AuditWords.detail(r)
            let label: String, pause: Bool
            switch r.action {
            case "task.pause": (label, pause) = ("paused", true)
            case "task.resume": (label, pause) = ("resumed", false)
            case "task.promote": (label, pause) = ("promoted", false)
            case "task.rollback": (label, pause) = ("rolled back", true)
            case "task.percentage": (label, pause) = ("→ " + (Double(d["to"] ?? "").map { RampPlan.percent($0) } ?? "?") + " %", false)
            case "task.ramp" where d["gate"] != nil: (label, pause) = ("paused by gate", true)
            case "task.ramp" where d["gateBaseline"] != nil: return nil
            case "task.ramp": (label, pause) = ("step " + (d["step"].map { String($0.prefix(while: { $0 != " " })) } ?? "?")
                                                + (Double(d["to"] ?? "").map { " → \(RampPlan.percent($0)) %" } ?? ""), false)
            default: return nil
            }
            return Mark(offset: at.timeIntervalSince(start) / 3600, label: label, pause: pause)
        }
    }

    /// A line chart over the task's hours, as SVG text: axes with labels, a line per series, an
    /// optional dashed threshold, and the marks as vertical lines.
    struct Chart {
        struct Series {
            let name: String
            let colour: String
            let values: [Double?]
            var dashed = false
            init(name: String, colour: String, values: [Double?], dashed: Bool = false) {
                self.name = name; self.colour = colour; self.values = values; self.dashed = dashed
            }
        }
        let id: String
        let title: String
        let hours: Int
        /// The first hour shown (hours since 1970), for the axis's clock times.
        let startHour: Int64
        let marks: [Mark]
        let series: [Series]
        let threshold: Double?
        let unit: String

        static let width = 680.0, height = 240.0
        static let left = 48.0, right = 16.0, top = 34.0, bottom = 30.0

        var svg: String {
            let w = Self.width, h = Self.height
            let plotW = w - Self.left - Self.right, plotH = h - Self.top - Self.bottom
            // Hour i is the interval [i, i + 1): its values sit in its middle, and a moment
            // (a pause at 10:36) sits where it happened within its hour.
            let span = Double(max(1, hours))
            let highest = max(series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0, threshold.map { $0 * 1.25 } ?? 0, unit == "%" ? 1 : 4)
            // Counts are labelled in whole numbers: four steps of 1, 2 or 5 times a power of ten.
            let top = unit == "%" ? Self.niceCeiling(highest) : 4 * Self.niceCeiling(highest / 4, steps: [1, 2, 5, 10])
            func x(_ offset: Double) -> Double { Self.left + plotW * min(max(offset, 0), span) / span }
            func y(_ v: Double) -> Double { Self.top + plotH * (1 - v / top) }
            func f(_ v: Double) -> String { String(format: "%.1f", v) }
            var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"\(id)\" class=\"chart\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-labelledby=\"\(id)-title\">"
            out += "<title id=\"\(id)-title\">\(escape(title))</title>"
            out += "<rect x=\"0\" y=\"0\" width=\"\(Int(w))\" height=\"\(Int(h))\" fill=\"#fff\"/>"
            // Legend.
            var lx = Self.left
            for s in series {
                out += "<line x1=\"\(f(lx))\" y1=\"12\" x2=\"\(f(lx + 16))\" y2=\"12\" stroke=\"\(s.colour)\" stroke-width=\"2.5\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "")/>"
                out += "<text x=\"\(f(lx + 20))\" y=\"16\" font-size=\"11\" fill=\"#374151\">\(escape(s.name))</text>"
                lx += 28 + Double(s.name.count) * 6.2
            }
            if let threshold {
                out += "<line x1=\"\(f(lx))\" y1=\"12\" x2=\"\(f(lx + 16))\" y2=\"12\" stroke=\"#111827\" stroke-width=\"1.5\" stroke-dasharray=\"2 2\"/>"
                out += "<text x=\"\(f(lx + 20))\" y=\"16\" font-size=\"11\" fill=\"#374151\">threshold \(escape(RampPlan.percent(threshold))) %</text>"
            }
            // Axes, grid and labels.
            for i in 0...4 {
                let v = top * Double(i) / 4
                out += "<line x1=\"\(f(Self.left))\" y1=\"\(f(y(v)))\" x2=\"\(f(w - Self.right))\" y2=\"\(f(y(v)))\" stroke=\"#e5e7eb\"/>"
                out += "<text x=\"\(f(Self.left - 6))\" y=\"\(f(y(v) + 4))\" font-size=\"10\" text-anchor=\"end\" fill=\"#4b5563\">\(Self.label(v))\(unit)</text>"
            }
            out += "<line x1=\"\(f(Self.left))\" y1=\"\(f(Self.top))\" x2=\"\(f(Self.left))\" y2=\"\(f(Self.top + plotH))\" stroke=\"#374151\"/>"
            out += "<line x1=\"\(f(Self.left))\" y1=\"\(f(Self.top + plotH))\" x2=\"\(f(w - Self.right))\" y2=\"\(f(Self.top + plotH))\" stroke=\"#374151\"/>"
            let step = Self.tickStep(hours)
            var tick = 0
            while tick <= max(hours, 1) {
                out += "<line x1=\"\(f(x(Double(tick))))\" y1=\"\(f(Self.top + plotH))\" x2=\"\(f(x(Double(tick))))\" y2=\"\(f(Self.top + plotH + 4))\" stroke=\"#374151\"/>"
                out += "<text x=\"\(f(x(Double(tick))))\" y=\"\(f(Self.top + plotH + 16))\" font-size=\"10\" text-anchor=\"middle\" fill=\"#4b5563\">\(Self.clock(startHour + Int64(tick), first: tick == 0))</text>"
                tick += step
            }
            out += "<text x=\"\(f(w - Self.right))\" y=\"\(f(h - 2))\" font-size=\"10\" text-anchor=\"end\" fill=\"#6b7280\">hour (UTC), from the hour the task began</text>"
            if let threshold {
                out += "<line class=\"threshold\" x1=\"\(f(Self.left))\" y1=\"\(f(y(threshold)))\" x2=\"\(f(w - Self.right))\" y2=\"\(f(y(threshold)))\" stroke=\"#111827\" stroke-width=\"1.5\" stroke-dasharray=\"2 2\"/>"
            }
            // Marks: pauses red, advances green, each labelled at the top of the plot.
            for (i, m) in marks.enumerated() where m.offset >= -0.01 && m.offset <= span {
                let mx = x(m.offset), colour = m.pause ? "#b91c1c" : "#15803d"
                out += "<line class=\"mark \(m.pause ? "pause" : "advance")\" x1=\"\(f(mx))\" y1=\"\(f(Self.top))\" x2=\"\(f(mx))\" y2=\"\(f(Self.top + plotH))\" stroke=\"\(colour)\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>"
                out += "<text x=\"\(f(mx + 3))\" y=\"\(f(Self.top + 10 + Double(i % 3) * 11))\" font-size=\"10\" fill=\"\(colour)\">\(escape(m.label))</text>"
            }
            // Lines (a single hour is a dot).
            for s in series {
                let points = s.values.enumerated().compactMap { i, v in v.map { (x(Double(i) + 0.5), y($0)) } }
                guard !points.isEmpty else { continue }
                if points.count <= 48 {   // few hours: each one a dot, so a single hour reads too
                    for p in points {
                        out += "<circle cx=\"\(f(p.0))\" cy=\"\(f(p.1))\" r=\"3\" fill=\"\(s.colour)\"><title>\(escape(s.name))</title></circle>"
                    }
                }
                if points.count > 1 {
                    out += "<polyline class=\"series\" fill=\"none\" stroke=\"\(s.colour)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "") points=\""
                        + points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ") + "\"><title>\(escape(s.name))</title></polyline>"
                }
            }
            out += "</svg>"
            return out
        }

        /// "14:00", or "12-06 00:00" at midnight and for the first label.
        static func clock(_ hour: Int64, first: Bool) -> String {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = first || hour % 24 == 0 ? "MM-dd HH:mm" : "HH:mm"
            return f.string(from: Date(timeIntervalSince1970: TimeInterval(hour) * 3600))
        }

        /// The smallest of `steps` × 10ⁿ at or above `v`.
        static func niceCeiling(_ v: Double, steps: [Double] = [1, 2, 2.5, 5, 10]) -> Double {
            guard v > 0 else { return 1 }
            let magnitude = pow(10, floor(log10(v)))
            for m in steps where m * magnitude >= v { return m * magnitude }
            return 10 * magnitude
        }

        static func label(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(format: "%.1f", v) }

        /// Hours between x labels: at most about ten labels.
        static func tickStep(_ hours: Int) -> Int {
            for s in [1, 2, 3, 6, 12, 24, 48, 72, 168] where hours / s <= 10 { return s }
            return 168
        }

        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
    }
}
