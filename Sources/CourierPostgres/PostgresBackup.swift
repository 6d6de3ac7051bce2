import CourierCore
import CourierSQLite
import CourierStore
import Foundation
import PostgresNIO

/// Backups of a PostgreSQL store, in the one backup format (SPEC §9): a manifest, a SQLite
/// database file and the blobs it uses. So a backup of either store restores into either:
/// SQLite → PostgreSQL is the way onto several nodes, PostgreSQL → SQLite the way back.
///
/// Tables and columns are matched by name (`user` is `courier_user`, camelCase is snake_case);
/// a column one side has and the other lacks stops the backup or the restore, rather than
/// losing it. Ids are kept, the audit log's links and head too, so the chain verifies after
/// the move either way.
extension PostgresStore {
    /// Backs the database up into `dir` from one snapshot (a REPEATABLE READ transaction), with
    /// the blobs it uses.
    public func backup(to dir: String, afterMove: (@Sendable (Int) -> Void)? = nil) async throws -> BackupManifest {
        try await Backup.run(blobs: blobs, to: dir, afterMove: afterMove) { path in
            let target = try BackupDatabase.create(at: path)
            defer { try? target.close() }
            try await client.withConnection { c in
                try await within("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", end: "ROLLBACK", on: c) { try await copy(into: target, on: $0) }
            }
        }
    }

    /// Every backed-up table, read in the transaction `c` is in.
    private func copy(into target: BackupDatabase, on c: PostgresConnection) async throws {
        let types = try await columnTypes(on: c)
        for table in BackupDatabase.tables {
            let columns = try target.columns(of: table)
            let names = try Self.matched(table, columns, types, direction: "backed up")
            let order = columns.contains("id") ? "id" : (1...min(columns.count, 4)).map(String.init).joined(separator: ", ")
            let query = PostgresQuery(unsafeSQL: "SELECT \(names.joined(separator: ", ")) FROM \(Self.pgTable(table)) ORDER BY \(order)")
            var batch: [[BackupValue]] = []
            for try await row in try await c.query(query, logger: logger) {
                batch.append(try row.map(Self.value))
                if batch.count == 500 { try target.insert(into: table, columns: columns, rows: batch); batch.removeAll() }
            }
            if !batch.isEmpty { try target.insert(into: table, columns: columns, rows: batch) }
        }
        // Ids given out stay given out (a deleted task's id is not a new task's): each table's
        // sequence moves with it. The audit log's is its head (a rolled-back append's id is a
        // gap, not a row the head names).
        for table in BackupDatabase.tables where try table != "audit" && target.columns(of: table).contains("id") {
            let sequence = try await all("SELECT pg_get_serial_sequence(\(Self.pgTable(table)), 'id')", as: String?.self, on: c).first ?? nil
            guard let sequence else { continue }
            let last = try await all("SELECT pg_sequence_last_value(\(sequence)::regclass)", as: Int64?.self, on: c).first ?? nil
            try target.setSequence(table, last ?? 0)
        }
        let head = try await all("SELECT last_id FROM audit_head WHERE id = 1", as: Int64.self, on: c).first ?? 0
        try target.setSequence("audit", head)
    }

    /// Restores a backup (made by either store) into this database, which must hold no Courier
    /// data yet. The backup is checked first (hashes, integrity); its blobs go into the shared
    /// blob folder, then every row in one transaction. On any failure nothing is restored: the
    /// transaction rolls back and the blobs it added are removed.
    public func restore(from dir: String) async throws -> BackupManifest {
        let manifest = try Backup.verify(dir)
        let source = try BackupDatabase.open(Backup.databasePath(in: dir))
        defer { try? source.close() }
        try await client.withConnection { c in try await refuseUnlessEmpty(on: c) }
        let added = try Backup.restoreBlobs(from: dir, manifest: manifest, into: blobs)
        do {
            try await client.withConnection { c in
                try await within("BEGIN ISOLATION LEVEL READ COMMITTED", on: c) { try await restoreRows(from: source, on: $0) }
            }
        } catch {
            // Only what no row uses: a COMMIT whose answer was lost may have gone through. If
            // that cannot be asked, the blobs stay (an orphan is swept later; a lost blob is not found).
            for blob in added where (try? await isBlobReferenced(blob)) == false { blobs.remove(blob) }
            if let e = error as? PSQLError {
                throw BackupError("PostgreSQL refused the backup's rows, and nothing is restored: "
                                  + (e.serverInfo?[.message] ?? String(reflecting: e).prefix(300).description))
            }
            throw error
        }
        await changes.announce()
        return manifest
    }

