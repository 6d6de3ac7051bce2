// libFuzzer target: version, client range, domain, main URL and extended-info rules of
// SPEC §2 on arbitrary text. Checks round trips and ordering as well as absence of traps.
import CFuzzer
import Foundation
import CourierCore

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    let data = UnsafeRawPointer(bytes)
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    func line(_ i: Int) -> String { i < lines.count ? lines[i] : "" }

    for l in lines.prefix(4) {
        if let v = try? PackageVersion(validating: l) {
            let again = try? PackageVersion(validating: v.description)
            precondition(again == v, "a package version does not survive its own description")
            precondition(v.parts.allSatisfy { (0...99999).contains($0) })
            _ = v.nextPatch()
        }
        if let c = try? ClientVersion(validating: l, field: "v"), let d = try? ClientVersion(validating: line(1), field: "v") {
            precondition((c < d) != (d < c) || c == d, "client versions are not totally ordered")
        }
        _ = try? DomainName.validate(l, field: "virtualDomain")
        _ = try? AppID(validating: l)
        _ = try? MainURL.validate(l)
        _ = try? ExtendedInfo.validate(l)
        _ = try? AppKey.validate(l)
    }
    // Ramp steps as the form sends them (issue 21), and a stored plan: read or refused, never a trap.
    if let steps = try? RampPlan.parse(lines: text) {
        precondition(steps.count <= RampPlan.maxSteps && steps.allSatisfy { $0.afterMinutes >= 0 && $0.afterMinutes <= 525_600 })
    }
    if let plan = try? RampPlan.stored(text) {
        precondition(plan.steps.count <= RampPlan.maxSteps)
        _ = plan.timeline(start: Date(timeIntervalSince1970: 0), current: 1)
    }
    // Whitelist expressions (issue 15): whatever compiles matches in linear time.
    if let pattern = try? SafePattern(line(0)) {
        for subject in [line(1), line(2), String(repeating: line(1), count: 8) + "!"] {
            var steps = 0
            _ = pattern.matchesWhole(subject, steps: &steps)
            precondition(steps <= pattern.stepBound(scalars: subject.unicodeScalars.count), "a whitelist expression exceeded its step bound")
        }
    }
    var draft = PackageDraft()
    draft.version = line(0)
    draft.type = line(1)
    draft.android = !line(2).isEmpty
    draft.androidMin = line(2)
    draft.androidMax = line(3)
    draft.ios = !line(4).isEmpty
    draft.iosMin = line(4)
    draft.iosMax = line(5)
    draft.mainUrl = line(6)
    draft.extendInfo = line(7)
    let facts = AppFacts(fixedType: nil, highestVersion: try? PackageVersion(validating: line(8)))
    if let settings = try? draft.validate(for: facts), let highest = facts.highestVersion {
        precondition(highest < settings.version, "a version that does not grow was accepted")
    }
    if let range = try? ClientRange.validate(android: true, androidMin: line(2), androidMax: line(3), ios: true,
                                              iosMin: line(4), iosMax: line(5)),
       let v = try? ClientVersion(validating: line(9), field: "v") {
        _ = range.admits(.android, v)
        _ = range.admits(.ios, v)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
