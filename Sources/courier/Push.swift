import ArgumentParser
import AsyncHTTPClient
import CourierArchive
import CourierCore
import Foundation
import NIOCore
import NIOHTTP1

/// `courier push` (SPEC §9, issue 9): upload a package from CI, optionally release it.
/// Exit codes: 0 done, 2 bad input (nothing sent), 3 refused by the server, 4 network.
struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload a package (a .zip, or a folder zipped on the fly) and optionally release it.",
        discussion: """
            Exit codes: 0 done, 2 bad input (nothing created; checked before sending, except a file that vanishes while it is sent), 3 refused by the server, 4 network failure.
            A new version's settings (client range, type, policies, main URL, extended info) default to the app's newest package.
            """)

    @Option(help: "Courier's address, e.g. https://courier.example. Env: COURIER_SERVER.") var server: String?
    @Option(help: "An API token with the read and upload scopes (and release, to release). Env: COURIER_TOKEN.") var token: String?
    @Option(help: "The app ID (8 digits).") var app: String
    @Option(help: "The new version (default: what the console suggests: the app's highest with its last part plus one, or 1.0.0.0).") var version: String?
    @Option(help: "normal or global (a new app's first package only).") var type: String?
    @Option(name: .customLong("android-min")) var androidMin: String?
    @Option(name: .customLong("android-max")) var androidMax: String?
    @Option(name: .customLong("ios-min")) var iosMin: String?
    @Option(name: .customLong("ios-max")) var iosMax: String?
    @Option(name: .customLong("main-url"), help: "The main entrance, e.g. /www/index.html.") var mainUrl: String?
    @Option(name: .customLong("extend-info"), help: "Extended info, a JSON object.") var extendInfo: String?
    @Option(name: .customLong("download-policy"), help: "wifi or all.") var downloadPolicy: String?
    @Option(name: .customLong("install-policy"), help: "lazy or preload.") var installPolicy: String?
    @Option(name: .customLong("setting"), help: "key=value: any package setting by its API name, e.g. one without an option of its own (repeat for several).")
    var settings: [String] = []
    @Option(help: "Release it: gray or official.") var release: String?
    @Option(help: "A whitelist's name, for a gray release (repeat for several).") var whitelist: [String] = []
    @Option(help: "A share of devices, 0.01–100, for a gray release.") var percentage: String?
    @Option(help: "The release description, a Markdown file.") var notes: String?
    @Flag(help: "Print the server's answers as JSON (for scripts) instead of words.") var json = false
    @Argument(help: "A .zip file, or a folder of the app's content (or holding its {appId}/ folder).") var path: String

    enum Failure: Error {
        case input(String), refused(String), network(String)
        var code: Int32 { switch self { case .input: 2; case .refused: 3; case .network: 4 } }
        var message: String { switch self { case .input(let m), .refused(let m), .network(let m): m } }
    }

    func run() async throws {
        do {
            try await push()
        } catch let f as Failure {
            FileHandle.standardError.write(Data("courier push: \(f.message)\n".utf8))
            throw ExitCode(f.code)
        }
    }

    func push() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let base = (server ?? env["COURIER_SERVER"]).map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }),
              let url = URL(string: base), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw Failure.input("Give --server (or COURIER_SERVER) as an http:// or https:// address.")
        }
        guard let token = token ?? env["COURIER_TOKEN"], !token.isEmpty else {
            throw Failure.input("Give --token (or COURIER_TOKEN): an API token with the read and upload scopes.")
        }
        let appId: String
        do { appId = try AppID(validating: app).rawValue } catch { throw Failure.input("--app: \(error)") }
        let task = try taskBody()
        let source = try Source(path: path, appId: appId)

        let api = API(base: base, token: token)
        defer { api.shutdown() }
        let appJSON = try await api.call(.GET, "/api/v1/apps/\(appId)")
        let packages = appJSON["packages"] as? [[String: Any]] ?? []
        let newest = packages.first
        var whitelistIds: [Int] = []
        if !whitelist.isEmpty {
            let lists = try await api.call(.GET, "/api/v1/whitelists")["whitelists"] as? [[String: Any]] ?? []
            for name in whitelist {
                guard let id = lists.first(where: { $0["name"] as? String == name })?["id"] as? Int else {
                    throw Failure.refused("The server has no whitelist named “\(name)”.")
                }
                whitelistIds.append(id)
            }
        }
        let fields = try packageFields(newest: newest, highest: packages.compactMap { $0["version"] as? String })
        if !json { progress("Uploading \(source.label) as \(appId) \(fields.first { $0.0 == "version" }?.1 ?? "")") }
        let package = try await api.upload("/api/v1/apps/\(appId)/packages", fields: fields, source: source, showProgress: !json && isatty(2) == 1)
        let version = package["version"] as? String ?? ""
        var output: [String: Any] = ["package": package, "packageUrl": "\(base)/apps/\(appId)/packages/\(version)"]
        if var task {
            if !whitelistIds.isEmpty { task["whitelistIds"] = whitelistIds }
            let created = try await api.call(.POST, "/api/v1/apps/\(appId)/packages/\(version)/tasks", json: task)
            output["task"] = created
            output["taskUrl"] = "\(base)/tasks/\(created["id"] as? Int ?? 0)"
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: output, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("Package: \(output["packageUrl"] ?? "")")
            if let t = output["task"] as? [String: Any] {
                let status = t["status"] as? String ?? ""
                print("Task: \(output["taskUrl"] ?? "") (\(status == "awaitingApproval" ? "awaiting a reviewer's approval" : status))")
            }
        }
    }

    /// The task to create, checked before anything is sent.
    func taskBody() throws -> [String: Any]? {
        guard let release else {
            if !whitelist.isEmpty || percentage != nil || notes != nil {
                throw Failure.input("--whitelist, --percentage and --notes go with --release gray or official.")
            }
            return nil
        }
        var body: [String: Any] = [:]
        switch TaskType(rawValue: release) {
        case .official:
            guard whitelist.isEmpty, percentage == nil else { throw Failure.input("An official release takes neither --whitelist nor --percentage.") }
            body["type"] = TaskType.official.rawValue
        case .gray:
            body["type"] = TaskType.gray.rawValue
            switch (whitelist.isEmpty, percentage) {
            case (false, nil): body["mode"] = ModeName.whitelist.rawValue
            case (true, let p?):
                guard let value = Double(p), value >= 0.01, value <= 100 else { throw Failure.input("--percentage is a number from 0.01 to 100.") }
                body["mode"] = ModeName.percentage.rawValue
                body["percentage"] = value
            default: throw Failure.input("A gray release takes --whitelist NAME or --percentage P (one of them).")
            }
        default: throw Failure.input("--release is gray or official.")
        }
        if let notes {
            guard let text = try? String(contentsOfFile: notes, encoding: .utf8) else { throw Failure.input("Cannot read --notes \(notes) as UTF-8 text.") }
            guard text.utf8.count <= 60_000 else { throw Failure.input("--notes \(notes) is over 60 KB.") }
            body["description"] = text
        }
        return body
    }

    /// The upload form's fields: what was given, else the newest package's.
    func packageFields(newest: [String: Any]?, highest: [String]) throws -> [(String, String)] {
        func old(_ key: String) -> String? { newest?[key] as? String }
        let next: String
        if let version { next = version } else {
            let top = highest.compactMap { try? PackageVersion(validating: $0) }.max()
            guard let v = PackageVersion.suggestedNext(after: top) else { throw Failure.input("No version follows \(top?.description ?? "?"); give --version.") }
            next = v.description
        }
        let androidMin = androidMin ?? (iosMin == nil ? old("androidMin") : nil)
        let iosMin = iosMin ?? (self.androidMin == nil ? old("iosMin") : nil)
        guard androidMin != nil || iosMin != nil else {
            throw Failure.input("The app has no package yet: give --android-min and/or --ios-min (the client range).")
        }
        var given = ["mainUrl": mainUrl, "extendInfo": extendInfo, "downloadPolicy": downloadPolicy,
                     "installPolicy": installPolicy].compactMapValues { $0 }
        for pair in settings {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, let field = PackageField.named[parts[0]], !field.laidOutByHand else {
                throw Failure.input("--setting \(pair): give key=value with one of " + PackageField.described.map(\.key).joined(separator: ", ")
                                    + " (the version, type and client range have options of their own).")
            }
            given[parts[0]] = parts[1]
        }
        var f: [(String, String)] = [("version", next), ("type", type ?? old("type") ?? "normal")]
        if let androidMin { f += [("android", "true"), ("androidMin", androidMin), ("androidMax", androidMax ?? (self.androidMin == nil ? old("androidMax") : nil) ?? "")] }
        if let iosMin { f += [("ios", "true"), ("iosMin", iosMin), ("iosMax", iosMax ?? (self.iosMin == nil ? old("iosMax") : nil) ?? "")] }
        // Every other setting: as given, else the newest package's, else the server's default.
        for field in PackageField.described {
            if let value = given[field.key] ?? old(field.key) { f.append((field.key, value)) }
        }
        return f
    }

    func progress(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
}

