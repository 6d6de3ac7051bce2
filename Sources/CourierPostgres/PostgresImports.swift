import CourierCore
import CourierStore
import Foundation
import PostgresNIO

/// Batch imports on PostgreSQL: their files in the shared folder's `imports/`, their rows here.
/// A submission starts by moving the import from `open` to `submitting` in one statement, so
/// a second click on another node finds it taken.
extension PostgresStore: ImportStore {
    static let importColumns = "id, key, created_by, created_at, expires_at, status"
    static let rowColumns = "import_id, n, file_name, app_id, new_app, type, file_count, size, fields, error, refused, package_id"
    typealias ImportRowRow = (Int64, Int32, String, String?, Bool, String?, Int32, Int64, String, String?, Bool, Int64?)

    func importRecords(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [ImportRecord] {
        try await rows(query, as: (Int64, String, String, Date, Date, String).self, on: c).map {
            var r = ImportRecord(id: $0.0, key: $0.1, createdBy: $0.2, createdAt: $0.3, expiresAt: $0.4)
            r.status = $0.5
            return r
        }
    }

    static func importRow(_ r: ImportRowRow) -> ImportRowRecord {
        var row = ImportRowRecord(importId: r.0, n: Int(r.1), fileName: r.2, appId: r.3, newApp: r.4, type: r.5, fileCount: Int(r.6),
                                  size: r.7, draft: PackageDraft(), error: r.9)
        row.fields = r.8; row.refused = r.10; row.packageId = r.11
        return row
    }

    public func importFile(key: String, n: Int) -> String { "\(importsDirectory)/\(key)/\(n).zip" }

    public func createImport(key: String, rows importRows: [ImportRowRecord], by actor: ActingUser, now: Date) async throws -> ImportRecord {
        try await change(by: actor, "import.create", subject: key, catalogue: false) { c in
            var record = ImportRecord(id: nil, key: key, createdBy: actor.name, createdAt: now, expiresAt: now.addingTimeInterval(ImportRecord.lifetime))
            record.id = try await all("""
                INSERT INTO batch_import (key, created_by, created_at, expires_at, status)
                VALUES (\(key), \(record.createdBy), \(record.createdAt), \(record.expiresAt), \(record.status)) RETURNING id
                """, as: Int64.self, on: c).first
            let id = record.id ?? 0
            for r in importRows {
                try await c.query("""
                    INSERT INTO batch_import_row (import_id, n, file_name, app_id, new_app, type, file_count, size, fields, error, refused, package_id)
                    VALUES (\(id), \(Int32(r.n)), \(r.fileName), \(r.appId), \(r.newApp), \(r.type), \(Int32(r.fileCount)), \(r.size), \(r.fields),
                            \(r.error), \(r.refused), \(r.packageId))
                    """, logger: logger)
            }
            return (record, ["files": String(importRows.count), "ready": String(importRows.filter { $0.error == nil }.count)])
        }
    }

    public func importRecord(_ id: Int64) async throws -> ImportRecord? {
        try await importRecords("SELECT \(unescaped: Self.importColumns) FROM batch_import WHERE id = \(id)").first
    }

    public func importRows(_ id: Int64) async throws -> [ImportRowRecord] {
        try await rows("SELECT \(unescaped: Self.rowColumns) FROM batch_import_row WHERE import_id = \(id) ORDER BY n", as: ImportRowRow.self)
            .map(Self.importRow)
    }

    public func updateImportRow(_ id: Int64, n: Int, draft: PackageDraft, error: String?, by actor: ActingUser, now: Date) async throws {
        try await change(by: actor, "import.editRow", subject: "\(id) \(n)", catalogue: false) { c in
            guard let record = try await importRecords("SELECT \(unescaped: Self.importColumns) FROM batch_import WHERE id = \(id) FOR SHARE", on: c).first,
                  record.status == "open" else {
                throw Conflict("This import was submitted; its rows can no longer change.")
            }
            guard record.expiresAt > now else { throw Conflict("This import has expired (24 hours); start a new one.") }
            guard var row = try await rows("""
                SELECT \(unescaped: Self.rowColumns) FROM batch_import_row WHERE import_id = \(id) AND n = \(Int32(n)) FOR UPDATE
                """, as: ImportRowRow.self, on: c).first.map(Self.importRow), !row.created, !row.refused else {
                throw NotFound("This import has no such row to edit.")
            }
            row.draft = draft
            row.error = error
            try await c.query("""
                UPDATE batch_import_row SET fields = \(row.fields), error = \(row.error) WHERE import_id = \(id) AND n = \(Int32(n))
                """, logger: logger)
            return ((), ["version": draft.version])
        }
    }

    public func beginImportSubmission(_ id: Int64, by actor: ActingUser, now: Date) async throws -> Bool {
        struct NotOpen: Error {}
        do {
            return try await change(by: actor, "import.submit", subject: String(id), catalogue: false) { c in
                let taken = try await all("""
                    UPDATE batch_import SET status = 'submitting' WHERE id = \(id) AND status = 'open' AND expires_at > \(now) RETURNING id
                    """, as: Int64.self, on: c)
                guard taken.count == 1 else { throw NotOpen() }   // rolled back: no audit row for a second click
                return (true, [:])
            }
        } catch is NotOpen {
            return false
        }
    }

    public func failImportRow(_ id: Int64, n: Int, error: String) async throws {
        try await client.query("""
            UPDATE batch_import_row SET error = \(error) WHERE import_id = \(id) AND n = \(Int32(n)) AND package_id IS NULL
            """, logger: logger)
    }

    public func endImportSubmission(_ id: Int64) async throws -> ImportRecord? {
        let (record, done) = try await transaction { c -> (ImportRecord?, Bool) in
            let left = try await all("""
                SELECT COUNT(*) FROM batch_import_row WHERE import_id = \(id) AND package_id IS NULL AND NOT refused
                """, as: Int64.self, on: c).first ?? 0
            try await c.query("UPDATE batch_import SET status = \(left == 0 ? "done" : "open") WHERE id = \(id)", logger: logger)
            return (try await importRecords("SELECT \(unescaped: Self.importColumns) FROM batch_import WHERE id = \(id)", on: c).first, left == 0)
        }
        if done, let record { try? FileManager.default.removeItem(atPath: "\(importsDirectory)/\(record.key)") }
        return record
    }

    /// On several nodes, `startingUp` must come from the one node that holds the housekeeping
    /// lease: an import another node is submitting is not this node's to reopen.
    public func sweepImports(now: Date, startingUp: Bool) async throws -> Int {
        let (expired, keys) = try await transaction { c -> ([String], Set<String>) in
            if startingUp { try await c.query("UPDATE batch_import SET status = 'open' WHERE status = 'submitting'", logger: logger) }
            // Never one being submitted: that submission ends it.
            let expired = try await all("DELETE FROM batch_import WHERE status = 'open' AND expires_at < \(now) RETURNING key", as: String.self, on: c)
            let open = Set(try await all("SELECT key FROM batch_import WHERE status != 'done'", as: String.self, on: c))
            return (expired, open)
        }
        removeImportFolders(expired: expired, keeping: keys, startingUp: startingUp)
        return expired.count
    }
}

/// Patches on PostgreSQL: recorded only while both packages still hold the blobs they were
/// built from (a key switch re-signs them), each change raising the catalogue version.
extension PostgresStore: PatchStore {
    static let patchColumns = "package_id, base_package_id, app_id, version, base, blob, size, changed_files, removed_files, created_at"

