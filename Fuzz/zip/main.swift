// libFuzzer target: the zip reader, the layout rules and the .amr builder on arbitrary bytes.
// Any trap (overflow, out-of-bounds) or sanitizer report is a finding; refusals are fine.
import CFuzzer
import CourierArchive
import CourierCore
import Foundation

let scratch = NSTemporaryDirectory() + "courier-fuzz-zip-\(getpid())"
let input = scratch + ".zip"
let output = scratch + ".amr"

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    let data = UnsafeRawPointer(bytes)
    let fd = open(input, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return 0 }
    _ = write(fd, data, count)
    close(fd)
    var limits = ZipLimits()
    limits.maxTotalUncompressed = 8 << 20   // keep each run fast; the arithmetic is the same
    guard let reader = try? ZipReader(path: input, limits: limits) else { return 0 }
    for entry in reader.entries { try? reader.read(entry) { _ in } }
    if let files = try? PackageLayout.contentFiles(of: reader.entries, appID: AppID(trusted: "20171228"), type: .normal,
                                                   global: nil, mainUrl: nil) {
        _ = try? AmrBuilder.build(from: reader, files: files, appID: "20171228", version: "1.0.0.1", signer: nil, to: output)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
