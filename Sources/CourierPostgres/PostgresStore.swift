import CourierCore
import CourierStore
import Foundation
import Logging
import PostgresNIO

/// Courier's state on PostgreSQL (SPEC §9 "Several nodes on PostgreSQL", issue 20): the same
/// named writes and queries as `SQLiteStore`, for several nodes sharing one database and one
/// blob folder. Built area by area behind the `Store` protocol's parts; `StoreContractTests`
/// hold each area to the SQLite store's results.
///
/// Concurrency is stated, not assumed: every change is one READ COMMITTED transaction that takes
/// the row locks its rules need (the audit head, the user rows an administrator rule counts…),
/// and a serialisation failure or deadlock is retried whole.
public final class PostgresStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    public let blobs: BlobStore
    /// Batch imports' files until they are submitted: `imports/{key}/{n}.zip`, in the shared folder.
    public let importsDirectory: String
    /// Told after every committed change this node makes (other nodes' changes arrive through
    /// the catalogue version and LISTEN/NOTIFY).
    public let changes = CatalogueChanges()
    private let runner: Task<Void, Never>
    /// The highest catalogue version this node's snapshot already covers.
    let seenVersion = SeenVersion()

    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the schema up
    /// to date under an advisory lock (several nodes may start together). Blobs live in
    /// `blobDirectory`, which every node shares.
    /// `node` names this node (a server's host and port) for the blobs it adds: see `BlobStore.owner`.
    public init(url: String, blobDirectory: String, node: String? = nil, logger: Logger = Logger(label: "courier.postgres")) async throws {
        let configuration = try PostgresURL(url).configuration
        self.logger = logger
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
        let dir = URL(fileURLWithPath: blobDirectory, isDirectory: true)
        try PrivateDirectory.prepare(dir.path)
        blobs = try BlobStore(root: dir, node: node)
        importsDirectory = dir.appendingPathComponent("imports").path
        try PrivateDirectory.prepare(importsDirectory)
        do {
            try await Self.reach(client, at: try PostgresURL(url).redacted, logger: logger)
            try await PostgresSchema.migrate(client, logger: logger)
        } catch {
            runner.cancel()
            throw error
        }
    }

    /// Fails in `seconds` with a sentence a person can act on, rather than after the pool's
    /// own minute of retries with a bare circuit-breaker error: the database cannot be reached
    /// (host, port, a firewall) or refuses this user (its message, never the password).
    static func reach(_ client: PostgresClient, at place: String, within seconds: Int = 15, logger: Logger) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await client.query("SELECT 1", logger: logger)
                    return true
                } catch let e as PSQLError where e.serverInfo?[.message] != nil {
                    throw StoreError("PostgreSQL at \(place) refused the connection: \(e.serverInfo?[.message] ?? "").")
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return false
            }
            let reached = try await group.next() ?? false
            group.cancelAll()
            guard reached else {
                throw StoreError("Cannot reach PostgreSQL at \(place) within \(seconds) s: check the host and port, the user and password, and that the database runs and accepts this node (a firewall, pg_hba.conf).")
            }
        }
    }

    /// Closes the connections.
    public func shutdown() {
        runner.cancel()
    }

    deinit { runner.cancel() }

    // MARK: Transactions

    /// Runs `body` in one transaction on one connection; a serialisation failure or a deadlock
    /// (another node's transaction in the way) runs it again, a few times.
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withConnection { connection in
                    try await connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
                    do {
                        let value = try await body(connection)
                        try await connection.query("COMMIT", logger: logger)
                        return value
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: logger)
                        throw error
                    }
                }
            } catch let e as PSQLError where attempt < 5 && ["40001", "40P01"].contains(e.serverInfo?[.sqlState] ?? "") {
                try await Task.sleep(for: .milliseconds(5 * attempt))
            } catch let e as PSQLError {
                throw Self.refusal(e) ?? e
            }
        }
    }

    /// Runs `body` between `begin` and `end` (COMMIT, or ROLLBACK for a read-only snapshot) on
    /// `connection`; an error rolls back. (`transaction` inlines the same, for its non-Sendable body.)
    func within<T>(_ begin: String, end: String = "COMMIT", on connection: PostgresConnection,
                   _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await connection.query(PostgresQuery(unsafeSQL: begin), logger: logger)
        do {
            let value = try await body(connection)
            try await connection.query(PostgresQuery(unsafeSQL: end), logger: logger)
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// One change: `body` writes, then its audit row is appended, in one transaction; the
    /// catalogue version rises with catalogue changes (and other nodes are notified on commit).
    func change<T: Sendable>(by actor: ActingUser, _ action: String, subject: String, catalogue: Bool = true,
                             _ body: (PostgresConnection) async throws -> (T, detail: [String: String])) async throws -> T {
        var version: Int64?
        let result = try await transaction { connection in
            let (value, detail) = try await body(connection)
            try await Self.audit(connection, by: actor, action, subject: subject, detail: detail, logger: logger)
            if catalogue { version = try await bumpCatalogueVersion(on: connection) }
            return value
        }
        // Committed: this node's announce below covers it (and every version before it, which
        // committed first: the version row is locked until then).
        if let version { seenVersion.raise(to: version) }
        logger.info("change", metadata: ["user": "\(actor.name)", "action": "\(action)", "subject": "\(subject)",
                                         "hb.request.id": "\(ChangeLog.requestID ?? "-")"])
        if catalogue { await changes.announce() }
        return result
    }

    /// Raises the catalogue version in a change's transaction and tells listening nodes (on
    /// commit); the new version, for the caller to mark seen once committed.
    func bumpCatalogueVersion(on c: PostgresConnection) async throws -> Int64? {
        let version = try await all("UPDATE catalogue_version SET version = version + 1 WHERE id = 1 RETURNING version", as: Int64.self, on: c)
        try await c.query("NOTIFY courier_catalogue", logger: logger)
        return version.first
    }

    /// Follows other nodes' changes until cancelled: a NOTIFY on `courier_catalogue` (sent by
    /// every change's transaction on commit) wakes it at once, and the catalogue version is read
    /// every `interval` besides, so a notification missed (a dropped connection) is caught. A
    /// version this node has not seen tells `changes` (the delivery snapshot rebuilds).
    public func followCatalogue(every interval: Duration = .milliseconds(500)) async {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [client, logger] in
                while !Task.isCancelled {
                    do {
                        try await client.withConnection { c in
                            try await c.listen(on: "courier_catalogue") { notifications in
                                for try await _ in notifications { wake.yield() }
                            }
                        }
                    } catch {
                        logger.warning("Not listening for other nodes' changes; reading the catalogue version on time only",
                                       metadata: ["error": "\(String(reflecting: error).prefix(300))"])
                    }
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: interval)
                }
            }
            for await _ in wakes {
                guard !Task.isCancelled else { break }
                do {
                    let version = try await catalogueVersion()
                    if seenVersion.raise(to: version) { await changes.announce() }
                } catch {
                    logger.error("Could not read the catalogue version", metadata: ["error": "\(String(reflecting: error).prefix(300))"])
                }
            }
            group.cancelAll()
        }
    }

    /// What the schema's rules (PostgresSchema: a trigger's `field|text` message, the one
    /// unfinished task per package) tell the person, or nil for any other error.
    static func refusal(_ e: PSQLError) -> Error? {
        switch e.serverInfo?[.sqlState] {
        case "P0001":   // RAISE EXCEPTION in a rule's trigger
            let message = e.serverInfo?[.message] ?? "The change breaks one of Courier's rules."
            guard let bar = message.firstIndex(of: "|") else { return Conflict(message) }
            return FieldError(String(message[..<bar]), String(message[message.index(after: bar)...]))
        case "23505" where e.serverInfo?[.constraintName] == "task_one_unfinished_per_package":
            return UnfinishedTaskRule.breached
        case "23505" where ["courier_user_name_key", "courier_user_name_folded"].contains(e.serverInfo?[.constraintName] ?? ""):
            return Conflict("A user of that name was just created (names differ at least in more than case).", field: "name")
        default:
            return nil
        }
    }

    // MARK: Reading

    /// Every row of `query`, decoded as `T` (columns by position).
    func rows<each T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: (repeat each T).Type = (repeat each T).self,
                                         on connection: PostgresConnection? = nil) async throws -> [(repeat each T)] {
        var out: [(repeat each T)] = []
        for try await row in try await run(query, on: connection).decode((repeat each T).self) { out.append(row) }
        return out
    }

    /// The first column of every row of `query`.
    func all<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: T.Type, on connection: PostgresConnection? = nil) async throws -> [T] {
        var out: [T] = []
        for try await value in try await run(query, on: connection).decode(T.self) { out.append(value) }
        return out
    }

    func run(_ query: PostgresQuery, on connection: PostgresConnection?) async throws -> PostgresRowSequence {
        if let connection { return try await connection.query(query, logger: logger) }
        return try await client.query(query, logger: logger)
    }
}

