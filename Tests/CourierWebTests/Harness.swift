import CourierArchive
import CourierCore
import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdBcrypt
import HummingbirdTesting
import Logging
import XCTest
@testable import CourierWeb

/// A Courier on a fresh data directory, driven through its router without a socket.
struct Harness: Sendable {
    let dir: String
    let services: Services
    /// The embedded default (the tests reach its database to plant what a user cannot).
    var store: SQLiteStore { services.store as! SQLiteStore }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func make(dir: String = temporaryDirectory(), maxUploadBytes: Int = 300 << 20,
                     publicURL: String = "http://courier.test", consoleURL: String? = nil,
                     trustedProxies: [TrustedProxy] = [], logger: Logger = quietLogger) async throws -> Harness {
        var config = CourierConfiguration()
        config.maxUploadBytes = maxUploadBytes
        config.dataDirectory = dir
        config.resourcesDirectory = repository
        config.publicURL = publicURL
        config.consoleURL = consoleURL
        config.trustedProxies = trustedProxies
        let services = try await buildServices(config, logger: logger)
        return Harness(dir: dir, services: services)
    }

    func addUser(_ name: String, _ password: String = "correct-horse", role: Role = .admin) async throws {
        _ = try await store.createUser(name: name, passwordHash: Bcrypt.hash(password, cost: 4), role: role, by: .commandLine)
    }

    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = Application(router: buildRouter(services), logger: quietLogger)
        try await app.test(.router) { client in try await body(client) }
    }

    /// The same, through a real socket and the server's own HTTP pipeline (where the client
    /// update API's event-loop path lives).
    func testLive(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = Application(router: buildRouter(services), server: httpServer(services),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: quietLogger)
        try await app.test(.live) { client in try await body(client) }
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: dir) }

    /// Signed in as an admin, with the virtual domain set (and a signing key) and app 20171228 created.
    func ready(_ client: any TestClientProtocol, key: Bool = true) async throws -> Browser {
        try await addUser("alice")
        let b = try await Browser.signIn(client, "alice")
        await assertEqual(try await b.post("/settings/virtual-domain", [("virtualDomain", "h5app.example.com"), ("confirm", "true")]).status, .seeOther)
        if key { await assertEqual(try await b.post("/settings/signing-key/generate", []).status, .seeOther) }
        await assertEqual(try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")]).status, .seeOther)
        return b
    }

    /// `.amr` files in the blob store.
    var blobCount: Int {
        let e = FileManager.default.enumerator(atPath: dir + "/blobs")
        var n = 0
        while let f = e?.nextObject() as? String { if f.hasSuffix(".amr") { n += 1 } }
        return n
    }

    /// Files left in the temp folder.
    var tempCount: Int { (try? FileManager.default.contentsOfDirectory(atPath: dir + "/tmp"))?.count ?? 0 }

    /// The CERT.json inside a stored package.
    func cert(_ p: PackageRecord) throws -> [UInt8] {
        let reader = try ZipReader(path: store.blobs.path(for: p.blob))
        return try reader.data(try XCTUnwrap(reader.entries.first { $0.name == "CERT.json" }))
    }
}

/// A signed-in browser: carries the session cookie and the page's CSRF token.
struct Browser: Sendable {
    let client: any TestClientProtocol
    let cookie: String
    let csrf: String

