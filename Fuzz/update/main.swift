// libFuzzer target: the client update request's JSON reader (SPEC §4), the hot path's one
// parser. Beyond not trapping: whatever it accepts is JSON a general parser accepts too, within
// the limits it promises (500 apps, 256-byte fields), and the decision runs on it.
import CFuzzer
import Foundation
import CourierCore

let snapshot = TargetingSnapshot(apps: [
    AppTargets(appId: "20171228", tasks: [
        ReleaseTask(id: 1, appId: "20171228", version: PackageVersion(parts: [1, 0, 0, 1]), kind: .official, status: .releasing),
        ReleaseTask(id: 2, appId: "20171228", version: PackageVersion(parts: [1, 0, 0, 2]),
                    kind: .gray(.percentage(50), rules: [try! TargetingRule(field: .osVersion, op: .between, values: ["9", "17"])]),
                    status: .releasing),
    ], ranges: [PackageVersion(parts: [1, 0, 0, 1]): ClientRange(android: .init(min: "1", max: nil), ios: .init(min: "1", max: nil)),
                PackageVersion(parts: [1, 0, 0, 2]): ClientRange(android: .init(min: "10", max: nil), ios: nil)]),
], whitelists: [])

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    let body = UnsafeRawBufferPointer(start: bytes, count: count)
    guard let request = try? ClientRequest.parse(body) else { return 0 }
    precondition((try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) != nil,
                 "accepted what is not JSON")
    precondition(request.installed.count <= ClientRequest.maxApps)
    for field in [request.deviceId, request.userId, request.model, request.osVersion, request.network, request.city] {
        precondition(field.utf8.count <= 256)
    }
    let decisions = Targeting.decide(request, snapshot, now: Date()) { _, _, _ in true }
    precondition(decisions.allSatisfy { !$0.summary.isEmpty })
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