/// A `postgres://` URL as PostgresNIO's configuration. TLS is off unless `sslmode=require`
/// (the database sits on the operator's network); the password is never logged: `redacted`
/// is what a log line may show.
public struct PostgresURL: Sendable {
    public let host: String
    public let port: Int
    public let username: String
    let password: String?
    public let database: String
    public let requireTLS: Bool

    public init(_ text: String) throws {
        guard let c = URLComponents(string: text), ["postgres", "postgresql"].contains(c.scheme ?? ""), let host = c.host, !host.isEmpty,
              let user = c.percentEncodedUser?.removingPercentEncoding, !user.isEmpty else {
            throw FieldError("database", "Give the database as postgres://user:password@host:port/database.")
        }
        self.host = host
        port = c.port ?? 5432
        username = user
        password = c.percentEncodedPassword?.removingPercentEncoding
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? user : path
        let mode = c.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        guard ["disable", "require"].contains(mode) else {
            throw FieldError("database", "sslmode is disable (the default) or require.")
        }
        requireTLS = mode == "require"
    }

    /// For logs and `/readyz`: no password.
    public var redacted: String { "postgres://\(username)@\(host):\(port)/\(database)" }

    var configuration: PostgresClient.Configuration {
        var c = PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database,
                                             tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        c.options.maximumConnections = 20
        return c
    }
}

/// The highest catalogue version seen, raised from any task.
final class SeenVersion: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64 = -1

    /// Moves it to `version` only when that is the very next one (nothing another node wrote
    /// slipped in between); true when it moved.
    func advance(to version: Int64) -> Bool {
        lock.withLock {
            guard version == value + 1 else { return false }
            value = version
            return true
        }
    }

    /// Raises it to `version`; true when that was news.
    @discardableResult
    func raise(to version: Int64) -> Bool {
        lock.withLock {
            guard version > value else { return false }
            value = version
            return true
        }
    }
}
