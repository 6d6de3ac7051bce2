import CourierDomain
import ArgumentParser
import CourierArchive
import CourierCore
import CourierPostgres
import CourierSQLite
import CourierStore
import CourierWeb
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Options every command shares; each flag has an environment twin, the flag winning.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (SQLite database and blobs). Env: COURIER_DATA.")
    var data: String?
    @Option(name: .long, help: "postgres://user:password@host:port/database: Courier's state on PostgreSQL, shared by several nodes (default: SQLite in --data). Env: COURIER_DATABASE.")
    var database: String?
    @Option(name: .customLong("blob-dir"), help: "The blob folder every node shares, with --database (default: --data). Env: COURIER_BLOB_DIR.")
    var blobDir: String?

    var directory: String { data ?? ProcessInfo.processInfo.environment["COURIER_DATA"] ?? "./data" }
    var databaseURL: String? { database ?? ProcessInfo.processInfo.environment["COURIER_DATABASE"] }
    var blobDirectory: String? { blobDir ?? ProcessInfo.processInfo.environment["COURIER_BLOB_DIR"] }

    /// The store these options name: SQLite in the data folder, or PostgreSQL.
    func store() async throws -> any Store {
        try await openStore(StoreLocation(dataDirectory: directory, database: databaseURL, blobDirectory: blobDirectory))
    }
}

