#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// The body of `POST /client/v1/update` (SPEC §4), read straight from its bytes: the hot path's
// one parser. It accepts exactly JSON (RFC 8259) — strict grammar, escapes, UTF-8 checked,
// nesting bounded — and keeps only the fields Courier reads, so a request costs a pass over
// its bytes and a few small strings, not a general-purpose object tree.

/// A client request Courier cannot use; `message` says what to fix (it becomes the 400 body).
public struct ClientRequestError: Error, Equatable, Sendable {
    public let message: String
    public init(_ m: String) { message = m }
}

extension ClientRequest {
    /// At most this many apps in one request.
    public static let maxApps = 500
    /// Nesting deeper than this (in fields Courier ignores) is refused rather than recursed into.
    static let maxDepth = 32

    /// Reads `{"platform","clientVersion","deviceId","userId","model","osVersion","network",
    /// "city","apps":[{"id","version"}],"all"}`; unknown fields are skipped.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(ClientRequestError) -> ClientRequest {
        var reader = JSONReader(bytes)
        var platform: String?
        var clientVersion: String?
        var text: [String: String] = [:]
        var installed: [String: PackageVersion?] = [:]
        var all = false
        var failed: [String: Set<PackageVersion>] = [:]
        let notJSON = ClientRequestError("The body must be a JSON object.")
        do throws(ClientRequestError) {
            reader.skipSpace()
            guard reader.peek() == UInt8(ascii: "{") else { throw notJSON }
            try reader.object { reader, key throws(ClientRequestError) in
                switch key {
                case "platform": platform = try reader.textField("platform")
                case "clientVersion": clientVersion = try reader.textField("clientVersion")
                case "deviceId", "userId", "model", "osVersion", "network", "city":
                    let name = key.text
                    text[name] = try reader.textField(name)
                case "apps": installed = try reader.apps()
                case "failed": failed = try reader.failed()
                case "all":
                    guard let b = try reader.bool() else { throw ClientRequestError("all must be true or false.") }
                    all = b
                default: try reader.skipValue(depth: 1)
                }
            }
            reader.skipSpace()
            guard reader.atEnd else { throw notJSON }
        } catch {
            throw error.message == JSONReader.syntax ? notJSON : error
        }
        guard let platformText = platform else { throw ClientRequestError("platform is required.") }
        guard let p = Platform(rawValue: platformText.lowercased()) else { throw ClientRequestError("platform must be android or ios.") }
        guard let versionText = clientVersion else { throw ClientRequestError("clientVersion is required.") }
        guard let v = try? ClientVersion(validating: versionText, field: "clientVersion") else {
            throw ClientRequestError("clientVersion must be 1 to 4 numbers separated by dots, like 10.2.3.")
        }
        return ClientRequest(platform: p, clientVersion: v, deviceId: text["deviceId"] ?? "", userId: text["userId"] ?? "",
                             model: text["model"] ?? "", osVersion: text["osVersion"] ?? "", network: text["network"] ?? "",
                             city: text["city"] ?? "", installed: installed, all: all, failed: failed)
    }
}

/// A cursor over JSON bytes. Syntax errors throw `syntax`; the caller turns them into one message.
struct JSONReader {
    static let syntax = "\u{0}syntax"
    let bytes: UnsafeRawBufferPointer
    var i = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { i >= bytes.count }
    func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    func fail() -> ClientRequestError { ClientRequestError(Self.syntax) }

    mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    mutating func expect(_ c: UInt8) throws(ClientRequestError) {
        skipSpace()
        guard peek() == c else { throw fail() }
        i += 1
    }

    /// An object's key: its raw bytes when it has no escapes (the usual case, compared without
    /// making a string), else its decoded text.
    struct Key {
        let raw: UnsafeRawBufferPointer?
        let decoded: String?

