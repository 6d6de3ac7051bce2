import CourierDomain
import CourierArchive
import CourierCore
import Foundation
import Hummingbird
import NIOCore


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

/// Streams a multipart body to temp files with bounded memory: `MultipartParser` finds the
/// parts, file bytes go to disk as they arrive, text fields stay small.
public struct MultipartReader {
    public var maxTotal: Int
    public var maxFieldBytes = 64 * 1024
    public var limits = MultipartParser.Limits()
    public var tempPath: () -> String

    public init(maxTotal: Int, tempPath: @escaping () -> String) {
        self.maxTotal = maxTotal
        self.tempPath = tempPath
    }

    public static func boundary(of contentType: String?) -> String? { MultipartParser.boundary(of: contentType) }

    /// Writes file parts to temp files and keeps text fields, refusing an oversized field.
    struct FileSink: MultipartSink {
        let maxFieldBytes: Int
        let tempPath: () -> String
        var form = MultipartForm()
        var current: (name: String, filename: String?, fd: Int32, path: String, size: UInt64, text: [UInt8])?

        mutating func begin(name: String, filename: String?) throws {
            if let filename {
                let path = tempPath()
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    if StorageFull.isFull(errno) { throw StorageFull() }
                    throw FieldError("file", "The server could not store the upload.")
                }
                current = (name, filename, fd, path, 0, [])
            } else {
                current = (name, nil, -1, "", 0, [])
            }
        }

        mutating func data(_ bytes: UnsafeRawBufferPointer) throws {
            guard !bytes.isEmpty, var c = current else { return }
            if c.filename != nil {
                var done = 0
                while done < bytes.count {
                    let n = Foundation.write(c.fd, bytes.baseAddress! + done, bytes.count - done)
                    guard n > 0 else {
                        if StorageFull.isFull(errno) { throw StorageFull() }
                        throw FieldError("file", "The server could not store the upload.")
                    }
                    done += n
                }
                c.size += UInt64(bytes.count)
            } else {
                guard c.text.count + bytes.count <= maxFieldBytes else {
                    throw FieldError(c.name, "The field \(c.name) is longer than \(maxFieldBytes / 1024) KiB.")
                }
                c.text.append(contentsOf: bytes)
            }
            current = c
        }

        mutating func end() throws {
            guard let c = current else { return }
            current = nil
            if let filename = c.filename {
                let synced = fsync(c.fd) == 0
                let full = !synced && StorageFull.isFull(errno)
                close(c.fd)
                form.files.append(UploadedFile(field: c.name, filename: filename, path: c.path, size: c.size))
                if full { throw StorageFull() }
                guard synced else { throw FieldError("file", "The server could not save the upload to disk (fsync failed). Try again.") }
            } else {
                form.fields.append(c.name, String(decoding: c.text, as: UTF8.self))
            }
        }

        /// Removes every temp file written so far, the open one included.
        func discard() {
            if let c = current, c.filename != nil { close(c.fd); unlink(c.path) }
            form.discard()
        }
    }

    /// Reads the whole body. On any error the temp files written so far are removed.
    public func read<S: AsyncSequence>(_ body: S, boundary: String) async throws -> MultipartForm where S.Element == ByteBuffer {
        var parser = MultipartParser(boundary: boundary, limits: limits)
        var sink = FileSink(maxFieldBytes: maxFieldBytes, tempPath: tempPath)
        var total = 0
        do {
            for try await chunk in body {
                total += chunk.readableBytes
                if total > maxTotal { throw UploadTooLarge(limit: maxTotal) }
                try chunk.withUnsafeReadableBytes { try parser.feed($0, into: &sink) }
            }
            try parser.finish(into: &sink)
            return sink.form
        } catch {
            sink.discard()
            throw error
        }
    }
}