    static func signIn(_ client: any TestClientProtocol, _ name: String, _ password: String = "correct-horse") async throws -> Browser {
        let r = try await LoginForm.open(client).submit(name: name, password: password)
        XCTAssertEqual(r.status, .seeOther)
        let setCookie = r.headers[.setCookie] ?? ""
        let cookie = String(setCookie.split(separator: ";")[0])
        let page = try await client.execute(uri: "/apps", method: .get, headers: [.cookie: cookie])
        let html = String(buffer: page.body)
        let csrf = html.components(separatedBy: #"name="csrf" value=""#).dropFirst().first?.components(separatedBy: "\"").first ?? ""
        return Browser(client: client, cookie: cookie, csrf: csrf)
    }

    func get(_ uri: String, headers: HTTPFields = [:], method: HTTPRequest.Method = .get) async throws -> TestResponse {
        var h = headers
        h[.cookie] = cookie
        return try await client.execute(uri: uri, method: method, headers: h)
    }

    func post(_ uri: String, _ fields: [(String, String)], csrf token: String? = nil, origin: String? = nil) async throws -> TestResponse {
        let body = ([("csrf", token ?? csrf)] + fields).map { k, v in
            "\(k)=\(v.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
        }.joined(separator: "&")
        var h: HTTPFields = [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"]
        if let origin { h[.origin] = origin }
        return try await client.execute(uri: uri, method: .post, headers: h, body: ByteBuffer(string: body))
    }

    /// Several files in one multipart request, as a browser sends a `multiple` file input.
    func uploadFiles(_ uri: String, _ files: [(String, String, [UInt8])]) async throws -> TestResponse {
        let (body, type) = multipart([], files: files)
        return try await client.execute(uri: uri + "?csrf=" + csrf, method: .post, headers: [.cookie: cookie, .contentType: type], body: body)
    }

    func upload(_ uri: String, _ fields: [(String, String)], file: [UInt8]?, filename: String = "package.zip") async throws -> TestResponse {
        let (body, type) = multipart(fields, file: file.map { ("file", filename, $0) })
        let sep = uri.contains("?") ? "&" : "?"
        return try await client.execute(uri: uri + sep + "csrf=" + csrf, method: .post,
                                        headers: [.cookie: cookie, .contentType: type], body: body)
    }
}

/// The sign-in form as a browser has it: the pre-session cookie and the token in the form.
struct LoginForm: Sendable {
    let client: any TestClientProtocol
    let cookie: String
    let token: String

    static func open(_ client: any TestClientProtocol) async throws -> LoginForm {
        let page = try await client.execute(uri: "/login", method: .get)
        let cookie = String((page.headers[.setCookie] ?? "").split(separator: ";").first ?? "")
        let token = page.text.components(separatedBy: #"name="csrf" value=""#).dropFirst().first?.components(separatedBy: "\"").first ?? ""
        XCTAssertTrue(cookie.hasPrefix("courier_login="), "the sign-in page sets its token cookie")
        XCTAssertFalse(token.isEmpty, "the sign-in form carries a token")
        return LoginForm(client: client, cookie: cookie, token: token)
    }

    func submit(name: String, password: String, next: String = "/apps", token: String? = nil, cookie: String? = nil,
                headers extra: HTTPFields = [:]) async throws -> TestResponse {
        let body = [("csrf", token ?? self.token), ("name", name), ("password", password), ("next", next)].map { k, v in
            "\(k)=\(v.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
        }.joined(separator: "&")
        var h: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let c = cookie ?? Optional(self.cookie), !c.isEmpty { h[.cookie] = c }
        h.append(contentsOf: extra)
        return try await client.execute(uri: "/login", method: .post, headers: h, body: ByteBuffer(string: body))
    }
}

func multipart(_ fields: [(String, String)], file: (String, String, [UInt8])?) -> (ByteBuffer, String) {
    multipart(fields, files: file.map { [$0] } ?? [])
}

func multipart(_ fields: [(String, String)], files: [(String, String, [UInt8])]) -> (ByteBuffer, String) {
    let boundary = "----CourierTest\(UUID().uuidString)"
    var b = ByteBuffer()
    for (k, v) in fields {
        b.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n")
    }
    for (name, filename, bytes) in files {
        b.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: application/zip\r\n\r\n")
        b.writeBytes(bytes)
        b.writeString("\r\n")
    }
    b.writeString("--\(boundary)--\r\n")
    return (b, "multipart/form-data; boundary=\(boundary)")
}

/// The fields of a valid Add-offline-package form.
func packageFields(version: String = "1.0.0.1", extra: [(String, String)] = []) -> [(String, String)] {
    [("platformCheckboxes", "true"), ("type", "normal"), ("version", version), ("android", "true"), ("androidMin", "10.0"),
     ("mainUrl", "/www/index.html"), ("extendInfo", #"{"asyncReqRate":"1800"}"#), ("downloadPolicy", "all"),
     ("installPolicy", "preload"), ("confirm", "true")] + extra
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:] }
}

// XCTest's assertions take synchronous autoclosures; these take async ones.
func assertEqual<T: Equatable>(_ a: @autoclosure () async throws -> T, _ b: @autoclosure () async throws -> T, _ message: String = "",
                               file: StaticString = #filePath, line: UInt = #line) async {
    do {
        let (x, y) = (try await a(), try await b())
        XCTAssertEqual(x, y, message, file: file, line: line)
    } catch { XCTFail("\(error)", file: file, line: line) }
}

func assertTrue(_ a: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async {
    do { let value = try await a(); XCTAssertTrue(value, message, file: file, line: line) } catch { XCTFail("\(error)", file: file, line: line) }
}

/// A package row as the Store records it, for tests that commit directly (races, key switches).
func packageRecord(_ version: String, _ type: PackageType = .normal, blob: String) throws -> PackageRecord {
    var draft = PackageDraft()
    draft.version = version
    draft.type = type.rawValue
    draft.android = true
    draft.androidMin = "1"
    var record = PackageRecord(appId: "20171228", settings: try draft.validate(for: AppFacts(fixedType: nil, highestVersion: nil)),
                               createdBy: "alice")
    record.blob = blob
    record.size = 3
    return record
}

extension ActingUser {
    static let alice = ActingUser(name: "alice", role: .admin)
}

func assertNil<T>(_ a: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async {
    do { let value = try await a(); XCTAssertNil(value, message, file: file, line: line) } catch { XCTFail("\(error)", file: file, line: line) }
}

func assertNotNil<T>(_ a: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async {
    do { let value = try await a(); XCTAssertNotNil(value, message, file: file, line: line) } catch { XCTFail("\(error)", file: file, line: line) }
}

func assertFalse(_ a: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async {
    do { let value = try await a(); XCTAssertFalse(value, message, file: file, line: line) } catch { XCTFail("\(error)", file: file, line: line) }
}

func assertNotEqual<T: Equatable>(_ a: @autoclosure () async throws -> T, _ b: @autoclosure () async throws -> T, _ message: String = "",
                                  file: StaticString = #filePath, line: UInt = #line) async {
    do { let (x, y) = (try await a(), try await b()); XCTAssertNotEqual(x, y, message, file: file, line: line) } catch { XCTFail("\(error)", file: file, line: line) }
}

/// Fails (rather than crashing) when `a` is nil.
func unwrap<T>(_ a: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    let value = try await a()
    return try XCTUnwrap(value, message, file: file, line: line)
}

/// Passes when `a` throws; `check` looks at the error.
func assertThrows<T>(_ a: @autoclosure () async throws -> T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line,
                     _ check: (Error) -> Void = { _ in }) async {
    do { _ = try await a(); XCTFail("no error thrown. \(message)", file: file, line: line) } catch { check(error) }
}

/// What was logged at warning or above, for a test that checks the log says something.
final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    var all: [String] { lock.withLock { lines } }
    func append(_ line: String) { lock.withLock { lines.append(line) } }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in Handler(lines: self) }
        logger.logLevel = .warning
        return logger
    }

    struct Handler: LogHandler {
        let lines: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }
            lines.append("\(level) \(message) \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }
}

/// Tests log warnings and errors only: a line per request and per change would bury the test output.
let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}()