    func patchRecords(_ query: PostgresQuery) async throws -> [PatchRecord] {
        try await rows(query, as: (Int64, Int64, String, String, String, String?, Int64, Int32, Int32, Date).self).map {
            PatchRecord(packageId: $0.0, basePackageId: $0.1, appId: $0.2, version: $0.3, base: $0.4, blob: $0.5, size: $0.6,
                        changedFiles: Int($0.7), removedFiles: Int($0.8), createdAt: $0.9)
        }
    }

    public func patches() async throws -> [PatchRecord] {
        try await patchRecords("SELECT \(unescaped: Self.patchColumns) FROM patch")
    }

    public func patches(of appId: String) async throws -> [PatchRecord] {
        try await patchRecords("SELECT \(unescaped: Self.patchColumns) FROM patch WHERE app_id = \(appId)")
    }

    public func patch(_ appId: String, _ version: String, from base: String) async throws -> PatchRecord? {
        try await patchRecords("""
            SELECT \(unescaped: Self.patchColumns) FROM patch WHERE app_id = \(appId) AND version = \(version) AND base = \(base)
            """).first
    }

    public func recordPatch(_ patch: PatchRecord, targetBlob: String, baseBlob: String) async throws -> Bool {
        let recorded = try await transaction { c -> Int64? in
            // Both packages' rows locked: a key switch re-signing them waits, or went first.
            let now = Dictionary(try await rows("""
                SELECT id, blob FROM package WHERE id IN (\(patch.packageId), \(patch.basePackageId)) FOR SHARE
                """, as: (Int64, String).self, on: c), uniquingKeysWith: { a, _ in a })
            guard now[patch.packageId] == targetBlob, now[patch.basePackageId] == baseBlob else { return nil }
            let inserted = try await all("""
                INSERT INTO patch (package_id, base_package_id, app_id, version, base, blob, size, changed_files, removed_files, created_at)
                VALUES (\(patch.packageId), \(patch.basePackageId), \(patch.appId), \(patch.version), \(patch.base), \(patch.blob), \(patch.size),
                        \(Int32(patch.changedFiles)), \(Int32(patch.removedFiles)), \(patch.createdAt))
                ON CONFLICT DO NOTHING RETURNING package_id
                """, as: Int64.self, on: c)
            guard !inserted.isEmpty else { return nil }
            return try await bumpCatalogueVersion(on: c)
        }
        // Announced by the patch service, once a round (as on SQLite); other nodes follow the
        // version. Marked seen only when it is the next version: if another node's change took
        // the one before (a pause, say), the snapshot must take that in now, not at the round's end.
        if let recorded, !seenVersion.advance(to: recorded) {
            seenVersion.raise(to: recorded)
            await changes.announce()
        }
        return recorded != nil
    }