@main
struct Courier: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "courier",
        abstract: "Self-hosted delivery of HTML5 offline packages.",
        subcommands: [Serve.self, User.self, Token.self, Push.self, BackupCommand.self, RestoreCommand.self, Audit.self, Check.self, Device.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the console, the client API and the JSON API.")
    @OptionGroup var options: DataOptions
    @Option(help: "Address to listen on. Env: COURIER_HOST.") var host: String?
    @Option(help: "Port to listen on. Env: COURIER_PORT.") var port: Int?
    @Option(name: .customLong("public-url"), help: "Base URL given to clients. Env: COURIER_PUBLIC_URL.") var publicURL: String?
    @Option(name: .customLong("console-url"),
            help: "The console's own address (default: the public URL). On another host than --public-url, package content is served only there, unsandboxed. Env: COURIER_CONSOLE_URL.")
    var consoleURL: String?
    @Option(name: .customLong("idle-timeout"), help: "Seconds before a silent connection is closed (default 30). Env: COURIER_IDLE_TIMEOUT.")
    var idleTimeout: Int?
    @Option(name: .customLong("threads"), help: "Event-loop threads for connections (default: one per core). Env: COURIER_THREADS.")
    var threads: Int?
    @Option(name: .customLong("log-format"), help: "text (default) or json: one JSON object per line. Env: COURIER_LOG_FORMAT.")
    var logFormat: String?
    @Option(name: .customLong("grace-period"),
            help: "On SIGTERM or SIGINT: seconds to let running requests (uploads, imports) finish before stopping them (default 30). Env: COURIER_GRACE_PERIOD.")
    var gracePeriod: Int?
    @Option(name: .customLong("metrics-token"),
            help: "Lets /metrics be read from other addresses than loopback with Authorization: Bearer TOKEN. Env: COURIER_METRICS_TOKEN.")
    var metricsToken: String?
    @Option(name: .customLong("trusted-proxy"), parsing: .upToNextOption,
            help: "Reverse proxies (addresses or CIDR ranges, like 127.0.0.1 10.0.0.0/8) whose X-Forwarded-For is believed. Env: COURIER_TRUSTED_PROXY (comma-separated).")
    var trustedProxy: [String] = []
    @Option(name: .customLong("patch-bases"),
            help: "How many earlier versions each released version gets patches from, 0 for none (default 5). Env: COURIER_PATCH_BASES.")
    var patchBases: Int?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        var config = CourierConfiguration()
        config.dataDirectory = options.directory
        config.database = options.databaseURL
        config.blobDirectory = options.blobDirectory
        config.host = host ?? env["COURIER_HOST"] ?? "127.0.0.1"
        config.port = port ?? env["COURIER_PORT"].flatMap { Int($0) } ?? 8080
        config.publicURL = (publicURL ?? env["COURIER_PUBLIC_URL"] ?? "http://\(config.host):\(config.port)")
            .trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        config.consoleURL = (consoleURL ?? env["COURIER_CONSOLE_URL"]).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
        for (flag, url) in [("--public-url", config.publicURL), ("--console-url", config.consoleURL)] {
            guard let url else { continue }
            guard let u = URL(string: url), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
                fail("\(flag) must be an http:// or https:// URL with a host, like https://courier.example.")
            }
        }
        if publicURL == nil, env["COURIER_PUBLIC_URL"] == nil, ["0.0.0.0", "::", "[::]"].contains(config.host) {
            // Links, cookies and the console's script policy come from the configured address,
            // never from a request's Host: a wildcard address is not one people can open.
            FileHandle.standardError.write(Data("courier: warning: listening on \(config.host) without --public-url; give --public-url (and --console-url) the address people and devices use, or the console's scripts and the links clients receive will not work.\n".utf8))
        }
        config.idleTimeoutSeconds = idleTimeout ?? env["COURIER_IDLE_TIMEOUT"].flatMap { Int($0) } ?? 30
        guard config.idleTimeoutSeconds > 0 else { fail("--idle-timeout must be a positive number of seconds.") }
        config.threads = threads ?? env["COURIER_THREADS"].flatMap { Int($0) }
        if let n = config.threads, !(1...256).contains(n) { fail("--threads must be from 1 to 256.") }
        config.patchBases = patchBases ?? env["COURIER_PATCH_BASES"].flatMap { Int($0) } ?? PatchRules.defaultBases
        guard (0...20).contains(config.patchBases) else { fail("--patch-bases takes a number from 0 to 20.") }
        config.testPatchPause = env["COURIER_TEST_PATCH_PAUSE_MS"].flatMap { Int($0) }.map { .milliseconds($0) }
        let proxies = trustedProxy.isEmpty ? (env["COURIER_TRUSTED_PROXY"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
                                           : trustedProxy.flatMap { $0.split(separator: ",").map(String.init) }
        for text in proxies where !text.isEmpty {
            guard let proxy = TrustedProxy(text) else { fail("--trusted-proxy takes addresses or CIDR ranges, like 127.0.0.1 or 10.0.0.0/8; \(text) is neither.") }
            config.trustedProxies.append(proxy)
        }
        config.metricsToken = metricsToken ?? env["COURIER_METRICS_TOKEN"]
        if let t = config.metricsToken, t.count < 16 { fail("--metrics-token must be at least 16 characters.") }
        if let resources = env["COURIER_RESOURCES"] { config.resourcesDirectory = resources }
        config.secureCookies = (config.consoleURL ?? config.publicURL).hasPrefix("https://")
        let format = logFormat ?? env["COURIER_LOG_FORMAT"] ?? "text"
        guard ["text", "json"].contains(format) else { fail("--log-format is text or json.") }
        config.logJSON = format == "json"
        LoggingSystem.bootstrap { label -> any LogHandler in
            format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardOutput(label: label)
        }
        let logger = Logger(label: "courier")
        if config.separateContentHost {
            announce("Console and JSON API at \(config.consoleURL!); package content at \(config.publicURL) (separate hosts).", config, logger)
            if config.contentHostIsSameSite && !config.secureCookies {
                announce("Warning: the two hosts look like one site; package pages could plant cookies for the console. Use https or another domain for package content.", config, logger)
            }
        } else {
            announce("Console and package content share \(config.publicURL): package content is served sandboxed.", config, logger)
        }
        let grace = gracePeriod ?? env["COURIER_GRACE_PERIOD"].flatMap { Int($0) } ?? 30
        guard grace >= 0 else { fail("--grace-period must be zero or more seconds.") }
        Allocator.configure()
        let app = try await buildApplication(config)
        // SIGTERM or SIGINT: stop accepting, let running requests finish for up to the grace
        // period, then cancel what is left and exit.
        var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: app.logger)
        group.maximumGracefulShutdownDuration = .seconds(grace)
        group.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: group).run()
        announce("Courier stopped.", config, logger)
    }
}

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage console users.",
                                                    subcommands: [Add.self, Disable.self, Enable.self, RoleCommand.self, Password.self])

    /// Runs one user change as the command line (so an operator is never locked out of the console).
    static func change(_ options: DataOptions, _ body: (Actions) async throws -> String) async {
        do {
            print(try await body(Actions(store: try await options.store())))
        } catch let e as CustomStringConvertible {
            fail(e.description)
        } catch {
            fail("\(error)")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user: their sessions and API tokens stop at once.")
        @OptionGroup var options: DataOptions
        @Argument(help: "User name.") var name: String
        func run() async throws {
            await User.change(options) { a in "Disabled \(try await a.setDisabled(by: .commandLine, name: name, true).name)." }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user again.")
        @OptionGroup var options: DataOptions
        @Argument(help: "User name.") var name: String
        func run() async throws {
            await User.change(options) { a in "Enabled \(try await a.setDisabled(by: .commandLine, name: name, false).name)." }
        }
    }

    struct RoleCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "role", abstract: "Change a user's role.")
        @OptionGroup var options: DataOptions
        @Argument(help: "User name.") var name: String
        @Argument(help: "admin, developer or reviewer.") var role: String
        func run() async throws {
            await User.change(options) { a in
                let u = try await a.setRole(by: .commandLine, name: name, role: role)
                return "\(u.name) is now \(u.role.rawValue)."
            }
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password (read from standard input); their sessions end.")
        @OptionGroup var options: DataOptions
        @Argument(help: "User name.") var name: String
        @Flag(name: .customLong("revoke-tokens"), help: "Also revoke the user's API tokens.") var revokeTokens = false
        func run() async throws {
            if isatty(0) != 0 { FileHandle.standardError.write(Data("Password: ".utf8)) }
            let password = readLine(strippingNewline: true) ?? ""
            await User.change(options) { a in
                let u = try await a.resetPassword(by: .commandLine, name: name, password: password, revokeTokens: revokeTokens)
                return "\(u.name) has a new password; their sessions were ended\(revokeTokens ? " and their API tokens revoked" : "")."
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user; the password is read from standard input.")
        @OptionGroup var options: DataOptions
        @Argument(help: "User name.") var name: String
        @Option(help: "admin, developer or reviewer.") var role: String = "developer"

        func run() async throws {
            guard let role = Role(rawValue: role) else { throw ValidationError("The role must be admin, developer or reviewer.") }
            if isatty(0) != 0 { FileHandle.standardError.write(Data("Password: ".utf8)) }
            let password = readLine(strippingNewline: true) ?? ""
            let actions = Actions(store: try await options.store())
            do {
                let user = try await actions.addUser(by: .commandLine, name: name, password: password, role: role)
                print("Created \(role.rawValue) \(user.name).")
            } catch let e as CustomStringConvertible {
                fail(e.description)
            }
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage API tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API token; it is printed once and stored hashed.")
        @OptionGroup var options: DataOptions
        @Option(help: "The user the token acts as.") var user: String
        @Option(help: "Comma-separated scopes: read, upload, release.") var scope: String = "read"
        @Option(help: "What the token is for, shown on the API tokens page.") var name: String = ""
        @Option(help: "The last day the token works (YYYY-MM-DD, UTC); it never expires without one.") var expires: String = ""

        func run() async throws {
            let actions = Actions(store: try await options.store())
            do {
                print(try await actions.createToken(by: .commandLine, userName: user, name: name, scopes: scope, expires: expires))
            } catch let e as CustomStringConvertible {
                fail(e.description)
            }
        }
    }
}

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the database (one consistent snapshot, SQLite or PostgreSQL) and every blob it uses into DIR, with a manifest; safe while the server runs. Either store's backup restores into either.")
    @OptionGroup var options: DataOptions
    @Argument(help: "A new or empty folder.") var dir: String

    func run() async throws {
        do {
            // Test hook (tests/e2e/test_crash.py): the process kills itself after that many
            // entries of the finished backup are moved into place, a crash at a chosen moment.
            let killAfter = ProcessInfo.processInfo.environment["COURIER_TEST_KILL_BACKUP_AFTER_MOVES"].flatMap { Int($0) }
            var afterMove: (@Sendable (Int) -> Void)?
            if let killAfter {
                afterMove = { moved in if moved == killAfter { _ = kill(getpid(), SIGKILL) } }
            }
            let m: BackupManifest
            if let url = options.databaseURL {
                let store = try await PostgresStore(url: url, blobDirectory: options.blobDirectory ?? options.directory)
                defer { store.shutdown() }
                m = try await store.backup(to: dir, afterMove: afterMove)
            } else {
                guard FileManager.default.fileExists(atPath: options.directory + "/courier.sqlite") else {
                    fail("\(options.directory) holds no Courier data (no courier.sqlite); give --data.")
                }
                m = try await Backup.run(try SQLiteStore(dataDirectory: options.directory), to: dir, afterMove: afterMove)
            }
            print("Backed up \(m.apps) apps, \(m.packages) packages, \(m.tasks) tasks and \(m.auditRows) audit rows into \(dir) "
                  + "(\(m.files.count) files, \(m.files.reduce(0) { $0 + $1.size }) bytes).")
        } catch let e as CustomStringConvertible {
            fail(e.description)
        }
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Check a backup against its manifest, then restore it into a new data folder (--data), or into an empty PostgreSQL database (--database, with --blob-dir).")
    @OptionGroup var options: DataOptions
    @Argument(help: "The backup folder.") var dir: String

    func run() async throws {
        do {
            if let url = options.databaseURL {
                // The backup is checked before anything is opened for writing.
                _ = try Backup.verify(dir)
                let store = try await PostgresStore(url: url, blobDirectory: options.blobDirectory ?? options.directory)
                defer { store.shutdown() }
                let m = try await store.restore(from: dir)
                let where_ = (try? PostgresURL(url).redacted) ?? "PostgreSQL"
                print("Restored \(m.apps) apps, \(m.packages) packages, \(m.tasks) tasks and \(m.auditRows) audit rows into \(where_) "
                      + "(blobs in \(store.blobs.root.path)); start the nodes with --database and --blob-dir.")
                return
            }
            let m = try Backup.restore(from: dir, to: options.directory)
            print("Restored \(m.apps) apps, \(m.packages) packages, \(m.tasks) tasks and \(m.auditRows) audit rows into \(options.directory); "
                  + "start it with: courier serve --data \(options.directory)")
        } catch let e as CustomStringConvertible {
            fail(e.description)
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit log.", subcommands: [Verify.self, Head.self])

    struct Head: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the audit chain's head (ROW:HASH); keep it outside this machine and check it later with verify --head.")
        @OptionGroup var options: DataOptions

        func run() async throws {
            guard let head = try await options.store().auditHead() else { fail("The audit log is empty.") }
            print("\(head.row):\(head.hash)")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit log's hash chain; exit 1 and name the first changed or missing row when it is broken.")
        @OptionGroup var options: DataOptions
        @Option(help: "A head printed earlier by `courier audit head` (ROW:HASH): the chain must still pass through it.")
        var head: String?

        func run() async throws {
            let store = try await options.store()
            let check = try await store.verifyAudit()
            print(check.summary)
            if !check.isValid { throw ExitCode(1) }
            guard let head else { return }
            let parts = head.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let row = Int64(parts[0]) else { fail("--head takes ROW:HASH, as `courier audit head` prints it.") }
            let stored = try await store.auditHash(row: row)
            guard stored == String(parts[1]).lowercased() else {
                print("The audit chain was rewritten: row \(row) " + (stored.map { "now has hash \($0), not the recorded \(parts[1])." } ?? "is gone."))
                throw ExitCode(1)
            }
            print("Row \(row) still has the recorded hash: nothing up to it was rewritten.")
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a package zip against every rule an upload applies, and build its .amr locally.")
    @Argument(help: "The zip file.") var zip: String
    @Option(name: .customLong("app-id"), help: "The app ID the zip is for.") var appID: String
    @Option(help: "normal or global.") var type: String = "normal"
    @Option(name: .customLong("global-host"), help: "Global resource host (global packages).") var globalHost: String?
    @Option(name: .customLong("app-key"), help: "App key (global packages).") var appKey: String?
    @Option(help: "Where to write the .amr (default: a temporary file, removed).") var out: String?
    @Option(help: "PEM RSA private key to sign with.") var key: String?

    func run() throws {
        do {
            let id = try AppID(validating: appID)
            guard let kind = PackageType(rawValue: type) else { throw ValidationError("--type is normal or global.") }
            let signer = try key.map { try SigningKey(pem: String(contentsOfFile: $0, encoding: .utf8)) }
            let global = globalHost.flatMap { h in appKey.map { GlobalLocation(host: h, appKey: $0) } }
            let target = out ?? NSTemporaryDirectory() + "courier-check-\(UUID().uuidString).amr"
            defer { if out == nil { unlink(target) } }
            let reader = try ZipReader(path: zip)
            let files = try PackageLayout.contentFiles(of: reader.entries, appID: id, type: kind, global: global, mainUrl: nil)
            let amr = try AmrBuilder.build(from: reader, files: files, appID: id.rawValue, version: "0.0.0.1", signer: signer, to: target)
            print("OK: \(amr.files.count) files, .amr \(amr.size) bytes, sha256 \(amr.sha256)")
        } catch let e as FieldError {
            fail(e.message)
        }
    }
}

/// Says what went wrong on standard error and exits 1 (without the usage text, which would
/// only hide the message).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("courier: \(message)\n".utf8))
    exit(1)
}