    private func restoreRows(from source: BackupDatabase, on c: PostgresConnection) async throws {
        // Every change appends to the audit log under this row's lock: holding it keeps other
        // writers out until the restore commits, and the database must still be empty then.
        _ = try await all("SELECT last_id FROM audit_head WHERE id = 1 FOR UPDATE", as: Int64.self, on: c)
        try await refuseUnlessEmpty(on: c)
        let types = try await columnTypes(on: c)
        // The single rows the schema starts with give way to the backup's.
        try await c.query("DELETE FROM settings", logger: logger)
        try await c.query("DELETE FROM catalogue_version", logger: logger)
        for table in BackupDatabase.tables {
            let columns = try source.columns(of: table)
            let names = try Self.matched(table, columns, types, direction: "restored")
            let pgTypes = columns.map { types[Self.pgTable(table)]?[Self.pgName($0)] ?? "" }
            let perStatement = max(1, min(500, 30_000 / max(1, columns.count)))
            try await source.forEachBatch(of: table, size: perStatement) { rows in
                var binds = PostgresBindings(capacity: rows.count * columns.count)
                var tuples: [String] = []
                for row in rows {
                    var placeholders: [String] = []
                    for (i, value) in row.enumerated() {
                        var value = value
                        // Audit rows from before SQLite's links name the id before their own.
                        if table == "audit", columns[i] == "previousId", value == .null, case .integer(let id)? = columns.firstIndex(of: "id").map({ row[$0] }) {
                            value = .integer(id - 1)
                        }
                        try Self.bind(value, as: pgTypes[i], into: &binds, column: "\(table).\(columns[i])")
                        placeholders.append("$\(binds.count)")
                    }
                    tuples.append("(" + placeholders.joined(separator: ", ") + ")")
                }
                let sql = "INSERT INTO \(Self.pgTable(table)) (\(names.joined(separator: ", "))) VALUES " + tuples.joined(separator: ", ")
                try await c.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            }
        }
        try await c.query("INSERT INTO settings (id) VALUES (1) ON CONFLICT (id) DO NOTHING", logger: logger)
        try await c.query("INSERT INTO catalogue_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING", logger: logger)
        // The audit head: the last id given out and the last row's hash.
        let sequences = try source.sequences()
        let sequence = sequences["audit"] ?? 0
        let lastHash = try await all("SELECT hash FROM audit ORDER BY id DESC LIMIT 1", as: String.self, on: c).first ?? ""
        let maxId = try await all("SELECT COALESCE(MAX(id), 0) FROM audit", as: Int64.self, on: c).first ?? 0
        let headId = max(sequence, maxId)
        try await c.query("UPDATE audit_head SET last_id = \(headId), last_hash = \(lastHash) WHERE id = 1", logger: logger)
        // Ids go on from the last one given out (a deleted row's id is not given out again).
        for name in BackupDatabase.tables where try source.columns(of: name).contains("id") {
            let floor = name == "audit" ? headId : sequences[name] ?? 0
            let table = Self.pgTable(name)
            guard (try await all("SELECT pg_get_serial_sequence(\(table), 'id')", as: String?.self, on: c).first ?? nil) != nil else { continue }
            try await c.query(PostgresQuery(unsafeSQL: """
                SELECT setval(pg_get_serial_sequence('\(table)', 'id'), GREATEST(m, 1), m > 0)
                FROM (SELECT GREATEST(COALESCE(MAX(id), 0), \(floor)) AS m FROM \(table)) AS t
                """), logger: logger)
        }
        // Running nodes (on this empty database until now) rebuild their answers.
        _ = try await bumpCatalogueVersion(on: c)
    }