/// What is uploaded: a zip file as it is, or a folder zipped while it is sent.
struct Source: Sendable {
    enum Kind: Sendable { case zip(size: Int64), folder(FolderZip) }
    let path: String
    let kind: Kind
    let label: String

    init(path: String, appId: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Push.Failure.input("\(path) does not exist.")
        }
        if isDirectory.boolValue {
            do { kind = .folder(try FolderZip(folder: path, appId: appId)) } catch { throw Push.Failure.input(error.message) }
            if case .folder(let z) = kind {
                label = "folder \(path) (\(z.entries.count) files, zipped on the fly)"
                if !z.hidden.isEmpty {
                    FileHandle.standardError.write(Data(("Left out \(z.hidden.count) hidden name\(z.hidden.count == 1 ? "" : "s") (starting with a dot, never published): "
                        + z.hidden.prefix(5).joined(separator: ", ") + (z.hidden.count > 5 ? ", …" : "") + "\n").utf8))
                }
            } else { label = path }
        } else {
            guard path.lowercased().hasSuffix(".zip") else { throw Push.Failure.input("\(path) is neither a .zip file nor a folder.") }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
            kind = .zip(size: size)
            label = "\(path) (\(size) bytes)"
        }
    }

    /// A fresh reader of the bytes: zip file chunks, or the folder's zip.
    func reader() throws -> () throws -> [UInt8]? {
        switch kind {
        case .zip:
            guard let handle = FileHandle(forReadingAtPath: path) else { throw Push.Failure.input("Cannot read \(path).") }
            return { let d = handle.readData(ofLength: 256 * 1024); return d.isEmpty ? nil : [UInt8](d) }
        case .folder(let z):
            let stream = z.stream()
            return {
                do { return try stream.next() } catch let e as FieldError { throw Push.Failure.input(e.message) }
            }
        }
    }

    var size: Int64? { if case .zip(let s) = kind { s } else { nil } }
}

