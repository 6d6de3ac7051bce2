// libFuzzer target: the JSON API's release-task body (SPEC §5, §8) read into a draft and checked.
// Beyond not trapping: a draft either gives a task kind that agrees with what it asked for, or
// field errors that each name a field and say something; and the rules it keeps hold or fail
// for a client without trapping. Its ramp (issue 21), when it asks for one, goes only up, in at
// most 10 steps of 1 minute to 30 days, a promotion last, and reads back as it was written.
import CFuzzer
import Foundation
import CourierCore

let now = Date(timeIntervalSince1970: 1_795_000_000)
let client = ClientRequest(platform: .android, clientVersion: try! ClientVersion(validating: "10.2", field: "v"), deviceId: "d",
                           userId: "u", model: "Pixel", osVersion: "14.1", network: "WIFI", city: "Hangzhou")

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    guard let draft = try? TaskDraft(json: Data(bytes: bytes, count: count)) else { return 0 }
    var checked: ReleaseTask.Kind?
    defer {
        do {
            // (A draft refused for its other fields may still have a well-formed ramp: the task
            // is refused for those, so only a checked task's ramp is held to its start.)
            if let plan = try draft.validateRamp(checked, now: now), let checked {
                guard case .gray(.percentage(let start), _) = checked else { preconditionFailure("a ramp on a task that is not a percentage") }
                precondition(!plan.steps.isEmpty && plan.steps.count <= RampPlan.maxSteps)
                var last = start
                for (i, step) in plan.steps.enumerated() {
                    precondition(step.afterMinutes >= 1 && step.afterMinutes <= RampPlan.maxDelayMinutes)
                    if step.promote { precondition(i == plan.steps.count - 1 && step.percentage == nil) } else {
                        precondition((step.percentage ?? 0) > last && (step.percentage ?? 0) <= 100, "a ramp that does not go up")
                        last = step.percentage ?? 0
                    }
                }
                precondition(plan.threshold >= 0.1 && plan.threshold <= 100)
                precondition((try? RampPlan.stored(plan.json)) == plan, "a ramp does not read back as written")
            }
        } catch {
            precondition(!error.errors.isEmpty && error.errors.allSatisfy { !$0.message.isEmpty }, "a ramp's refusal says nothing")
        }
    }
    do {
        let kind = try draft.validate(now: now, whitelists: [1, 2, 3])
        checked = kind
        switch kind {
        case .official:
            precondition(draft.type == "official")
        case .gray(let mode, let rules):
            precondition(draft.type == "gray")
            precondition(rules.count <= 20)
            switch mode {
            case .whitelist(let ids): precondition(draft.mode == "whitelist" && !ids.isEmpty && ids.allSatisfy { [1, 2, 3].contains($0) })
            case .percentage(let p): precondition(draft.mode == "percentage" && p >= 0.01 && p <= 100)
            case .timeWindow(let end, let n):
                precondition(draft.mode == "timeWindow" && end > now && end.timeIntervalSince(now) <= TaskDraft.maxWindow && n >= 1)
            }
            for r in rules {
                _ = r.holds(for: client)
                precondition(!r.description.isEmpty)
            }
        }
    } catch {
        precondition(!error.errors.isEmpty && error.errors.allSatisfy { !$0.message.isEmpty }, "a refusal says nothing")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
