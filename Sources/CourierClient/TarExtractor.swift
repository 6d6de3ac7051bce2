import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Writes the files of a package's ustar tar (SPEC §3) into a folder as the bytes stream in,
/// checking each against the manifest: only regular files, only safe relative paths, only the
/// files and sizes the manifest lists, each file's SHA-256, each path once. Nothing is trusted
/// before it is checked; sizes are checked before they are used.
struct TarExtractor {
    /// Where files are written; nil checks them only (a lazy package verified when downloaded).
    let root: String?
    /// The manifest's files by path.
    let expected: [String: (size: UInt64, sha256: String)]

    private var header = [UInt8]()
    private var file: (path: String, fd: Int32, left: UInt64, hash: SHA256, sha256: String)?
    private var padding = 0
    private var zeroBlocks = 0
    private(set) var written: Set<String> = []
    private(set) var bytes: UInt64 = 0
    /// A patch's tar (SPEC §3) holds only some of the manifest's files.
    let partial: Bool
    /// Where each file's bytes start in the tar.
    private(set) var offsets: [String: UInt64] = [:]
    private var consumed: UInt64 = 0

    init(root: String?, expected: [String: (size: UInt64, sha256: String)], partial: Bool = false) {
        self.root = root
        self.expected = expected
        self.partial = partial
        header.reserveCapacity(512)
    }

    static func refuse(_ why: String) -> ClientFailure { ClientFailure(.verifyFailed, "The package's tar is refused: \(why)") }

