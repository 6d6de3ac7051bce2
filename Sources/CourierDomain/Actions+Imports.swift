import CourierArchive
import CourierCore
import CourierStore
import Foundation
import NIOPosix

/// Batch import (SPEC §6): upload, inspect, edit rows, submit.
extension Actions {
    /// The fields a new row starts with (the version and type come from the inspection); each
    /// can be edited before submission. A row of an existing app starts from its newest
    /// package's settings (a reviewer would not notice an Android minimum dropping from 10.0 to
    /// 1.0); a new app from plain defaults, which the results page shows.
    static func importDefaults(_ row: ImportRow, newest: PackageRecord?) -> PackageDraft {
        var d: PackageDraft
        if let newest {
            d = newest.nextVersionDraft
        } else {
            d = PackageDraft()
            d.android = true; d.androidMin = "1.0"
            d.ios = true; d.iosMin = "1.0"
        }
        d.version = row.version?.description ?? ""
        d.type = row.type?.rawValue ?? ""
        return d
    }

    /// Inspects uploaded files and records the import; every temp file is consumed (moved into
    /// the import's folder when ready, removed otherwise). The whole import is refused only
    /// beyond its limits; one bad file fails only its row.
    public func startImport(by actor: ActingUser, files: [UploadedFile]) async throws -> ImportRecord {
        defer { for f in files { unlink(f.path) } }   // those moved are no longer there
        try actor.require(.uploadPackages)
        let settings = try await store.settings()
        guard settings.virtualDomain != nil else { throw Self.needsVirtualDomain }
        try BatchImportRules.checkAll(sizes: files.map { Int64(clamping: $0.size) })
        var facts: [String: AppFacts] = [:]
        var newest: [String: PackageRecord] = [:]
        for f in files {
            guard let id = try? BatchImportRules.appID(fromFileName: f.filename).rawValue, facts[id] == nil,
                  try await store.app(id) != nil else { continue }
            facts[id] = try await store.facts(of: id)
            newest[id] = try await store.packages(of: id).first
        }
        let global = settings.globalHost.flatMap { h in settings.appKey.map { GlobalLocation(host: h, appKey: $0) } }
        let inputs = files.map { (name: $0.filename, path: $0.path, size: Int64(clamping: $0.size)) }
        let known = facts
        let rows = try await NIOThreadPool.singleton.runIfActive { BatchImportRules.inspect(inputs, facts: known, global: global) }
        let key = UUID().uuidString.lowercased()
        let folder = "\(store.importsDirectory)/\(key)"
        try PrivateDirectory.prepare(folder)
        do {
            var records: [ImportRowRecord] = []
            for (n, (row, file)) in zip(rows, files).enumerated() {
                if row.isReady {
                    guard rename(file.path, store.importFile(key: key, n: n)) == 0 else {
                        throw ServerFault("The server could not keep the uploaded file \(row.fileName).")
                    }
                }
                records.append(ImportRowRecord(importId: 0, n: n, fileName: row.fileName, appId: row.appId, newApp: row.newApp,
                                               type: row.type?.rawValue, fileCount: row.fileCount, size: row.size,
                                               draft: Self.importDefaults(row, newest: row.appId.flatMap { newest[$0] }), error: row.error))
            }
            return try await store.createImport(key: key, rows: records, by: actor)
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    /// Changes a row's fields after checking them as the single-package form does.
    public func editImportRow(by actor: ActingUser, id: Int64, n: Int, draft: PackageDraft) async throws {
        try actor.require(.uploadPackages)
        guard let row = try await store.importRows(id).first(where: { $0.n == n }), let appId = row.appId else {
            throw NotFound("This import has no such row.")
        }
        guard let record = try await store.importRecord(id), !row.refused else { throw NotFound("This import has no such row.") }
        var d = draft
        d.type = row.type ?? ""   // the zip's layout decides the type
        let facts = try await store.app(appId) != nil ? try await store.facts(of: appId) : AppFacts(fixedType: nil, highestVersion: nil)
        let checked = try d.validate(for: facts)
        d.version = checked.version.description   // as it will be stored (1.0.0.02 is 1.0.0.2)
        // The rules that need the zip (the main entrance is in it; global URLs), as the single form checks them.
        let settings = try await store.settings()
        let global = settings.globalHost.flatMap { h in settings.appKey.map { GlobalLocation(host: h, appKey: $0) } }
        let file = store.importFile(key: record.key, n: n)
        try await NIOThreadPool.singleton.runIfActive {
            let zip = try ZipReader(path: file)
            _ = try PackageLayout.contentFiles(of: zip.entries, appID: AppID(trusted: appId), type: checked.type, global: global,
                                               mainUrl: checked.mainUrl)
        }
        try await store.updateImportRow(id, n: n, draft: d, error: nil, by: actor)
    }

    /// Creates every row not yet created: new apps (named by their ID), then packages through
    /// the same write path as single uploads. Only one submission of an import runs at a time;
    /// a row that fails keeps its error and does not stop the others.
    public func submitImport(by actor: ActingUser, id: Int64, confirmed: Bool) async throws -> ImportRecord {
        try actor.require(.uploadPackages)
        guard let record = try await store.importRecord(id) else { throw NotFound("There is no such import.") }
        guard confirmed else {
            throw FieldError("confirm", "Tick the box to confirm: the information can't be modified after submission.")
        }
        guard try await store.beginImportSubmission(id, by: actor) else {
            if record.status == "open" && record.expiresAt <= Date() { throw Conflict("This import has expired (24 hours); start a new one.") }
            return record   // already running or done
        }
        do {
            try await submitRows(by: actor, record: record)
        } catch {
            // Whatever stopped the loop, the import does not stay in `submitting`.
            _ = try? await store.endImportSubmission(id)
            throw error
        }
        return try await store.endImportSubmission(id) ?? record
    }

    private func submitRows(by actor: ActingUser, record: ImportRecord) async throws {
        let id = record.id ?? 0
        for row in try await store.importRows(id) where !row.created && !row.refused {
            guard let appId = row.appId else { continue }
            do {
                if try await store.app(appId) == nil {
                    do { _ = try await createApp(by: actor, id: appId, name: appId) } catch let e as Conflict where e.field == "id" {
                        // Created meanwhile (another import, another person): add to it.
                    }
                }
                let file = store.importFile(key: record.key, n: row.n)
                // addPackage consumes the path it is given: a link keeps the row's file until created.
                let copy = store.blobs.temporaryPath(suffix: ".zip")
                guard link(file, copy) == 0 else { throw ServerFault("The uploaded file of \(row.fileName) is missing.") }
                _ = try await addPackage(by: actor, appId: appId, draft: row.draft, zipPath: copy,
                                         importRow: ImportRowKey(importId: id, n: row.n))
                unlink(file)
            } catch {
                try await store.failImportRow(id, n: row.n, error: refusalMessage(error) ?? "It could not be created.")
            }
        }
    }
}
