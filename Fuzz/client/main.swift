// libFuzzer target: what the device parses from a server it does not trust: an update answer,
// and a downloaded .amr (its zip, manifest, signatures and tar) through verification and install.
// Any trap (overflow, out-of-bounds) or sanitizer report is a finding; refusals are fine.
import CFuzzer
import CourierClient
import Foundation

let scratch = NSTemporaryDirectory() + "courier-fuzz-client-\(getpid())"
let amr = scratch + ".amr"

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    let data = Data(bytes: bytes, count: count)
    _ = try? UpdateAnswer.parse(data)
    guard FileManager.default.createFile(atPath: amr, contents: data) else { return 0 }
    if let store = try? PackageStore(root: scratch) {
        _ = try? store.verify(amr: amr, appId: "20171228", version: "0.0.0.1", keys: .none)
        _ = try? store.install(amr: amr, appId: "20171228", version: "0.0.0.1", keys: .none)
    }
    try? FileManager.default.removeItem(atPath: scratch)
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