    public func deletePatches(_ keys: [(packageId: Int64, basePackageId: Int64)]) async throws -> [String] {
        guard !keys.isEmpty else { return [] }
        let (gone, version) = try await transaction { c -> ([String], Int64?) in
            var blobs: [String] = []
            for k in keys {
                let deleted = try await all("""
                    DELETE FROM patch WHERE package_id = \(k.packageId) AND base_package_id = \(k.basePackageId) RETURNING blob
                    """, as: String?.self, on: c)
                blobs += deleted.compactMap { $0 }
            }
            let version = try await bumpCatalogueVersion(on: c)
            var unreferenced: [String] = []
            for blob in blobs where try await all("""
                SELECT EXISTS (SELECT 1 FROM (\(unescaped: Self.referencedBlobs)) r WHERE blob = \(blob))
                """, as: Bool.self, on: c).first != true { unreferenced.append(blob) }
            return (unreferenced, version)
        }
        if let version { seenVersion.raise(to: version) }
        await changes.announce()
        return gone
    }

    public func diff(from: Int64, to: Int64) async throws -> PackageDiff {
        func files(_ id: Int64) async throws -> [String: (size: Int64, sha256: String)] {
            var all: [String: (Int64, String)] = [:]
            for r in try await rows("SELECT path, size, sha256 FROM package_file WHERE package_id = \(id)", as: (String, Int64, String).self) {
                all[r.0] = (r.1, r.2)
            }
            return all
        }
        return PackageDiff(from: try await files(from), to: try await files(to))
    }
}

/// PostgreSQL holds every part of Courier's state.
extension PostgresStore: Store {}
