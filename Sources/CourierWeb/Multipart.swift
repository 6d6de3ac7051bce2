import CourierCore
import Foundation
import Hummingbird
import NIOCore

/// A file part of a multipart upload, already on disk.
public struct UploadedFile: Sendable {
    public let field: String
    public let filename: String
    public let path: String
    public let size: UInt64
}

/// A parsed multipart/form-data request: small text fields in memory, files in temp files.
public struct MultipartForm: Sendable {
    public var fields = FormFields()
    public var files: [UploadedFile] = []
    public func file(_ name: String) -> UploadedFile? { files.first { $0.field == name } }
    /// The non-empty file sent as `name`; every other uploaded file is deleted now.
    public func takeFile(_ name: String) -> UploadedFile? {
        let kept = files.first { $0.field == name && $0.size > 0 }
        for f in files where f.path != kept?.path { unlink(f.path) }
        return kept
    }
    /// Deletes the temp files: call when the upload has been used or refused.
    public func discard() { for f in files { unlink(f.path) } }
}

public struct UploadTooLarge: Error {
    public let limit: Int
    public var message: String {
        let mb = limit >= 1 << 20 ? "\(limit >> 20) MB" : "\(limit / 1000) KB"
        return "The upload is larger than \(mb), the limit for one request. Split the content or remove unused files."
    }
}

/// Streams a multipart body to temp files with bounded memory: the boundary is found with
/// memmem over a small window, and file bytes go to disk as they arrive.
public struct MultipartReader {
    public var maxTotal: Int
    public var maxFieldBytes = 64 * 1024
    public var maxParts = 250
    public var maxHeaderBytes = 16 * 1024
    public var tempPath: () -> String

    public init(maxTotal: Int, tempPath: @escaping () -> String) {
        self.maxTotal = maxTotal
        self.tempPath = tempPath
    }

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

    private enum State { case preamble, afterDelimiter, headers, body, done }

    /// Reads the whole body. On any error the temp files written so far are removed.
    public func read<S: AsyncSequence>(_ body: S, boundary: String) async throws -> MultipartForm where S.Element == ByteBuffer {
        let delimiter = Array("\r\n--\(boundary)".utf8)
        var buffer: [UInt8] = Array("\r\n".utf8)   // so the first boundary looks like every other
        var start = 0
        var state = State.preamble
        var form = MultipartForm()
        var total = 0
        var parts = 0
        var current: (name: String, filename: String?, fd: Int32, path: String, size: UInt64, text: [UInt8])?

        func fail(_ message: String) -> FieldError { FieldError("file", message) }
        func finishPart() throws {
            guard let c = current else { return }
            if let filename = c.filename {
                fsync(c.fd)
                close(c.fd)
                form.files.append(UploadedFile(field: c.name, filename: filename, path: c.path, size: c.size))
            } else {
                form.fields.append(c.name, String(decoding: c.text, as: UTF8.self))
            }
            current = nil
        }
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard !bytes.isEmpty, current != nil else { return }
            if current!.filename != nil {
                var done = 0
                while done < bytes.count {
                    let n = Foundation.write(current!.fd, bytes.baseAddress! + done, bytes.count - done)
                    guard n > 0 else { throw fail("The server could not store the upload (disk full?).") }
                    done += n
                }
                current!.size += UInt64(bytes.count)
            } else {
                guard current!.text.count + bytes.count <= maxFieldBytes else {
                    throw FieldError(current!.name, "The field \(current!.name) is longer than \(maxFieldBytes / 1024) KiB.")
                }
                current!.text.append(contentsOf: bytes)
            }
        }
        func find(_ needle: [UInt8], from: Int) -> Int? {
            buffer.withUnsafeBytes { hay -> Int? in
                guard hay.count - from >= needle.count else { return nil }
                // memchr for the first byte, memcmp for the rest: fast on megabytes of file data.
                return needle.withUnsafeBytes { n -> Int? in
                    let base = hay.baseAddress!
                    var i = from
                    let lastStart = hay.count - n.count
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

        do {
            var finished = false
            var iterator = body.makeAsyncIterator()
            while !finished {
                let chunk = try await iterator.next()
                if let chunk {
                    total += chunk.readableBytes
                    if total > maxTotal { throw UploadTooLarge(limit: maxTotal) }
                    if start > 0 && start > buffer.count / 2 { buffer.removeFirst(start); start = 0 }
                    buffer.append(contentsOf: chunk.readableBytesView)
                } else {
                    finished = true
                }
                // Process as much as the buffer allows.
                loop: while true {
                    switch state {
                    case .preamble:
                        guard let i = find(delimiter, from: start) else {
                            start = max(start, buffer.count - delimiter.count)
                            break loop
                        }
                        start = i + delimiter.count
                        state = .afterDelimiter
                    case .afterDelimiter:
                        guard buffer.count - start >= 2 else { break loop }
                        if buffer[start] == 0x2D && buffer[start + 1] == 0x2D {
                            state = .done
                        } else {
                            // Transport padding may follow the boundary before its CRLF.
                            guard let eol = find(Array("\r\n".utf8), from: start) else { break loop }
                            start = eol + 2
                            state = .headers
                        }
                    case .headers:
                        guard let end = find(Array("\r\n\r\n".utf8), from: start) else {
                            if buffer.count - start > maxHeaderBytes { throw fail("A part of the upload has headers over 16 KiB.") }
                            break loop
                        }
                        let text = String(decoding: buffer[start..<end], as: UTF8.self)
                        start = end + 4
                        parts += 1
                        if parts > maxParts { throw fail("The upload has more than \(maxParts) parts.") }
                        let (name, filename) = Self.disposition(text)
                        guard let name else { throw fail("A part of the upload has no form field name.") }
                        if let filename {
                            let path = tempPath()
                            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                            guard fd >= 0 else { throw fail("The server could not store the upload.") }
                            current = (name, filename, fd, path, 0, [])
                        } else {
                            current = (name, nil, -1, "", 0, [])
                        }
                        state = .body
                    case .body:
                        if let i = find(delimiter, from: start) {
                            try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[start..<i])) }
                            try finishPart()
                            start = i + delimiter.count
                            state = .afterDelimiter
                        } else {
                            // Keep a tail that could be the start of the delimiter.
                            let safe = buffer.count - (delimiter.count - 1)
                            if safe > start {
                                try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[start..<safe])) }
                                start = safe
                            }
                            break loop
                        }
                    case .done:
                        break loop
                    }
                }
                if finished { break }
            }
            guard state == .done else { throw fail("The upload ended before it was complete. Try again.") }
            return form
        } catch {
            if let c = current, c.filename != nil { close(c.fd); unlink(c.path) }
            form.discard()
            throw error
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
