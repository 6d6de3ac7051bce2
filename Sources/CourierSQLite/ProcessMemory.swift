import CMalloc
import Foundation
import GRDBSQLite

/// The process's memory as an operator's monitoring sees it (`/metrics`) and as the soak
/// watches it: resident set, the C heap over all of glibc's arenas (bytes in use, and bytes the
/// allocator holds free), and SQLite's own allocations (its page caches are most of them).
public struct ProcessMemory: Sendable, Equatable {
    public var resident: Int = 0
    public var heapInUse: Int = 0
    public var heapFree: Int = 0
    public var arenas: Int = 0
    public var sqlite: Int = 0

    public init() {}

    public static func read() -> ProcessMemory {
        var m = ProcessMemory()
        // /proc/self/statm: size resident shared … in pages.
        if let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = text.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) { m.resident = pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        // malloc_info's closing totals cover every arena (and it counts the arenas).
        if let xml = mallocInfo() { m.readMallocInfo(xml) }
        m.sqlite = Int(clamping: sqlite3_memory_used())
        return m
    }

    /// glibc's `malloc_info` XML, written into memory.
    static func mallocInfo() -> String? {
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return nil }
        let status = malloc_info(0, stream)
        fclose(stream)
        defer { free(buffer) }
        guard status == 0, let buffer else { return nil }
        return String(cString: buffer)
    }

    /// Takes the totals after the last `</heap>`: the arenas' system bytes less their free bytes
    /// (fast and rest bins) is what is in use in them; mmapped chunks are added to it.
    public mutating func readMallocInfo(_ xml: String) {
        arenas = xml.components(separatedBy: "<heap nr=").count - 1
        let tail = xml.range(of: "</heap>", options: .backwards).map { xml[$0.upperBound...] } ?? xml[...]
        let fast = Self.size(in: tail, type: "total", name: "fast")
        let rest = Self.size(in: tail, type: "total", name: "rest")
        let mmap = Self.size(in: tail, type: "total", name: "mmap")
        let current = Self.size(in: tail, type: "system", name: "current")
        heapFree = fast + rest
        heapInUse = max(0, current - heapFree) + mmap
    }

    /// `size` of `<type type="name" … size="N"/>`.
    static func size(in text: Substring, type: String, name: String) -> Int {
        guard let start = text.range(of: "<\(type) type=\"\(name)\"") else { return 0 }
        let element = text[start.upperBound...].prefix { $0 != ">" }
        guard let sizeAt = element.range(of: "size=\"") else { return 0 }
        return Int(element[sizeAt.upperBound...].prefix { $0 != "\"" }) ?? 0
    }
}

/// glibc's allocator, tuned for a server that runs for years. Measured by the soak (README):
/// with the defaults, up to 8 arenas per core each kept their own freed memory, and the
/// mmap threshold rose after each big buffer was freed, so later big buffers (uploads, zip
/// blocks) came from the heap and left holes; free memory held by the allocator grew all along
/// (5 → 12 MB in 10 minutes) while what was in use stayed small.
public enum Allocator {
    /// One arena per core, and big blocks (128 KB and up) always their own mapping, returned to
    /// the system when freed. An operator's own `GLIBC_TUNABLES` for malloc, or `MALLOC_*`
    /// variables, win.
    public static func configure(cores: Int = ProcessInfo.processInfo.activeProcessorCount) {
        let env = ProcessInfo.processInfo.environment
        if env["GLIBC_TUNABLES"]?.contains("glibc.malloc.") == true || env.keys.contains(where: { $0.hasPrefix("MALLOC_") }) { return }
        mallopt(M_ARENA_MAX, Int32(clamping: max(2, cores)))
        mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    }

    /// Gives the free pages of every arena back to the system (run now and then, off the hot path).
    public static func trim() { malloc_trim(0) }
}
