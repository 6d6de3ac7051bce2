import CZlib
import CourierCore
import Foundation

/// One entry of a zip archive, as its central directory declares it.
public struct ZipEntry: Sendable, Equatable {
    public let name: String
    public let method: UInt16
    public let crc32: UInt32
    public let compressedSize: UInt64
    public let uncompressedSize: UInt64
    public let localHeaderOffset: UInt64
    public var isDirectory: Bool { name.hasSuffix("/") }
    /// Where the entry's data starts, filled in after its local header was checked.
    public internal(set) var dataOffset: UInt64 = 0
}

/// Limits of SPEC §2 for uploaded zips.
public struct ZipLimits: Sendable {
    public var maxEntries = 20_000
    public var maxTotalUncompressed: UInt64 = 1 << 30
    public var maxRatio: UInt64 = 200
    public var ratioAppliesAbove: UInt64 = 1 << 20
    public init() {}
}

/// Reads a zip file from disk without trusting it: every structural and safety rule is
/// checked when it is opened, and every entry's size and CRC again while it is read.
/// All refusals are `FieldError`s on the `file` field that name the offending entry.
public final class ZipReader {
    public let entries: [ZipEntry]
    let fd: Int32
    let fileSize: UInt64

    public init(path: String, limits: ZipLimits = ZipLimits()) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.refuse("The uploaded file could not be read.") }
        var st = stat()
        fstat(fd, &st)
        fileSize = UInt64(st.st_size)
        do {
            entries = try Self.readDirectory(fd: fd, fileSize: fileSize, limits: limits)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    static func refuse(_ message: String) -> FieldError { FieldError("file", message) }

    // MARK: - Central directory

    static func readDirectory(fd: Int32, fileSize: UInt64, limits: ZipLimits) throws -> [ZipEntry] {
        let notZip = refuse("The file is not a zip archive (no end-of-central-directory record was found). Upload a .zip file.")
        guard fileSize >= 22 else { throw notZip }
        let tailLength = min(fileSize, 22 + 65_535)
        let tail = try readExactly(fd: fd, at: fileSize - tailLength, count: Int(tailLength))
        // Scan backwards for the end record whose comment length reaches the end of the file.
        var eocd: Int?
        var i = tail.count - 22
        while i >= 0 {
            if tail.u32(i) == 0x0605_4b50, i + 22 + Int(tail.u16(i + 20)) == tail.count { eocd = i; break }
            i -= 1
        }
        guard let e = eocd else {
            // A file that starts like a zip but has no end record was cut short.
            let head = try readExactly(fd: fd, at: 0, count: 4)
            if head == [0x50, 0x4B, 0x03, 0x04] {
                throw refuse("The zip archive is truncated: its end record is missing. Upload the complete file.")
            }
            throw notZip
        }
        let eocdOffset = fileSize - tailLength + UInt64(e)
        var disk = UInt32(tail.u16(e + 4)), cdDisk = UInt32(tail.u16(e + 6))
        var onDisk = UInt64(tail.u16(e + 8)), total = UInt64(tail.u16(e + 10))
        var cdSize = UInt64(tail.u32(e + 12)), cdOffset = UInt64(tail.u32(e + 16))
        var cdEnd = eocdOffset
        if total == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: the real values are in the ZIP64 end record named by the locator.
            guard eocdOffset >= 20 else { throw notZip }
            let loc = try readExactly(fd: fd, at: eocdOffset - 20, count: 20)
            guard loc.u32(0) == 0x0706_4b50 else { throw refuse("The archive's ZIP64 end record is missing: the file is corrupt or truncated.") }
            let recordOffset = loc.u64(8)
            // Compared without adding: the offset comes from the file and may be near 2^64.
            guard recordOffset <= eocdOffset, eocdOffset - recordOffset >= 56 else { throw refuse("The archive's ZIP64 end record is corrupt.") }
            let r = try readExactly(fd: fd, at: recordOffset, count: 56)
            guard r.u32(0) == 0x0606_4b50 else { throw refuse("The archive's ZIP64 end record is corrupt.") }
            disk = r.u32(16); cdDisk = r.u32(20); onDisk = r.u64(24); total = r.u64(32)
            cdSize = r.u64(40); cdOffset = r.u64(48)
            cdEnd = recordOffset
        }
        guard disk == 0, cdDisk == 0, onDisk == total else {
            throw refuse("Multi-disk (split or spanned) archives are not supported. Upload a single-file zip.")
        }
        guard total <= UInt64(limits.maxEntries) else {
            throw refuse("The archive has \(total) entries; at most \(limits.maxEntries) are allowed.")
        }
        guard cdOffset <= cdEnd, cdSize <= cdEnd - cdOffset else {
            throw refuse("The archive's central directory lies outside the file: it is corrupt or truncated.")
        }
        // Bound what is buffered: 20,000 honest entries need far less than this.
        guard cdSize <= 64 << 20 else {
            throw refuse("The archive's central directory is over 64 MiB; the file is corrupt or crafted.")
        }
        let cd = try readExactly(fd: fd, at: cdOffset, count: Int(cdSize))
        var entries: [ZipEntry] = []
        entries.reserveCapacity(Int(total))
        var seen = Set<String>()
        var totalSize: UInt64 = 0
        var p = 0
        for _ in 0..<total {
            guard p + 46 <= cd.count, cd.u32(p) == 0x0201_4b50 else {
                throw refuse("The archive's central directory is corrupt (an entry header is missing).")
            }
            let madeBy = cd.u16(p + 4), flags = cd.u16(p + 8), method = cd.u16(p + 10)
            let crc = cd.u32(p + 16)
            var csize = UInt64(cd.u32(p + 20)), usize = UInt64(cd.u32(p + 24))
            let nameLength = Int(cd.u16(p + 28)), extraLength = Int(cd.u16(p + 30)), commentLength = Int(cd.u16(p + 32))
            let startDisk = cd.u16(p + 34)
            let external = cd.u32(p + 38)
            var offset = UInt64(cd.u32(p + 42))
            let next = p + 46 + nameLength + extraLength + commentLength
            guard next <= cd.count else { throw refuse("The archive's central directory is truncated.") }
            let nameBytes = cd[(p + 46)..<(p + 46 + nameLength)]
            let name = String(decoding: nameBytes, as: UTF8.self)
            // ZIP64 extra field: 64-bit values for the fields set to 0xFFFFFFFF, in this order.
            var x = p + 46 + nameLength
            let extraEnd = x + extraLength
            while x + 4 <= extraEnd {
                let id = cd.u16(x), size = Int(cd.u16(x + 2))
                guard x + 4 + size <= extraEnd else { break }
                if id == 0x0001 {
                    var q = x + 4
                    func take() -> UInt64? { guard q + 8 <= x + 4 + size else { return nil }; defer { q += 8 }; return cd.u64(q) }
                    if usize == 0xFFFF_FFFF { usize = take() ?? usize }
                    if csize == 0xFFFF_FFFF { csize = take() ?? csize }
                    if offset == 0xFFFF_FFFF { offset = take() ?? offset }
                }
                x += 4 + size
            }
            p = next

            func bad(_ why: String) -> FieldError { refuse("Entry “\(name)”: \(why)") }
            if nameBytes.contains(0) { throw bad("its name contains a NUL byte.") }
            if flags & 0x0001 != 0 || flags & 0x0040 != 0 { throw bad("it is encrypted. Upload an archive without a password.") }
            if startDisk != 0 { throw refuse("Multi-disk (split or spanned) archives are not supported. Upload a single-file zip.") }
            if method != 0 && method != 8 {
                throw bad("it uses compression method \(method); only stored (0) and deflate (8) are accepted.")
            }
            try checkName(name, bad)
            // Unix-made entries carry the file type in the high bits of the external attributes.
            let unixMode = (madeBy >> 8) == 3 ? (external >> 16) & 0o170000 : 0
            if unixMode == 0o120000 { throw bad("it is a symbolic link; only regular files and directories are accepted.") }
            if unixMode != 0, unixMode != 0o100000, unixMode != 0o040000 {
                throw bad("it is not a regular file or directory.")
            }
            if (madeBy >> 8) == 0 || (madeBy >> 8) == 11 || (madeBy >> 8) == 14, external & 0x10 != 0, !name.hasSuffix("/") {
                throw bad("it is marked as a directory but its name does not end with /.")
            }
            if name.hasSuffix("/"), usize != 0 { throw bad("it is a directory with content.") }
            let key = name.hasSuffix("/") ? String(name.dropLast()) : name
            guard seen.insert(key).inserted else { throw bad("the name appears more than once in the archive.") }
            if method == 0, csize != usize { throw bad("it is stored but its compressed and uncompressed sizes differ.") }
            let (allowed, overflow) = csize.multipliedReportingOverflow(by: limits.maxRatio)
            if usize > limits.ratioAppliesAbove, !overflow, usize > allowed {
                throw bad("its compression ratio is over \(limits.maxRatio):1 (\(usize) bytes from \(csize)); this looks like a zip bomb.")
            }
            // totalSize stays ≤ the limit, so the subtraction cannot wrap; usize may be near 2^64.
            if usize > limits.maxTotalUncompressed - totalSize {
                throw refuse("The archive expands to more than \(limits.maxTotalUncompressed >> 20) MiB; upload at most 1 GiB of content.")
            }
            totalSize += usize
            entries.append(ZipEntry(name: name, method: method, crc32: crc, compressedSize: csize,
                                    uncompressedSize: usize, localHeaderOffset: offset))
        }
        try locateData(&entries, fd: fd, end: cdOffset)
        return entries
    }

    static func checkName(_ name: String, _ bad: (String) -> FieldError) throws {
        if name.isEmpty { throw bad("the name is empty.") }
        if name.contains("\\") { throw bad("the name contains a backslash; use / between folders.") }
        if name.hasPrefix("/") || (name.count >= 2 && name.dropFirst().first == ":") {
            throw bad("the path is absolute; paths must be relative to the archive.")
        }
        let segments = name.split(separator: "/", omittingEmptySubsequences: false)
        let body = name.hasSuffix("/") ? segments.dropLast() : segments[...]
        for s in body {
            if s == ".." { throw bad("the path contains a “..” segment, which could write outside the package.") }
            if s == "." || s.isEmpty { throw bad("the path contains an empty or “.” segment.") }
            if let c = s.unicodeScalars.first(where: { !Self.isUnreserved($0) }) {
                throw bad("the name contains “\(c)”, which URL encoding would change; use only letters, digits, - . _ and ~.")
            }
        }
    }

    static func isUnreserved(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F, 0x7E: true
        default: false
        }
    }

    /// Reads each local header, checks it agrees with the central directory, and refuses
    /// entries whose data overlap (the overlapping-file zip bomb) or run past the directory.
    static func locateData(_ entries: inout [ZipEntry], fd: Int32, end: UInt64) throws {
        let order = entries.indices.sorted { entries[$0].localHeaderOffset < entries[$1].localHeaderOffset }
        var previousEnd: UInt64 = 0
        for i in order {
            let e = entries[i]
            func bad(_ why: String) -> FieldError { refuse("Entry “\(e.name)”: \(why)") }
            // Offsets come from the file: compare with what remains instead of adding (no trap near 2^64).
            guard e.localHeaderOffset >= previousEnd, e.localHeaderOffset <= end, end - e.localHeaderOffset >= 30 else {
                throw bad("its data overlaps another entry or lies outside the archive; the file is corrupt or crafted.")
            }
            let h = try readExactly(fd: fd, at: e.localHeaderOffset, count: 30)
            guard h.u32(0) == 0x0403_4b50 else { throw bad("its local header is missing; the file is corrupt.") }
            let n = UInt64(h.u16(26)), x = UInt64(h.u16(28))
            guard end - e.localHeaderOffset - 30 >= n else { throw bad("its local header is truncated.") }
            let localName = try readExactly(fd: fd, at: e.localHeaderOffset + 30, count: Int(n))
            guard localName == Array(e.name.utf8) else {
                throw bad("its local header names a different file; the archive is corrupt or crafted.")
            }
            if h.u16(6) & 0x0001 != 0 { throw bad("it is encrypted. Upload an archive without a password.") }
            guard end - e.localHeaderOffset - 30 - n >= x else {
                throw bad("its data runs past the end of the archive; the file is truncated.")
            }
            let dataStart = e.localHeaderOffset + 30 + n + x
            guard e.compressedSize <= end - dataStart else {
                throw bad("its data runs past the end of the archive; the file is truncated.")
            }
            entries[i].dataOffset = dataStart
            previousEnd = dataStart + e.compressedSize
        }
    }

    static func readExactly(fd: Int32, at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset <= UInt64(Int64.max) - UInt64(count) else {
            throw refuse("The archive points outside itself; the file is corrupt or crafted.")
        }
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            guard n > 0 else { throw refuse("The archive is truncated: it ends before its declared contents.") }
            done += n
        }
        return buffer
    }

    // MARK: - Reading entries

    /// Streams an entry's uncompressed bytes to `sink` in chunks, refusing output beyond the
    /// declared size, a stream that ends early, corrupt data, and a CRC mismatch. Never spins:
    /// each round either consumes input or produces output, or the entry is refused.
    public func read(_ entry: ZipEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        func bad(_ why: String) -> FieldError { Self.refuse("Entry “\(entry.name)”: \(why)") }
        let chunk = 256 * 1024
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { input.deallocate() }
        var remaining = entry.compressedSize
        var position = entry.dataOffset
        var crc: uLong = crc32(0, nil, 0)
        var produced: UInt64 = 0

        func fill() throws -> Int {
            let want = Int(min(UInt64(chunk), remaining))
            var got = 0
            while got < want {
                let n = pread(fd, input.baseAddress! + got, want - got, off_t(position) + off_t(got))
                guard n > 0 else { throw bad("the archive ends inside this entry; the file is truncated.") }
                got += n
            }
            position += UInt64(want)
            remaining -= UInt64(want)
            return want
        }
        func emit(_ bytes: UnsafeRawBufferPointer) throws {
            produced += UInt64(bytes.count)
            guard produced <= entry.uncompressedSize else {
                throw bad("it expands beyond its declared size of \(entry.uncompressedSize) bytes; the archive is corrupt or a zip bomb.")
            }
            crc = crc32(crc, bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(bytes.count))
            try sink(bytes)
        }

        if entry.method == 0 {
            while remaining > 0 {
                let n = try fill()
                try emit(UnsafeRawBufferPointer(rebasing: input[0..<n]))
            }
        } else {
            var stream = z_stream()
            guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw bad("the decompressor could not start.")
            }
            defer { inflateEnd(&stream) }
            let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
            defer { output.deallocate() }
            var ended = false
            while !ended {
                if stream.avail_in == 0 {
                    guard remaining > 0 else { throw bad("its compressed data ends early; the archive is truncated or corrupt.") }
                    let n = try fill()
                    stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = uInt(n)
                }
                stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(chunk)
                let before = stream.avail_in
                let status = inflate(&stream, Z_NO_FLUSH)
                let made = chunk - Int(stream.avail_out)
                switch status {
                case Z_STREAM_END: ended = true
                case Z_OK: break
                case Z_BUF_ERROR where made == 0 && stream.avail_in == before:
                    // No progress possible with the input given: more input is needed.
                    if stream.avail_in != 0 { throw bad("its compressed data is corrupt.") }
                default: throw bad("its compressed data is corrupt.")
                }
                if made > 0 { try emit(UnsafeRawBufferPointer(rebasing: output[0..<made])) }
            }
            if remaining > 0 || stream.avail_in > 0 {
                throw bad("its compressed data is followed by unexpected bytes; the archive is corrupt.")
            }
        }
        guard produced == entry.uncompressedSize else {
            throw bad("it holds \(produced) bytes but declares \(entry.uncompressedSize); the archive is corrupt.")
        }
        guard UInt32(crc) == entry.crc32 else { throw bad("its CRC does not match its content; the archive is corrupt.") }
    }

    /// The whole entry in memory, for tests and small files.
    public func data(_ entry: ZipEntry) throws -> [UInt8] {
        var out: [UInt8] = []
        try read(entry) { out.append(contentsOf: $0) }
        return out
    }
}

extension [UInt8] {
    @inline(__always) func u16(_ i: Int) -> UInt16 { UInt16(self[i]) | UInt16(self[i + 1]) << 8 }
    @inline(__always) func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) | UInt32(u16(i + 2)) << 16 }
    @inline(__always) func u64(_ i: Int) -> UInt64 { UInt64(u32(i)) | UInt64(u32(i + 4)) << 32 }
}