/// The request body: the form's fields, the file part's bytes as they are read, the end.
struct MultipartBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let head: [UInt8]
    let tail: [UInt8]
    let source: Source
    let sent: Counter

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Int64 = 0
        func add(_ n: Int) { lock.withLock { value += Int64(n) } }
        var count: Int64 { lock.withLock { value } }
    }

    init(boundary: String, fields: [(String, String)], source: Source, sent: Counter) {
        var head = ""
        for (name, value) in fields {
            head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"package.zip\"\r\nContent-Type: application/zip\r\n\r\n"
        self.head = Array(head.utf8)
        tail = Array("\r\n--\(boundary)--\r\n".utf8)
        self.source = source
        self.sent = sent
    }

    var length: Int64? { source.size.map { Int64(head.count + tail.count) + $0 } }

    struct AsyncIterator: AsyncIteratorProtocol {
        var stage = 0
        let body: MultipartBody
        var read: (() throws -> [UInt8]?)?

        mutating func next() async throws -> ByteBuffer? {
            var bytes: [UInt8]?
            switch stage {
            case 0: stage = 1; bytes = body.head
            case 1:
                if read == nil { read = try body.source.reader() }
                if let chunk = try read?() { bytes = chunk } else { stage = 2; bytes = body.tail }
            default: return nil
            }
            guard let bytes else { return nil }
            body.sent.add(bytes.count)
            return ByteBuffer(bytes: bytes)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}

/// The JSON API, answering parsed JSON or the failure that maps to an exit code.
struct API {
    let base: String
    let token: String
    let client = HTTPClient(eventLoopGroupProvider: .singleton)

    func shutdown() { try? client.syncShutdown() }

    func call(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        }
        return try await send(request, timeout: .seconds(60))
    }

    func upload(_ path: String, fields: [(String, String)], source: Source, showProgress: Bool) async throws -> [String: Any] {
        let boundary = "courier-push-" + UUID().uuidString
        let sent = MultipartBody.Counter()
        let body = MultipartBody(boundary: boundary, fields: fields, source: source, sent: sent)
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        request.body = .stream(body, length: body.length.map { .known($0) } ?? .unknown)
        let ticker = showProgress ? Task {
            while !Task.isCancelled {
                let done = sent.count
                let line = body.length.map { "\rSent \(Self.mb(done)) of \(Self.mb($0)) (\(done * 100 / max($0, 1)) %)" } ?? "\rSent \(Self.mb(done))"
                FileHandle.standardError.write(Data(line.utf8))
                try? await Task.sleep(for: .milliseconds(250))
            }
        } : nil
        defer {
            ticker?.cancel()
            if showProgress { FileHandle.standardError.write(Data("\rSent \(Self.mb(sent.count)).                    \n".utf8)) }
        }
        return try await send(request, timeout: .hours(2))
    }

    static func mb(_ n: Int64) -> String { String(format: "%.1f MB", Double(n) / 1_000_000) }

    func send(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> [String: Any] {
        let response: HTTPClientResponse
        let data: ByteBuffer
        do {
            response = try await client.execute(request, timeout: timeout)
            data = try await response.body.collect(upTo: 16 << 20)
        } catch let f as Push.Failure {
            throw f
        } catch {
            throw Push.Failure.network("Could not talk to \(base): \(error).")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: data))) as? [String: Any] ?? [:]
        guard (200..<300).contains(response.status.code) else {
            let e = object["error"] as? [String: Any]
            let field = (e?["field"] as? String).map { " (\($0))" } ?? ""
            throw Push.Failure.refused("The server refused \(request.method.rawValue) \(request.url.dropFirst(base.count)) with \(response.status.code): "
                                       + "\(e?["message"] as? String ?? String(buffer: data).prefix(300).description)\(field)")
        }
        return object
    }
}
