import CZlib
import CourierCore
import Crypto
import Foundation

/// A running CRC-32 (the zip's), for a tar whose CRC must be known before its zip entry is written.
public struct CRC32: Sendable {
    public private(set) var value: UInt32 = UInt32(crc32(0, nil, 0))
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        value = UInt32(crc32(uLong(value), bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(bytes.count)))
    }
}

/// Incremental packages (SPEC §3 "Patches"): `{V}.patch-{B}.amr` holds the files of V that B
/// lacks or holds with other bytes (`patch.tar`), the files of B that V lacks (`REMOVED.json`),
/// and V's own `manifest.json`, `CERT.json` and `SIGN.json`. A client holding B's files rebuilds
/// V's tar (and V's `.amr`, byte for byte) and checks V's own signature: the patch carries no
/// trust of its own.
public enum Patch {
    public static let tarName = "patch.tar"
    public static let removedName = "REMOVED.json"

    /// What a patch from B to V holds.
    public struct Plan: Sendable, Equatable {
        /// V's files that B lacks or holds with other bytes, by path bytewise (V's tar offsets).
        public let changed: [ManifestFile]
        /// B's files that V lacks, by path bytewise.
        public let removed: [String]
        public var changedBytes: UInt64 { changed.reduce(0) { $0 + $1.size } }
    }

    static func bytewise(_ a: String, _ b: String) -> Bool { Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) }

    public static func plan(base: [ManifestFile], target: [ManifestFile]) -> Plan {
        let old = Dictionary(base.map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        let new = Set(target.map(\.path))
        return Plan(changed: target.filter { old[$0.path] != $0.sha256 }.sorted { bytewise($0.path, $1.path) },
                    removed: base.map(\.path).filter { !new.contains($0) }.sorted(by: bytewise))
    }

    /// `["path", …]` in a fixed form.
    public static func removedJSON(_ paths: [String]) -> [UInt8] {
        Array(("[" + paths.map(ManifestJSON.quote).joined(separator: ",") + "]").utf8)
    }

    /// Writes the patch from B to V at `output`: the changed files' bytes are read from V's
    /// `.amr` (its tar at `tarOffset`, each file checked against its SHA-256 on the way), and V's
    /// `manifest.json`, `CERT.json` and `SIGN.json` are copied from it verbatim.
    public static func build(_ plan: Plan, targetAmr: String, tarOffset: UInt64, to output: String) throws -> AmrAssembly {
        var limits = ZipLimits()
        limits.maxEntries = 4
        limits.maxTotalUncompressed = UInt64.max / 4
        let zip = try ZipReader(path: targetAmr, limits: limits)
        func entry(_ name: String) throws -> [UInt8]? { try zip.entries.first { $0.name == name }.map { try zip.data($0) } }
        guard let manifest = try entry("manifest.json") else { throw ServerFault("The stored package has no manifest.json.") }
        let cert = try entry("CERT.json"), sign = try entry("SIGN.json")
        let fd = open(targetAmr, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ServerFault("The stored package cannot be read.") }
        defer { close(fd) }
        let offsets = Dictionary(plan.changed.map { ($0.path, $0.tarOffset) }, uniquingKeysWith: { a, _ in a })
        func stream(_ write: (UnsafeRawBufferPointer) throws -> Void) throws {
            try TarStream.write(plan.changed.map { TarStream.File(path: $0.path, size: $0.size, sha256: $0.sha256) }, write) { f, problem in
                switch problem {
                case .source: return (fd, tarOffset + (offsets[f.path] ?? 0), false)
                case .header: throw ServerFault("“\(f.path)” does not fit a tar header.")
                case .short: throw ServerFault("The stored package is truncated.")
                case .mismatch: throw ServerFault("The stored package does not match its manifest (“\(f.path)”).")
                }
            }
        }
        var crc = CRC32()
        var size: UInt64 = 0
        try stream { crc.update($0); size += UInt64($0.count) }
        var extra: [(String, [UInt8])] = [(removedName, removedJSON(plan.removed)), ("manifest.json", manifest)]
        if let cert { extra.append(("CERT.json", cert)) }
        if let sign { extra.append(("SIGN.json", sign)) }
        return try AmrBuilder.assemble(to: output, tarName: tarName, tarSize: size, tarCRC: crc.value,
                                       tar: { sink in try stream { try sink.write($0) } }, after: { _ in extra })
    }
}

/// A tar (SPEC §3) streamed from files already on disk: for each file its fixed header, its bytes
/// read from an open file (checked against its SHA-256 as they pass) and its padding; then the
/// two zero blocks. Courier's patches and a client's rebuilt tar are both written here.
public enum TarStream {
    public struct File: Sendable {
        public let path: String
        public let size: UInt64
        public let sha256: String
        public init(path: String, size: UInt64, sha256: String) {
            self.path = path
            self.size = size
            self.sha256 = sha256
        }
    }

    /// What `answer` is asked: where a file's bytes are (`source`: an open file, the offset, and
    /// whether to close it after), or what to throw.
    public enum Ask { case source, header, short, mismatch }

    public static func write(_ files: [File], _ write: (UnsafeRawBufferPointer) throws -> Void,
                             answer: (File, Ask) throws -> (fd: Int32, offset: UInt64, close: Bool)) throws {
        let zeros = [UInt8](repeating: 0, count: 1024)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for f in files {
            guard let header = TarHeader.file(path: f.path, size: f.size) else { _ = try answer(f, .header); return }
            try header.withUnsafeBytes(write)
            let (fd, start, closing) = try answer(f, .source)
            defer { if closing { close(fd) } }
            var hash = SHA256()
            var done: UInt64 = 0
            while done < f.size {
                let n = pread(fd, buffer.baseAddress!, Int(min(UInt64(buffer.count), f.size - done)), off_t(start + done))
                guard n > 0 else { _ = try answer(f, .short); return }
                let part = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                hash.update(bufferPointer: part)
                try write(part)
                done += UInt64(n)
            }
            guard hash.finalize().hex == f.sha256 else { _ = try answer(f, .mismatch); return }
            try zeros.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<TarHeader.padding(for: f.size)])) }
        }
        try zeros.withUnsafeBytes(write)
    }
}