    /// Refuses a database that holds Courier data already: a restore never merges.
    private func refuseUnlessEmpty(on c: PostgresConnection) async throws {
        let held = try await rows("""
            SELECT (SELECT COUNT(*) FROM courier_user), (SELECT COUNT(*) FROM app), (SELECT COUNT(*) FROM audit), (SELECT COUNT(*) FROM whitelist)
            """, as: (Int64, Int64, Int64, Int64).self, on: c).first ?? (Int64(0), Int64(0), Int64(0), Int64(0))
        guard held == (0, 0, 0, 0) else {
            throw BackupError("The database already holds Courier data (\(held.0) users, \(held.1) apps, \(held.2) audit rows): "
                              + "restore into a new, empty database, and start the nodes on it afterwards.")
        }
    }

    /// Every column's type, by table: `[table: [column: data_type]]`.
    private func columnTypes(on c: PostgresConnection) async throws -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        for (table, column, type) in try await rows("""
            SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = current_schema()
            """, as: (String, String, String).self, on: c) {
            out[table, default: [:]][column] = type
        }
        return out
    }

    /// The PostgreSQL names of a backup table's columns; both sides must have the same columns
    /// (PostgreSQL's own bookkeeping aside).
    static func matched(_ table: String, _ columns: [String], _ types: [String: [String: String]], direction: String) throws -> [String] {
        let pgTable = Self.pgTable(table)
        guard let have = types[pgTable] else { throw BackupError("PostgreSQL has no table \(pgTable): the \(table) rows cannot be \(direction).") }
        let names = columns.map(pgName)
        let missing = names.filter { have[$0] == nil }
        let extra = Set(have.keys).subtracting(names)
        guard missing.isEmpty, extra.isEmpty else {
            throw BackupError("The backup's \(table) table and PostgreSQL's \(pgTable) differ (only in the backup: \(missing.sorted()); "
                              + "only in PostgreSQL: \(extra.sorted())); nothing is \(direction). Use the same Courier version on both sides.")
        }
        return names.map { "\"\($0)\"" }
    }

    /// A SQLite table's name in PostgreSQL: snake_case, and `user` is `courier_user`.
    static func pgTable(_ name: String) -> String { name == "user" ? "courier_user" : pgName(name) }

    /// A SQLite column's name in PostgreSQL: snake_case.
    static func pgName(_ name: String) -> String {
        var out = ""
        var previous: Character?
        for ch in name {
            if ch.isUppercase, let p = previous, p.isLowercase || p.isNumber { out.append("_") }
            out.append(Character(ch.lowercased()))
            previous = ch
        }
        return out
    }

    static func value(_ cell: PostgresCell) throws -> BackupValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: return .bool(try cell.decode(Bool.self))
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .timestamptz, .timestamp: return .date(try cell.decode(Date.self))
        case .text, .varchar, .name: return .text(try cell.decode(String.self))
        default: throw BackupError("The column \(cell.columnName) has a type a backup does not carry (\(cell.dataType)).")
        }
    }

    static func bind(_ value: BackupValue, as type: String, into binds: inout PostgresBindings, column: String) throws {
        func refuse() -> BackupError { BackupError("The backup's \(column) holds \(value), which is not a \(type).") }
        switch (value, type) {
        case (.null, _): binds.appendNull()
        case (.bool(let b), "boolean"): binds.append(b)
        case (.integer(let i), "boolean"): binds.append(i != 0)
        case (.integer(let i), "bigint"), (.integer(let i), "integer"): binds.append(i)
        case (.integer(let i), "double precision"): binds.append(Double(i))
        case (.real(let d), "double precision"): binds.append(d)
        case (.date(let d), "timestamp with time zone"): binds.append(d)
        case (.text(let s), "text"): binds.append(s)
        default: throw refuse()
        }
    }
}