        static func ~= (name: StaticString, key: Key) -> Bool {
            let n = name.utf8CodeUnitCount
            if let raw = key.raw { return raw.count == n && (n == 0 || memcmp(raw.baseAddress!, name.utf8Start, n) == 0) }
            return key.decoded.map { $0.utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: n)) } ?? false
        }

        var text: String { raw.map { String(decoding: $0, as: UTF8.self) } ?? decoded ?? "" }
    }

    mutating func key() throws(ClientRequestError) -> Key {
        guard peek() == UInt8(ascii: "\"") else { throw fail() }
        var j = i + 1
        while j < bytes.count, bytes[j] != UInt8(ascii: "\""), bytes[j] != UInt8(ascii: "\\"), bytes[j] >= 0x20, bytes[j] < 0x80 { j += 1 }
        if j < bytes.count, bytes[j] == UInt8(ascii: "\"") {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(i + 1)..<j])
            i = j + 1
            return Key(raw: raw, decoded: nil)
        }
        guard let s = try string() else { throw fail() }
        return Key(raw: nil, decoded: s)
    }

    /// Calls `field` with each key of an object, the reader placed on its value.
    mutating func object(_ field: (inout JSONReader, Key) throws(ClientRequestError) -> Void) throws(ClientRequestError) {
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipSpace()
            let key = try key()
            try expect(UInt8(ascii: ":"))
            skipSpace()
            try field(&self, key)
            skipSpace()
            guard let c = peek() else { throw fail() }
            i += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw fail() }
        }
    }

    /// Calls `element` with the reader placed on each element of an array.
    mutating func array(_ element: (inout JSONReader) throws(ClientRequestError) -> Void) throws(ClientRequestError) {
        try expect(UInt8(ascii: "["))
        skipSpace()
        if peek() == UInt8(ascii: "]") { i += 1; return }
        while true {
            skipSpace()
            try element(&self)
            skipSpace()
            guard let c = peek() else { throw fail() }
            i += 1
            if c == UInt8(ascii: "]") { return }
            guard c == UInt8(ascii: ",") else { throw fail() }
        }
    }

    /// A string value, or nil (nothing consumed) when the value is not a string.
    mutating func string() throws(ClientRequestError) -> String? {
        guard peek() == UInt8(ascii: "\"") else { return nil }
        i += 1
        let start = i
        var ascii = true
        // The common case: no escapes, copied once; ASCII needs no UTF-8 check.
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                i += 1
                if ascii { return String(decoding: raw, as: UTF8.self) }
                guard let s = String(validating: raw, as: UTF8.self) else { throw fail() }
                return s
            }
            if c >= 0x80 { ascii = false }
            if c == UInt8(ascii: "\\") { break }
            guard c >= 0x20 else { throw fail() }
            i += 1
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw fail() }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek() else { throw fail() }
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { throw fail() }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail()
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail() }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail()
                }
            default:
                guard c >= 0x20 else { throw fail() }
                out.append(c)
            }
        }
        throw fail()
    }

    mutating func hex4() throws(ClientRequestError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail() }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            i += 1
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw fail()
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// true / false, or nil (nothing consumed) for any other value.
    mutating func bool() throws(ClientRequestError) -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { return false }
        let w = UnsafeRawBufferPointer(start: word.utf8Start, count: n)
        for k in 0..<n where bytes[i + k] != w[k] { return false }
        i += n
        return true
    }

    mutating func number() throws(ClientRequestError) {
        if peek() == UInt8(ascii: "-") { i += 1 }
        guard let first = peek(), (0x30...0x39).contains(first) else { throw fail() }
        i += 1
        if first != 0x30 { digits() }
        if peek() == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail() }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            i += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail() }
        }
    }

    @discardableResult
    mutating func digits() -> Int {
        let start = i
        while let c = peek(), (0x30...0x39).contains(c) { i += 1 }
        return i - start
    }

    /// Checks and steps over any value.
    mutating func skipValue(depth: Int) throws(ClientRequestError) {
        guard depth <= ClientRequest.maxDepth else { throw ClientRequestError("The body nests too deeply.") }
        skipSpace()
        guard let c = peek() else { throw fail() }
        switch c {
        case UInt8(ascii: "{"): try object { r, _ throws(ClientRequestError) in try r.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["): try array { r throws(ClientRequestError) in try r.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): guard try bool() != nil else { throw fail() }
        case UInt8(ascii: "n"): guard literal("null") else { throw fail() }
        default: try number()
        }
    }

    /// One of the client's text fields: a string of at most 256 bytes.
    mutating func textField(_ key: String) throws(ClientRequestError) -> String {
        guard let s = try string() else {
            try skipValue(depth: 1)
            throw ClientRequestError("\(key) must be a string of at most 256 bytes.")
        }
        guard s.utf8.count <= 256 else { throw ClientRequestError("\(key) must be a string of at most 256 bytes.") }
        return s
    }

    /// `[{"id": "8 digits", "version": "1.0.0.1" | "0" | "" | null}, …]`
    /// `"failed":[{"id","version","reason"}]`: the versions this device gave up.
    mutating func failed() throws(ClientRequestError) -> [String: Set<PackageVersion>] {
        let shape = ClientRequestError("failed must be a list of {\"id\",\"version\",\"reason\"}.")
        let item = ClientRequestError("Each failed version is {\"id\": \"8 digits\", \"version\": \"1.0.0.1\", \"reason\": \"…\"}.")
        guard peek() == UInt8(ascii: "[") else { throw shape }
        var failed: [String: Set<PackageVersion>] = [:]
        var count = 0
        try array { r throws(ClientRequestError) in
            count += 1
            guard count <= ClientRequest.maxApps else { throw ClientRequestError("failed lists at most \(ClientRequest.maxApps) versions.") }
            guard r.peek() == UInt8(ascii: "{") else { throw item }
            var id: String?
            var version: PackageVersion?
            try r.object { r, key throws(ClientRequestError) in
                switch key {
                case "id": if let v = try r.string() { id = v } else { try r.skipValue(depth: 3) }
                case "version": if let v = try r.string() { version = PackageVersion(fast: v) } else { try r.skipValue(depth: 3) }
                default: try r.skipValue(depth: 3)   // the reason is for people; Courier counts, it does not read it
                }
            }
            guard let id, id.utf8.count == 8, let version else { throw item }
            failed[id, default: []].insert(version)
        }
        return failed
    }

    mutating func apps() throws(ClientRequestError) -> [String: PackageVersion?] {
        let shape = ClientRequestError("apps must be a list of {\"id\",\"version\"}.")
        let item = ClientRequestError("Each app is {\"id\": \"8 digits\", \"version\": \"1.0.0.1\"}.")
        guard peek() == UInt8(ascii: "[") else { throw shape }
        var installed: [String: PackageVersion?] = [:]
        var count = 0
        try array { r throws(ClientRequestError) in
            count += 1
            guard count <= ClientRequest.maxApps else { throw ClientRequestError("apps lists at most \(ClientRequest.maxApps) apps.") }
            guard r.peek() == UInt8(ascii: "{") else { throw item }
            var id: String?
            var version: PackageVersion??
            var badVersion: String?
            try r.object { r, key throws(ClientRequestError) in
                switch key {
                case "id": id = try r.string()
                    if id == nil { throw item }
                case "version":
                    if r.literal("null") {
                        version = .some(nil)
                    } else if let v = try r.string() {
                        if v == "0" || v.isEmpty {
                            version = .some(nil)
                        } else if let parsed = PackageVersion(fast: v) {
                            version = .some(parsed)
                        } else {
                            badVersion = "must be four numbers, like 1.0.0.1, or \"0\" for none."
                        }
                    } else {
                        try r.skipValue(depth: 3)
                        badVersion = "must be a string."
                    }
                default: try r.skipValue(depth: 3)
                }
            }
            guard let id, id.utf8.count == 8 else { throw item }
            if let badVersion { throw ClientRequestError("The version of app \(id) \(badVersion)") }
            installed[id] = version ?? .some(nil)
        }
        return installed
    }
}
