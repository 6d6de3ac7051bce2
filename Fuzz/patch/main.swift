// libFuzzer target: a patch (SPEC §3) from a server the device does not trust, applied to an
// installed version's files: its zip, REMOVED.json, manifest and tar, through the rebuild of the
// new version's .amr. Any trap (overflow, out-of-bounds) or sanitizer report is a finding;
// refusals are fine.
import CFuzzer
import CourierClient
import Foundation

let scratch = NSTemporaryDirectory() + "courier-fuzz-patch-\(getpid())"
let base = scratch + "/base"
try? FileManager.default.createDirectory(atPath: base + "/www", withIntermediateDirectories: true)
FileManager.default.createFile(atPath: base + "/www/index.html", contents: Data("<h1>base</h1>".utf8))
FileManager.default.createFile(atPath: base + "/www/app.js", contents: Data("one()".utf8))
let patch = scratch + "/input.patch.amr"
let out = scratch + "/rebuilt.amr"

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes, FileManager.default.createFile(atPath: patch, contents: Data(bytes: bytes, count: count)) else { return 0 }
    _ = try? PatchApplier.rebuild(patch: patch, baseFolder: base, appId: "20171228", version: "0.0.0.2", maxBytes: 64 << 20, to: out)
    unlink(out)
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
