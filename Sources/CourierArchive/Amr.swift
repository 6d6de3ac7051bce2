import CZlib
import CourierCore
import Crypto
import Foundation

/// One file of a package as recorded in `manifest.json`, plus where its bytes sit in the tar.
public struct ManifestFile: Sendable, Equatable, Codable {
    public let path: String
    public let size: UInt64
    public let sha256: String
    /// Offset of the file's data inside `{id}.tar`: fallback serving reads from here.
    public let tarOffset: UInt64
    public init(path: String, size: UInt64, sha256: String, tarOffset: UInt64) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.tarOffset = tarOffset
    }
}

/// A built `.amr` (SPEC §3) on disk.
public struct AmrFile: Sendable {
    public let size: UInt64
    public let sha256: String
    public let md5: String
    /// Where `{id}.tar` lies inside the `.amr` (a stored entry, so its bytes are contiguous).
    public let tarOffset: UInt64
    public let tarSize: UInt64
    public let files: [ManifestFile]
}

public enum AmrBuilder {
    /// Builds the `.amr` from validated content files, streaming: each entry is inflated,
    /// checked, hashed and written once; memory stays bounded whatever the package's size.
    public static func build(from archive: ZipReader, files: [ContentFile], appID: String, version: String,
                             signer: SigningKey?, to output: String) throws -> AmrFile {
        // The tar's size and CRC are known before writing: headers are fixed, and each file's
        // CRC is the zip's declared one (checked while reading, so a mismatch aborts the build).
        var tarSize: UInt64 = 0
        var tarCRC = crc32(0, nil, 0)
        let zeros = [UInt8](repeating: 0, count: 1024)
        func addCRC(_ bytes: [UInt8], count: Int? = nil) {
            let n = count ?? bytes.count
            tarCRC = crc32(tarCRC, bytes, uInt(n))
            tarSize += UInt64(n)
        }
        var headers: [[UInt8]] = []
        // The reader keeps the total under its limit; refuse here too rather than trap on a
        // size the tar or the 32-bit .amr cannot hold.
        var planned: UInt64 = 0
        for f in files {
            let (sum, overflow) = planned.addingReportingOverflow(f.entry.uncompressedSize)
            guard !overflow, sum < 0xF000_0000, TarHeader.canEncode(f.path) else {
                throw FieldError("file", "The package is too large to store (over 3.75 GiB as a tar) or has a path a tar cannot hold.")
            }
            planned = sum + 1024
        }
        for f in files {
            guard let header = TarHeader.file(path: f.path, size: f.entry.uncompressedSize) else {
                throw FieldError("file", "“\(f.path)”: the path is too long to store in a tar.")
            }
            headers.append(header)
            addCRC(header)
            tarCRC = crc32_combine(tarCRC, uLong(f.entry.crc32), off_t(f.entry.uncompressedSize))
            tarSize += f.entry.uncompressedSize
            addCRC(zeros, count: TarHeader.padding(for: f.entry.uncompressedSize))
        }
        addCRC(zeros, count: 1024)

        var manifest: [ManifestFile] = []
        manifest.reserveCapacity(files.count)
        return try write(to: output, appID: appID, version: version, tarSize: tarSize, tarCRC: UInt32(tarCRC),
                         signer: signer, manifest: { manifest }) { tar in
            for (f, header) in Swift.zip(files, headers) {
                try tar.write(header)
                let offset = tar.count
                var hash = SHA256()
                try archive.read(f.entry) { chunk in
                    hash.update(bufferPointer: chunk)
                    try tar.write(chunk)
                }
                try tar.write(zeros, count: TarHeader.padding(for: f.entry.uncompressedSize))
                manifest.append(ManifestFile(path: f.path, size: f.entry.uncompressedSize,
                                             sha256: hash.finalize().hex, tarOffset: offset))
            }
            try tar.write(zeros, count: 1024)
        }
    }

    /// Writes a new `.amr` around the tar of an existing one: used when the signing key changes.
    public static func resign(amrPath: String, tarOffset: UInt64, tarSize: UInt64, files: [ManifestFile],
                              appID: String, version: String, signer: SigningKey?, to output: String) throws -> AmrFile {
        guard let source = FileHandle(forReadingAtPath: amrPath) else {
            throw ServerFault("The stored package \(appID) \(version) is missing from the blob store.")
        }
        defer { try? source.close() }
        // The tar entry's CRC is in the existing .amr's first local header.
        try source.seek(toOffset: 14)
        let crcBytes = [UInt8](try source.read(upToCount: 4) ?? Data())
        guard crcBytes.count == 4 else { throw ServerFault("The stored package \(appID) \(version) is corrupt.") }
        let crc = crcBytes.u32(0)
        return try write(to: output, appID: appID, version: version, tarSize: tarSize, tarCRC: crc,
                         signer: signer, manifest: { files }) { tar in
            try source.seek(toOffset: tarOffset)
            var left = tarSize
            while left > 0 {
                let chunk = try source.read(upToCount: Int(min(left, 1 << 20))) ?? Data()
                guard !chunk.isEmpty else { throw ServerFault("The stored package \(appID) \(version) is truncated.") }
                try chunk.withUnsafeBytes { try tar.write($0) }
                left -= UInt64(chunk.count)
            }
        }
    }

