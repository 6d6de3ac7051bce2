import CourierCore
import Foundation

/// Receives the parts of a multipart body as the parser finds them.
public protocol MultipartSink {
    /// A part starts; `filename` is nil for a plain form field.
    mutating func begin(name: String, filename: String?) throws
    /// Some of the current part's bytes (called any number of times).
    mutating func data(_ bytes: UnsafeRawBufferPointer) throws
    /// The current part is complete.
    mutating func end() throws
}

/// A push parser for `multipart/form-data` (RFC 7578) that never trusts the body: memory is
/// bounded (headers, padding and the delimiter look-behind have limits; part data is handed on
/// as it arrives) and every byte is scanned a bounded number of times, whatever the chunking.
/// It lives beside the zip reader because it is the same kind of thing: a container format
/// read from hostile bytes, with no HTTP or disk of its own (the sink decides where data goes).
public struct MultipartParser {
    public struct Limits: Sendable {
        public var maxParts = 250
        public var maxHeaderBytes = 16 * 1024
        /// Bytes allowed between a boundary and its CRLF ("transport padding").
        public var maxPadding = 256
        public init() {}
    }

    private enum State { case preamble, afterDelimiter, headers, body, done }

    let delimiter: [UInt8]
    let limits: Limits
    private var buffer: [UInt8] = Array("\r\n".utf8)   // so the first boundary looks like every other
    private var start = 0
    /// Where the search for the end of the headers resumes (bytes before it were scanned).
    private var headerScan = 0
    private var state = State.preamble
    private var parts = 0

    public init(boundary: String, limits: Limits = Limits()) {
        delimiter = Array("\r\n--\(boundary)".utf8)
        self.limits = limits
    }

    public var isComplete: Bool { state == .done }

    static func fail(_ message: String) -> FieldError { FieldError("file", message) }

    /// `boundary` from a `multipart/form-data` content type, or nil.
    public static func boundary(of contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" {
                let b = kv[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return (1...70).contains(b.utf8.count) ? b : nil
            }
        }
        return nil
    }

    /// Feeds the next bytes of the body.
    public mutating func feed<S: MultipartSink>(_ bytes: UnsafeRawBufferPointer, into sink: inout S) throws {
        if state == .done { return }   // the epilogue is ignored, never buffered
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            headerScan = max(0, headerScan - start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
        try process(into: &sink)
    }

    /// Ends the body: refuses one that stopped before its closing boundary.
    public mutating func finish<S: MultipartSink>(into sink: inout S) throws {
        try process(into: &sink)
        guard state == .done else { throw Self.fail("The upload ended before it was complete. Try again.") }
    }

    private mutating func process<S: MultipartSink>(into sink: inout S) throws {
        while true {
            switch state {
            case .preamble:
                guard let i = find(delimiter, from: start) else {
                    start = max(start, buffer.count - delimiter.count)
                    return
                }
                start = i + delimiter.count
                state = .afterDelimiter
            case .afterDelimiter:
                guard buffer.count - start >= 2 else { return }
                if buffer[start] == 0x2D && buffer[start + 1] == 0x2D {
                    state = .done
                    buffer = []
                    start = 0
                    return
                }
                // Transport padding may follow the boundary before its CRLF: a few bytes at most,
                // looked for in a bounded window so a flood of padding costs nothing to rescan.
                let window = min(buffer.count, start + limits.maxPadding + 2)
                guard let eol = find([0x0D, 0x0A], from: start, before: window) else {
                    if buffer.count - start >= limits.maxPadding + 2 {
                        throw Self.fail("The upload is malformed: a part boundary is not followed by a line break.")
                    }
                    return
                }
                start = eol + 2
                headerScan = start
                state = .headers
            case .headers:
                guard let end = find([0x0D, 0x0A, 0x0D, 0x0A], from: max(start, headerScan - 3)) else {
                    if buffer.count - start > limits.maxHeaderBytes {
                        throw Self.fail("A part of the upload has headers over \(limits.maxHeaderBytes / 1024) KiB.")
                    }
                    headerScan = buffer.count
                    return
                }
                guard end - start <= limits.maxHeaderBytes else {
                    throw Self.fail("A part of the upload has headers over \(limits.maxHeaderBytes / 1024) KiB.")
                }
                let text = String(decoding: buffer[start..<end], as: UTF8.self)
                start = end + 4
                parts += 1
                if parts > limits.maxParts { throw Self.fail("The upload has more than \(limits.maxParts) parts.") }
                let (name, filename) = Self.disposition(text)
                guard let name else { throw Self.fail("A part of the upload has no form field name.") }
                try sink.begin(name: name, filename: filename)
                state = .body
            case .body:
                if let i = find(delimiter, from: start) {
                    try emit(start..<i, into: &sink)
                    try sink.end()
                    start = i + delimiter.count
                    state = .afterDelimiter
                } else {
                    // Keep a tail that could be the start of the delimiter.
                    let safe = buffer.count - (delimiter.count - 1)
                    if safe > start {
                        try emit(start..<safe, into: &sink)
                        start = safe
                    }
                    return
                }
            case .done:
                return
            }
        }
    }

    private func emit<S: MultipartSink>(_ range: Range<Int>, into sink: inout S) throws {
        guard !range.isEmpty else { return }
        try buffer.withUnsafeBytes { try sink.data(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// memchr for the first byte, memcmp for the rest: fast on megabytes of file data.
    private func find(_ needle: [UInt8], from: Int, before limit: Int? = nil) -> Int? {
        let end = min(limit ?? buffer.count, buffer.count)
        return buffer.withUnsafeBytes { hay -> Int? in
            guard from >= 0, end - from >= needle.count, let base = hay.baseAddress else { return nil }
            return needle.withUnsafeBytes { n -> Int? in
                var i = from
                let lastStart = end - n.count
                while i <= lastStart {
                    guard let hit = memchr(base + i, Int32(n[0]), lastStart - i + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, n.baseAddress!, n.count) == 0 { return at }
                    i = at + 1
                }
                return nil
            }
        }
    }

    /// `form-data; name="x"; filename="y"` from a part's headers.
    static func disposition(_ headers: String) -> (String?, String?) {
        for line in headers.split(separator: "\r\n") {
            let kv = line.split(separator: ":", maxSplits: 1)
            guard kv.count == 2, kv[0].lowercased() == "content-disposition" else { continue }
            var name: String?, filename: String?
            for param in kv[1].split(separator: ";") {
                let p = param.trimmingCharacters(in: .whitespaces)
                if p.hasPrefix("name=") { name = unquote(p.dropFirst(5)) }
                if p.hasPrefix("filename=") { filename = unquote(p.dropFirst(9)) }
            }
            return (name, filename)
        }
        return (nil, nil)
    }

    static func unquote(_ s: Substring) -> String {
        var t = String(s)
        if t.hasPrefix("\""), t.hasSuffix("\""), t.count >= 2 { t = String(t.dropFirst().dropLast()) }
        return t.replacingOccurrences(of: "\\\"", with: "\"")
    }
}