    mutating func feed(_ chunk: UnsafeRawBufferPointer) throws {
        let base = consumed
        consumed += UInt64(chunk.count)
        var i = 0
        while i < chunk.count {
            if var f = file {
                let n = Int(min(UInt64(chunk.count - i), f.left))
                let part = UnsafeRawBufferPointer(rebasing: chunk[i..<(i + n)])
                f.hash.update(bufferPointer: part)
                if f.fd >= 0 { try Self.writeAll(f.fd, part, path: f.path) }
                f.left -= UInt64(n)
                i += n
                file = f
                if f.left == 0 { try finishFile() }
            } else if padding > 0 {
                let n = min(padding, chunk.count - i)
                for b in chunk[i..<(i + n)] where b != 0 { throw Self.refuse("non-zero padding after a file.") }
                padding -= n
                i += n
            } else {
                let n = min(512 - header.count, chunk.count - i)
                header.append(contentsOf: chunk[i..<(i + n)])
                i += n
                if header.count == 512 {
                    try startEntry(at: base + UInt64(i))
                    header.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    /// After the last byte: the two zero blocks were seen, no file is half-written, and every
    /// file the manifest lists is there.
    func finish() throws {
        guard file == nil, padding == 0, header.isEmpty else { throw Self.refuse("it ends inside an entry (truncated).") }
        guard zeroBlocks >= 2 else { throw Self.refuse("it lacks its two closing zero blocks.") }
        let missing = partial ? [] : Set(expected.keys).subtracting(written)
        guard missing.isEmpty else { throw Self.refuse("the manifest lists \(missing.sorted().prefix(3).joined(separator: ", ")) but the tar lacks it.") }
    }

    private mutating func startEntry(at offset: UInt64) throws {
        if header.allSatisfy({ $0 == 0 }) {
            zeroBlocks += 1
            return
        }
        guard zeroBlocks == 0 else { throw Self.refuse("an entry follows its closing zero blocks.") }
        guard Self.checksumHolds(header) else { throw Self.refuse("an entry's header checksum is wrong.") }
        let type = header[156]
        guard type == UInt8(ascii: "0") || type == 0 else {
            throw Self.refuse("it holds something other than a regular file (type \(type)); links and folders are not allowed.")
        }
        guard let size = Self.octal(header[124..<136]) else { throw Self.refuse("an entry's size is not a number.") }
        let name = Self.text(header[0..<100])
        let prefix = Self.text(header[345..<500])
        guard let name, let prefix else { throw Self.refuse("an entry's name is not UTF-8 text.") }
        let path = prefix.isEmpty ? name : prefix + "/" + name
        guard Self.isSafe(path) else { throw Self.refuse("the path “\(path.prefix(120))” is not a plain relative path.") }
        guard let want = expected[path] else { throw Self.refuse("“\(path)” is not in the manifest.") }
        guard want.size == size else { throw Self.refuse("“\(path)” holds \(size) bytes but the manifest says \(want.size).") }
        guard !written.contains(path), offsets[path] == nil else { throw Self.refuse("“\(path)” appears twice.") }
        offsets[path] = offset
        let fd = try root.map { try Self.create($0, path) } ?? -1
        file = (path, fd, size, SHA256(), want.sha256)
        bytes += size
        padding = Int((512 - size % 512) % 512)
        if size == 0 { try finishFile() }
    }

    private mutating func finishFile() throws {
        guard let f = file else { return }
        file = nil
        let ok = f.fd < 0 || fsync(f.fd) == 0
        if f.fd >= 0 { close(f.fd) }
        guard ok else { throw ClientFailure(.installFailed, "“\(f.path)” could not be written to disk (fsync failed).") }
        let digest = f.hash.finalize().map { String(format: "%02x", $0) }.joined()
        guard digest == f.sha256 else { throw Self.refuse("“\(f.path)” does not match its SHA-256 in the manifest.") }
        written.insert(f.path)
    }

    // MARK: pieces

    static func checksumHolds(_ h: [UInt8]) -> Bool {
        guard let stored = octal(h[148..<156]) else { return false }
        var sum: UInt64 = 0
        for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : UInt64(b) }
        return sum == stored
    }

    /// An octal field (digits, then NUL or spaces), at most 11 digits: never more than 8 GiB.
    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        var ended = false
        for b in field {
            if b == 0 || b == 32 { ended = digits > 0 || ended; continue }
            guard !ended, b >= 48, b <= 55, digits < 11 else { return nil }
            value = value * 8 + UInt64(b - 48)
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// A NUL-terminated (or full) text field, as UTF-8.
    static func text(_ field: ArraySlice<UInt8>) -> String? {
        let bytes = field.prefix { $0 != 0 }
        return String(bytes: bytes, encoding: .utf8)
    }

    /// Relative, no `.` or `..` or empty segments, and only the bytes a package's names may hold
    /// (SPEC §2: letters, digits, `- . _ ~`). Checked on bytes, split on the byte `/`: grapheme
    /// clusters would read `/` plus a combining mark as one character and let `..` through.
    static func isSafe(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        for segment in bytes.split(separator: 0x2F, omittingEmptySubsequences: false) {
            guard !segment.isEmpty, !segment.allSatisfy({ $0 == 0x2E }) || segment.count > 2 else { return false }
            guard segment.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0)
                || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || $0 == 0x7E }) else { return false }
        }
        return true
    }

    /// Creates `root/path` (its folders too), never following a link and never over a file.
    static func create(_ root: String, _ path: String) throws -> Int32 {
        var dir = root
        for part in path.split(separator: "/").dropLast() {
            dir += "/" + part
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                throw ClientFailure(.installFailed, "The folder for “\(path)” could not be made: \(String(cString: strerror(errno))).")
            }
            var st = stat()
            guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw refuse("“\(path)” would be written through something that is not a folder.")
            }
        }
        let fd = open(root + "/" + path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw errno == EEXIST ? refuse("“\(path)” clashes with another path of the package.")
                : ClientFailure(.installFailed, "“\(path)” could not be created: \(String(cString: strerror(errno))).")
        }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ClientFailure(.installFailed, "“\(path)” could not be written: \(String(cString: strerror(errno))) (is the disk full?).")
            }
            done += n
        }
    }
}