    static func write(to output: String, appID: String, version: String, tarSize: UInt64, tarCRC: UInt32,
                      signer: SigningKey?, manifest: () -> [ManifestFile],
                      tar produce: (TarSink) throws -> Void) throws -> AmrFile {
        do {
            return try writeUnchecked(to: output, appID: appID, version: version, tarSize: tarSize, tarCRC: tarCRC,
                                      signer: signer, manifest: manifest, tar: produce)
        } catch {
            unlink(output)   // a refused or failed build leaves no half-written file
            throw error
        }
    }

    private static func writeUnchecked(to output: String, appID: String, version: String, tarSize: UInt64, tarCRC: UInt32,
                                       signer: SigningKey?, manifest: () -> [ManifestFile],
                                       tar produce: (TarSink) throws -> Void) throws -> AmrFile {
        let tarName = "\(appID).tar"
        var files: [ManifestFile] = []
        let made = try assemble(to: output, tarName: tarName, tarSize: tarSize, tarCRC: tarCRC, tar: produce) { sink in
            var entries: [(String, [UInt8])] = []
            if let signer {
                let (cert, sign) = try signer.signatures(sha1: sink.sha1.finalize(), sha256: sink.sha256.finalize())
                entries.append(("CERT.json", Array("{\"\(tarName)\":\"\(cert)\"}".utf8)))
                entries.append(("SIGN.json", Array("{\"\(tarName)\":\"\(sign)\"}".utf8)))
            }
            files = manifest()
            entries.append(("manifest.json", Array(ManifestJSON.render(id: appID, version: version, files: files).utf8)))
            return entries
        }
        return AmrFile(size: made.size, sha256: made.sha256, md5: made.md5, tarOffset: made.tarOffset, tarSize: tarSize, files: files)
    }

    /// The zip around a tar (SPEC §3): the tar stored first, then small entries verbatim, a
    /// central directory, fixed dates. Courier's `.amr`, its patches, and a client rebuilding an
    /// `.amr` from a patch all write it here, so the same tar and entries give the same bytes.
    /// `produce` writes exactly `tarSize` bytes whose CRC is `tarCRC`; `after` (given the tar's
    /// hashes) answers the entries that follow it.
    public static func assemble(to output: String, tarName: String, tarSize: UInt64, tarCRC: UInt32,
                                tar produce: (TarSink) throws -> Void,
                                after: (TarSink) throws -> [(String, [UInt8])]) throws -> AmrAssembly {
        do {
            return try assembleUnchecked(to: output, tarName: tarName, tarSize: tarSize, tarCRC: tarCRC, tar: produce, after: after)
        } catch {
            unlink(output)   // a failed write leaves no half-written file
            throw error
        }
    }

    private static func assembleUnchecked(to output: String, tarName: String, tarSize: UInt64, tarCRC: UInt32,
                                          tar produce: (TarSink) throws -> Void,
                                          after: (TarSink) throws -> [(String, [UInt8])]) throws -> AmrAssembly {
        let out = try HashingWriter(path: output)
        var directory: [(name: String, crc: UInt32, size: UInt64, offset: UInt64)] = []
        func storedEntry(_ name: String, crc: UInt32, size: UInt64) throws {
            directory.append((name, crc, size, out.count))
            try out.write(ZipFormat.localHeader(name: name, crc: crc, size: size))
        }
        guard tarSize < 0xFFFF_FFFF else { throw FieldError("file", "The package is too large to store (over 4 GiB as a tar).") }
        try storedEntry(tarName, crc: tarCRC, size: tarSize)
        let tarOffset = out.count
        let sink = TarSink(out)
        try produce(sink)
        guard sink.count == tarSize else {
            throw FieldError("file", "Internal error: the tar came out at \(sink.count) bytes, \(tarSize) were planned.")
        }
        for (name, bytes) in try after(sink) {
            try storedEntry(name, crc: UInt32(crc32(0, bytes, uInt(bytes.count))), size: UInt64(bytes.count))
            try out.write(bytes)
        }
        let cdStart = out.count
        for e in directory {
            try out.write(ZipFormat.centralHeader(name: e.name, crc: e.crc, size: e.size, offset: e.offset))
        }
        try out.write(ZipFormat.endRecord(entries: directory.count, cdSize: out.count - cdStart, cdOffset: cdStart))
        let (size, sha256, md5) = try out.finish()
        return AmrAssembly(size: size, sha256: sha256, md5: md5, tarOffset: tarOffset)
    }
}

