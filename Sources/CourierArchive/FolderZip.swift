import CZlib
import CourierCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A folder zipped into the package layout (SPEC §2) while it is read: `courier push` sends a
/// build folder without writing a zip first. The zip is produced in chunks on demand (pull:
/// `next()`), so memory stays at one read buffer and one deflate stream whatever the size.
///
/// Each file is deflated with its sizes and CRC in a data descriptor after its data, the way
/// streaming zip writers do; the central directory at the end repeats them.
public struct FolderZip: Sendable {
    public struct Entry: Sendable, Equatable {
        /// The name inside the zip, `{appId}/…`.
        public let name: String
        public let path: String
        public let size: UInt64
        /// The file as listed (device and inode): what is read later must be the same file, not
        /// one reached through a folder swapped for a link meanwhile.
        var identity: (dev: UInt64, ino: UInt64) = (0, 0)
        public static func == (a: Entry, b: Entry) -> Bool { a.name == b.name && a.path == b.path && a.size == b.size }
    }

    public let entries: [Entry]
    /// Hidden names (starting with a dot: `.git`, `.env`) left out of the package, relative to
    /// the app's folder: a build folder's secrets are not published.
    public private(set) var hidden: [String] = []

    /// Lists `folder`'s files under `{appId}/`. A folder whose only entry is a directory named
    /// `appId` is taken as the layout itself; any other folder is the app's content. Refuses
    /// what the server would refuse (names, symbolic links, counts, sizes) before any byte is sent.
    public init(folder: String, appId: String, limits: ZipLimits = ZipLimits()) throws(FieldError) {
        func refuse(_ message: String) -> FieldError { FieldError("path", message) }
        let fm = FileManager.default
        let top = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        let root: String, prefix: String
        // Dot files beside the {appId} folder (.DS_Store, .gitignore) do not change the layout.
        // lstat, not stat: an {appId} that is a link to elsewhere (`build/30000040 -> ~`) would
        // publish whatever it points at.
        var topStat = stat()
        if top.filter({ !$0.hasPrefix(".") }) == [appId], lstat(folder + "/" + appId, &topStat) == 0 {
            switch topStat.st_mode & S_IFMT {
            case S_IFDIR: root = folder + "/" + appId
            case S_IFLNK: throw refuse("\(folder)/\(appId) is a symbolic link; a package holds only regular files in real folders.")
            default: root = folder
            }
        } else {
            root = folder
        }
        prefix = appId + "/"
        var found: [Entry] = []
        var total: UInt64 = 0
        var pending = [""]
        while let relative = pending.popLast() {
            let dir = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? fm.contentsOfDirectory(atPath: dir) else { throw refuse("Cannot read the folder \(dir).") }
            for name in names.sorted().reversed() {
                let rel = relative.isEmpty ? name : relative + "/" + name
                if name.hasPrefix(".") {
                    hidden.append(rel)
                    continue
                }
                let full = root + "/" + rel
                var st = stat()
                guard lstat(full, &st) == 0 else { throw refuse("Cannot read \(full).") }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: pending.append(rel)
                case S_IFREG:
                    do {
                        try ZipReader.checkName(prefix + rel) { FieldError("path", "\(full): \($0)") }
                    } catch let e as FieldError { throw e } catch { throw refuse("\(full): \(error)") }
                    let size = UInt64(st.st_size)
                    guard size <= limits.maxTotalUncompressed - total else {
                        throw refuse("The folder holds more than \(limits.maxTotalUncompressed >> 20) MiB; a package holds at most that.")
                    }
                    total += size
                    found.append(Entry(name: prefix + rel, path: full, size: size, identity: (UInt64(st.st_dev), UInt64(st.st_ino))))
                    guard found.count <= limits.maxEntries else {
                        throw refuse("The folder holds more than \(limits.maxEntries) files; a package holds at most that.")
                    }
                case S_IFLNK: throw refuse("\(full) is a symbolic link; a package holds only regular files.")
                default: throw refuse("\(full) is not a regular file.")
                }
            }
        }
        guard !found.isEmpty else { throw refuse("The folder \(folder) holds no files.") }
        entries = found.sorted { $0.name < $1.name }
    }

    /// The zip's bytes, produced chunk by chunk.
    public func stream(chunkSize: Int = 64 * 1024, limits: ZipLimits = ZipLimits()) -> Stream {
        Stream(entries: entries, chunkSize: chunkSize, limits: limits)
    }

    /// Pulls the zip out in chunks: each call reads at most one buffer of a file.
    public final class Stream {
        struct Written { let name: [UInt8]; let method: Int; let crc: UInt32; let compressed: UInt32; let size: UInt32; let offset: UInt32 }
        let entries: [Entry]
        let chunkSize: Int
        let limits: ZipLimits
        /// 8 (deflate), or 0 (stored) for a large file that deflates beyond the ratio the
        /// server takes for a zip bomb.
        var method = 8
        var index = 0
        var offset: UInt64 = 0
        var written: [Written] = []
        var fd: Int32 = -1
        var z = z_stream()
        var zOpen = false
        var crc: uLong = 0
        var bytesRead: UInt64 = 0
        var entryStart: UInt64 = 0
        var compressed: UInt64 = 0
        var finished = false
        var input: [UInt8]
        var output: [UInt8]

        init(entries: [Entry], chunkSize: Int, limits: ZipLimits) {
            self.entries = entries
            self.chunkSize = chunkSize
            self.limits = limits
            input = [UInt8](repeating: 0, count: chunkSize)
            output = [UInt8](repeating: 0, count: chunkSize + 1024)
        }

        deinit {
            if fd >= 0 { close(fd) }
            if zOpen { deflateEnd(&z) }
        }

        /// The next bytes of the zip, or nil at its end.
        public func next() throws(FieldError) -> [UInt8]? {
            while !finished {
                var out: [UInt8]
                if fd < 0 {
                    guard index < entries.count else {
                        finished = true
                        return centralDirectory()
                    }
                    out = try begin(entries[index])
                } else {
                    out = try deflateMore()
                }
                if !out.isEmpty {
                    offset += UInt64(out.count)
                    return out
                }
            }
            return nil
        }

        func begin(_ e: Entry) throws(FieldError) -> [UInt8] {
            fd = try Self.openRegular(e)
            z = z_stream()
            guard deflateInit2_(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw FieldError("path", "Cannot start compressing \(e.path).")
            }
            zOpen = true
            method = 8
            if e.size > limits.ratioAppliesAbove, try deflatedSize(e) * limits.maxRatio < e.size { method = 0 }
            crc = crc32(0, nil, 0)
            bytesRead = 0
            compressed = 0
            entryStart = offset
            guard offset <= UInt64(UInt32.max) else { throw FieldError("path", "The zip grew beyond 4 GiB.") }
            let name = Array(e.name.utf8)
            // Version 2.0, flags: data descriptor (bit 3) and UTF-8 names (bit 11), deflate, no time.
            var h = le32(0x0403_4b50) + le16(20) + le16(0x0808) + le16(method) + le16(0) + le16(0x21)
            h += le32(0) + le32(0) + le32(0) + le16(name.count) + le16(0)
            return h + name
        }

        func deflateMore() throws(FieldError) -> [UInt8] {
            let n = input.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, chunkSize) }
            guard n >= 0 else { throw FieldError("path", "Cannot read \(entries[index].path): \(String(cString: strerror(errno))).") }
            let last = n == 0
            if n > 0 {
                crc = input.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, uInt(n)) }
                bytesRead += UInt64(n)
                guard bytesRead <= UInt64(UInt32.max) else { throw FieldError("path", "\(entries[index].path) is larger than 4 GiB.") }
            }
            var produced: [UInt8] = []
            var status: Int32 = Z_STREAM_END
            if method == 0 {
                produced = Array(input[0..<n])
            } else {
                status = deflateStep(&z, count: n) { produced += $0 }
            }
            compressed += UInt64(produced.count)
            guard !last else {
                guard status == Z_STREAM_END else { throw FieldError("path", "Compressing \(entries[index].path) failed.") }
                deflateEnd(&z)
                zOpen = false
                close(fd)
                fd = -1
                let e = entries[index]
                guard compressed <= UInt64(UInt32.max) else { throw FieldError("path", "\(e.path) is too large to zip.") }
                written.append(Written(name: Array(e.name.utf8), method: method, crc: UInt32(crc), compressed: UInt32(compressed), size: UInt32(bytesRead),
                                       offset: UInt32(entryStart)))
                index += 1
                return produced + le32(0x0807_4b50) + le32(UInt32(crc)) + le32(UInt32(compressed)) + le32(UInt32(bytesRead))
            }
            return produced
        }

        /// Deflates the first `count` bytes of `input` (none: the end of the stream, flushed),
        /// handing each piece of output to `emit`; answers zlib's last status.
        func deflateStep(_ stream: inout z_stream, count: Int, emit: (ArraySlice<UInt8>) -> Void) -> Int32 {
            var status: Int32 = Z_OK
            let finish = count == 0
            input.withUnsafeMutableBufferPointer { inp in
                stream.next_in = inp.baseAddress
                stream.avail_in = uInt(count)
                repeat {
                    output.withUnsafeMutableBufferPointer { o in
                        stream.next_out = o.baseAddress
                        stream.avail_out = uInt(o.count)
                        status = CZlib.deflate(&stream, finish ? Z_FINISH : Z_NO_FLUSH)
                        emit(ArraySlice(o[0..<(o.count - Int(stream.avail_out))]))
                    }
                } while stream.avail_out == 0 || (finish && status == Z_OK)
            }
            return status
        }

        /// Opens a file listed earlier, refusing it if it has since become a link or something
        /// other than a regular file.
        static func openRegular(_ e: Entry) throws(FieldError) -> Int32 {
            let path = e.path
            // O_NONBLOCK: a file swapped for a FIFO since it was listed must not hold the upload up.
            let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                if errno == ELOOP { throw FieldError("path", "\(path) is a symbolic link; a package holds only regular files.") }
                throw FieldError("path", "Cannot read \(path): \(String(cString: strerror(errno))).")
            }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                close(fd)
                throw FieldError("path", "\(path) is not a regular file.")
            }
            // O_NOFOLLOW guards the last name only: a folder on the way swapped for a link leads
            // to another file, which is refused here.
            guard e.identity == (0, 0) || (UInt64(st.st_dev), UInt64(st.st_ino)) == e.identity else {
                close(fd)
                throw FieldError("path", "\(path) changed while the folder was being sent (a folder on its way was replaced); send it again.")
            }
            return fd
        }

        /// How large the file deflates to (a first pass, output dropped).
        func deflatedSize(_ e: Entry) throws(FieldError) -> UInt64 {
            let f = try Self.openRegular(e)
            defer { close(f) }
            var s = z_stream()
            deflateInit2_(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            defer { deflateEnd(&s) }
            var total: UInt64 = 0
            while true {
                let n = input.withUnsafeMutableBytes { Glibc.read(f, $0.baseAddress, chunkSize) }
                guard n >= 0 else { throw FieldError("path", "Cannot read \(e.path).") }
                _ = deflateStep(&s, count: n) { total += UInt64($0.count) }
                if n == 0 { return total }
            }
        }

        func centralDirectory() -> [UInt8] {
            var cd: [UInt8] = []
            for w in written {
                cd += le32(0x0201_4b50) + le16(0x0314) + le16(20) + le16(0x0808) + le16(w.method) + le16(0) + le16(0x21)
                cd += le32(w.crc) + le32(w.compressed) + le32(w.size) + le16(w.name.count) + le16(0) + le16(0) + le16(0) + le16(0)
                cd += le32(UInt32(0o100644) << 16) + le32(w.offset) + w.name
            }
            let start = UInt32(truncatingIfNeeded: offset)
            return cd + le32(0x0605_4b50) + le16(0) + le16(0) + le16(written.count) + le16(written.count)
                + le32(UInt32(cd.count)) + le32(start) + le16(0)
        }

        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    }
}
