import CourierTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

/// A real `courier serve` (the binary `swift build` made), with its own data folder, an admin's
/// API token, the virtual domain and a generated signing key: what the device tests talk to.
final class LiveCourier {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    let data = temporaryDirectory()
    let port: Int
    let process = Process()
    var token = ""
    var publicKeyPEM = ""
    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    init() throws {
        port = Self.freePort()
        _ = try run(["user", "add", "admin", "--role", "admin"], input: "admin-password-1\n")
        token = try run(["token", "create", "--user", "admin", "--scope", "read,upload,release,admin"]).trimmingCharacters(in: .whitespacesAndNewlines)
        process.executableURL = URL(fileURLWithPath: Self.repository + "/.build/debug/courier")
        process.arguments = ["serve", "--data", data, "--port", String(port)]
        process.currentDirectoryURL = URL(fileURLWithPath: Self.repository)
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    /// A port the kernel says is free now (bound to 0, then released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: data)
    }

    @discardableResult
    func run(_ args: [String], input: String? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.repository + "/.build/debug/courier")
        p.arguments = args + ["--data", data]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let stdin = Pipe()
        p.standardInput = stdin
        try p.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw NSError(domain: "courier \(args.joined(separator: " "))", code: Int(p.terminationStatus)) }
        return text
    }

    /// Waits for the server, then sets the domain, generates a key and creates app 20171228.
    func ready() async throws {
        for _ in 0..<100 {
            if let (status, _) = try? await call("GET", "/readyz"), status == 200 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        _ = try await call("PUT", "/api/v1/settings", json: #"{"virtualDomain":"h5app.example.com"}"#)
        let (_, key) = try await call("POST", "/api/v1/settings/signing-key/generate")
        publicKeyPEM = (try JSONSerialization.jsonObject(with: key) as? [String: Any])?["publicKey"] as? String ?? ""
        _ = try await call("POST", "/api/v1/apps", json: #"{"id":"20171228","name":"Checkout"}"#)
    }

    func call(_ method: String, _ path: String, json: String? = nil) async throws -> (Int, Data) {
        var r = URLRequest(url: url.appendingPathComponent(path))
        r.httpMethod = method
        r.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
        if let json { r.httpBody = Data(json.utf8); r.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: r)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// Uploads `zip` as `version` with the given policies.
    func upload(_ version: String, zip: [UInt8], download: String = "all", install: String = "preload", app: String = "20171228",
                type: String = "normal", main: String = "/www/index.html") async throws {
        let boundary = "CourierClientTest"
        var body = Data()
        for (k, v) in [("version", version), ("type", type), ("androidMin", "1.0"), ("mainUrl", main),
                       ("downloadPolicy", download), ("installPolicy", install)] where !v.isEmpty {
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8))
        }
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.zip\"\r\nContent-Type: application/zip\r\n\r\n".utf8))
        body.append(Data(zip))
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        var r = URLRequest(url: url.appendingPathComponent("/api/v1/apps/\(app)/packages"))
        r.httpMethod = "POST"
        r.httpBody = body
        r.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
        r.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await URLSession.shared.data(for: r)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 201, String(decoding: data, as: UTF8.self))
    }

    /// Releases `version` officially; answers the task's ID.
    @discardableResult
    func release(_ version: String, app: String = "20171228") async throws -> Int {
        let (status, data) = try await call("POST", "/api/v1/apps/\(app)/packages/\(version)/tasks", json: #"{"type":"official"}"#)
        XCTAssertEqual(status, 201, String(decoding: data, as: UTF8.self))
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["id"] as? Int ?? 0
    }

    func events(task: Int) async throws -> [String: Int] {
        let (_, data) = try await call("GET", "/api/v1/tasks/\(task)")
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["events"] as? [String: Int] ?? [:]
    }
}
