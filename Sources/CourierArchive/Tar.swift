/// POSIX ustar headers with fixed metadata, so the same files always give the same bytes.
public enum TarHeader {
    public static let blockSize = 512

    /// ustar stores a path as `prefix/name`: name ≤ 100 bytes, prefix ≤ 155, split at a `/`.
    static func split(_ path: String) -> (prefix: [UInt8], name: [UInt8])? {
        let bytes = Array(path.utf8)
        if bytes.count <= 100 { return ([], bytes) }
        guard bytes.count <= 256 else { return nil }
        for i in stride(from: min(bytes.count - 1, 155), through: 1, by: -1) where bytes[i] == UInt8(ascii: "/") {
            if bytes.count - i - 1 <= 100 { return (Array(bytes[..<i]), Array(bytes[(i + 1)...])) }
        }
        return nil
    }

    public static func canEncode(_ path: String) -> Bool { split(path) != nil }

    /// The 512-byte header of a regular file (mode 0644, owner 0, mtime 0); nil when the path
    /// does not fit or the size needs more than ustar's 11 octal digits (8 GiB).
    public static func file(path: String, size: UInt64) -> [UInt8]? {
        guard size < 1 << 33, let (prefix, name) = split(path) else { return nil }
        var h = [UInt8](repeating: 0, count: blockSize)
        func put(_ bytes: [UInt8], at offset: Int) { for (i, b) in bytes.enumerated() { h[offset + i] = b } }
        func octal(_ value: UInt64, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: width - 1 - digits.count) + digits).utf8) + [0]
        }
        put(name, at: 0)
        put(octal(0o644, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)
        put(Array("        ".utf8), at: 148)     // checksum counts as spaces
        h[156] = UInt8(ascii: "0")
        put(Array("ustar".utf8) + [0] + Array("00".utf8), at: 257)
        put(Array("root".utf8), at: 265)
        put(Array("root".utf8), at: 297)
        put(prefix, at: 345)
        let sum = h.reduce(0) { $0 + UInt64($1) }
        put(octal(sum, width: 7) + [UInt8(ascii: " ")], at: 148)
        return h
    }

    public static func padding(for size: UInt64) -> Int {
        Int((UInt64(blockSize) - size % UInt64(blockSize)) % UInt64(blockSize))
    }
}