/// A zip written by `AmrBuilder.assemble`.
public struct AmrAssembly: Sendable {
    public let size: UInt64
    public let sha256: String
    public let md5: String
    /// Where the tar's bytes start.
    public let tarOffset: UInt64
}

public enum ManifestJSON {
    public static func render(id: String, version: String, files: [ManifestFile]) -> String {
        var s = "{\"id\":\(quote(id)),\"version\":\(quote(version)),\"files\":["
        for (i, f) in files.enumerated() {
            if i > 0 { s += "," }
            s += "{\"path\":\(quote(f.path)),\"size\":\(f.size),\"sha256\":\"\(f.sha256)\"}"
        }
        return s + "]}"
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}

/// The tar part of the `.amr`: counts its bytes and hashes them for the signatures.
public final class TarSink {
    let out: HashingWriter
    public internal(set) var sha1 = Insecure.SHA1()
    public internal(set) var sha256 = SHA256()
    public private(set) var count: UInt64 = 0
    init(_ out: HashingWriter) { self.out = out }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        sha1.update(bufferPointer: bytes)
        sha256.update(bufferPointer: bytes)
        count += UInt64(bytes.count)
        try out.write(bytes)
    }
    public func write(_ bytes: [UInt8], count n: Int? = nil) throws {
        try bytes.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(n ?? bytes.count)])) }
    }
}

/// A buffered, sequential file writer that hashes everything written (SHA-256 and MD5),
/// and fsyncs on finish so a renamed file is whole.
final class HashingWriter {
    let fd: Int32
    var buffer: [UInt8] = []
    var sha256 = SHA256()
    var md5 = Insecure.MD5()
    private(set) var count: UInt64 = 0
    let capacity = 1 << 20

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if StorageFull.isFull(errno) { throw StorageFull("the package") }
            throw ServerFault("The server could not create a file for the package (is the data folder writable?).")
        }
        buffer.reserveCapacity(capacity)
    }
    deinit { close(fd) }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        sha256.update(bufferPointer: bytes)
        md5.update(bufferPointer: bytes)
        count += UInt64(bytes.count)
        if buffer.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity { try writeAll(bytes) } else { buffer.append(contentsOf: bytes) }
    }
    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func flush() throws {
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }
    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            guard n > 0 else {
                if StorageFull.isFull(errno) { throw StorageFull("the package") }
                throw ServerFault("The server could not write the package. Nothing was stored.")
            }
            done += n
        }
    }
    func finish() throws -> (UInt64, String, String) {
        try flush()
        guard fsync(fd) == 0 else {
            if StorageFull.isFull(errno) { throw StorageFull("the package") }
            throw ServerFault("The server could not save the package to disk (fsync failed). Nothing was stored.")
        }
        return (count, sha256.finalize().hex, md5.finalize().hex)
    }
}

enum ZipFormat {
    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    static func le32(_ v: UInt64) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    static let dosDate = 0x0021   // 1980-01-01, fixed so the same content gives the same bytes

    static func localHeader(name: String, crc: UInt32, size: UInt64) -> [UInt8] {
        le32(0x0403_4b50) + le16(10) + le16(0) + le16(0) + le16(0) + le16(dosDate)
            + le32(UInt64(crc)) + le32(size) + le32(size) + le16(name.utf8.count) + le16(0) + Array(name.utf8)
    }
    static func centralHeader(name: String, crc: UInt32, size: UInt64, offset: UInt64) -> [UInt8] {
        le32(0x0201_4b50) + le16(20) + le16(10) + le16(0) + le16(0) + le16(0) + le16(dosDate)
            + le32(UInt64(crc)) + le32(size) + le32(size) + le16(name.utf8.count) + le16(0) + le16(0)
            + le16(0) + le16(0) + le32(0) + le32(offset) + Array(name.utf8)
    }
    static func endRecord(entries: Int, cdSize: UInt64, cdOffset: UInt64) -> [UInt8] {
        le32(0x0605_4b50) + le16(0) + le16(0) + le16(entries) + le16(entries) + le32(cdSize) + le32(cdOffset) + le16(0)
    }
}

extension Digest {
    public var hex: String {
        var s = ""
        s.reserveCapacity(Self.byteCount * 2)
        for b in self { s += String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }
        return s
    }
}
