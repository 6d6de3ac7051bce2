import CZlib
import Foundation

/// Writes zip archives byte by byte, including the broken and hostile ones a real tool
/// would refuse to make: tests need both.
public struct ZipBuilder {
    public struct Entry {
        public var name: String
        public var data: [UInt8]
        public var method: UInt16 = 8
        public var flags: UInt16 = 0
        public var madeBy: UInt16 = 0x031E            // Unix, zip 3.0
        public var unixMode: UInt32 = 0o100644
        public var declaredCRC: UInt32?
        public var declaredSize: UInt32?
        /// Central-directory overrides, for crafted ZIP64 entries.
        public var declaredCompressedSize: UInt32?
        public var declaredOffset: UInt32?
        public var centralExtra: [UInt8] = []
        /// Replaces the compressed bytes (e.g. a deflate stream cut short).
        public var payload: ((_ compressed: [UInt8]) -> [UInt8])?

        public init(_ name: String, _ data: [UInt8], method: UInt16 = 8) {
            self.name = name
            self.data = data
            self.method = method
        }
        public init(_ name: String, _ text: String, method: UInt16 = 8) { self.init(name, Array(text.utf8), method: method) }
        public static func directory(_ name: String) -> Entry {
            var e = Entry(name, [], method: 0)
            e.unixMode = 0o040755
            return e
        }
    }

    public var entries: [Entry]
    public init(_ entries: [Entry]) { self.entries = entries }

    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for e in entries {
            let crc = UInt32(crc32(0, e.data, uInt(e.data.count)))
            var payload = e.method == 8 ? Self.deflate(e.data) : e.data
            if let p = e.payload { payload = p(payload) }
            let offset = UInt32(out.count)
            let name = Array(e.name.utf8)
            let usize = e.declaredSize ?? UInt32(e.data.count)
            let fields = le16(20) + le16(e.flags) + le16(e.method) + le16(0) + le16(0x21)
                + le32(e.declaredCRC ?? crc) + le32(UInt32(payload.count)) + le32(usize) + le16(name.count) + le16(0)
            out += le32(0x0403_4b50) + fields + name + payload
            let centralFields = le16(20) + le16(e.flags) + le16(e.method) + le16(0) + le16(0x21)
                + le32(e.declaredCRC ?? crc) + le32(e.declaredCompressedSize ?? UInt32(payload.count)) + le32(usize)
                + le16(name.count) + le16(e.centralExtra.count)
            central += le32(0x0201_4b50) + le16(e.madeBy) + centralFields + le16(0) + le16(0) + le16(0)
                + le32(e.unixMode << 16) + le32(e.declaredOffset ?? offset) + name + e.centralExtra
        }
        let cdOffset = UInt32(out.count)
        out += central
        out += le32(0x0605_4b50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count)
            + le32(UInt32(central.count)) + le32(cdOffset) + le16(0)
        return out
    }

    public func write(to path: String) throws { try Data(bytes()).write(to: URL(fileURLWithPath: path)) }

    public static func deflate(_ data: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        deflateInit2_(&stream, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(data.count))) + 16)
        var input = data
        let produced = input.withUnsafeMutableBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o -> Int in
                stream.next_in = inp.baseAddress
                stream.avail_in = uInt(inp.count)
                stream.next_out = o.baseAddress
                stream.avail_out = uInt(o.count)
                _ = CZlib.deflate(&stream, Z_FINISH)
                return o.count - Int(stream.avail_out)
            }
        }
        return Array(out[0..<produced])
    }

    public static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8((v >> (8 * UInt64($0))) & 0xFF) } }
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    func le16(_ v: UInt16) -> [UInt8] { le16(Int(v)) }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}

/// A small real package for app `id`: index.html, a script, a stylesheet and an image.
public func samplePackage(_ id: String = "20171228") -> ZipBuilder {
    ZipBuilder([
        .directory("\(id)/"), .directory("\(id)/www/"),
        .init("\(id)/www/index.html", "<!doctype html><title>Checkout</title><script src=app.js></script>\n"),
        .init("\(id)/www/app.js", String(repeating: "console.log('courier');\n", count: 200)),
        .init("\(id)/www/css/site.css", "body { color: #333 }\n", method: 0),
        .init("\(id)/www/img/logo.png", (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31) }),
    ])
}

/// A fresh temporary directory, removed by the caller.
public func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "courier-test-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Runs a command, returning its exit status and standard output.
@discardableResult
public func shell(_ arguments: [String], cwd: String? = nil) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
