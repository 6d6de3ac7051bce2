// libFuzzer target: the multipart parser, fed in chunks whose size the first byte chooses.
// Checks that a part's bytes come out whole whatever the chunking.
import CFuzzer
import Foundation
import CourierArchive
import CourierCore

struct Collect: MultipartSink {
    var parts: [(name: String, bytes: [UInt8])] = []
    var open = false
    mutating func begin(name: String, filename: String?) throws {
        precondition(!open, "a part began inside another")
        open = true
        parts.append((name, []))
    }
    mutating func data(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(open, "data outside a part")
        parts[parts.count - 1].bytes += bytes
    }
    mutating func end() throws {
        precondition(open, "a part ended twice")
        open = false
    }
}

func parse(_ body: UnsafeRawBufferPointer, chunk: Int) -> [(name: String, bytes: [UInt8])]? {
    var parser = MultipartParser(boundary: "B")
    var sink = Collect()
    do {
        var offset = 0
        while offset < body.count {
            let n = min(chunk, body.count - offset)
            try parser.feed(UnsafeRawBufferPointer(rebasing: body[offset..<(offset + n)]), into: &sink)
            offset += n
        }
        try parser.finish(into: &sink)
        return sink.parts
    } catch {
        return nil
    }
}

func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes else { return 0 }
    let data = UnsafeRawPointer(bytes)
    guard count > 0 else { return 0 }
    let chunk = Int(data.load(as: UInt8.self)) + 1
    let body = UnsafeRawBufferPointer(start: data + 1, count: count - 1)
    let whole = parse(body, chunk: max(1, body.count))
    let pieces = parse(body, chunk: chunk)
    // Chunking must not change the outcome (except where a limit counts buffered bytes).
    if let whole, let pieces {
        precondition(whole.count == pieces.count && zip(whole, pieces).allSatisfy { $0.name == $1.name && $0.bytes == $1.bytes },
                     "chunking changed the parts")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzz($0, $1) }))
