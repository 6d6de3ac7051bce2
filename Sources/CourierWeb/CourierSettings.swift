import CourierArchive
import CourierCore
import CourierStore
import Foundation
import GRDB
import NIOPosix

/// The configuration rules, shared by the console page and `PUT /api/v1/settings`.
struct CourierSettings {
    let store: Store

    /// The virtual domain is written once; the console asks for confirmation first.
    func setVirtualDomain(_ text: String, confirmed: Bool) throws -> SettingsRecord {
        let domain = try DomainName.validate(text, field: "virtualDomain")
        guard confirmed else {
            throw FieldError("confirm", "Tick the box to confirm that the virtual domain cannot be changed after it is saved.")
        }
        return try store.updateSettings { s in
            if let existing = s.virtualDomain {
                if existing == domain { return }
                throw Conflict("The virtual domain is already set to \(existing) and cannot be changed.", field: "virtualDomain")
            }
            s.virtualDomain = domain
        }
    }

    /// Global host and app key go together; they cannot change once a global package uses them.
    func setGlobalLocation(host: String, appKey: String) throws -> SettingsRecord {
        var errors = FieldErrors()
        let h = errors.collect { try DomainName.validate(host, field: "globalHost", label: "global resource host") }
        let k = errors.collect { try AppKey.validate(appKey) }
        guard errors.isEmpty, let h, let k else { throw errors }
        let inUse = try store.packageCounts().global > 0
        return try store.updateSettings { s in
            if s.globalHost == h && s.appKey == k { return }
            if inUse {
                throw Conflict("Global packages already use \(s.globalHost ?? "")/\(s.appKey ?? ""); the global host and app key cannot change.",
                               field: "globalHost")
            }
            s.globalHost = h
            s.appKey = k
        }
    }

    /// Installs a signing key and re-signs every stored package with it. New blobs are written
    /// first, outside the blob lock (the slow part); then, under it, packages committed
    /// meanwhile are caught up and the key and every package switch over in one transaction;
    /// old blobs go last. Interrupted before the switch, the old key stays in force and the
    /// new blobs are swept at the next start.
    func installKey(_ key: SigningKey) async throws -> (SettingsRecord, resigned: Int) {
        var resigned: [Int64: (old: String, amr: AmrFile)] = [:]
        do {
            for p in try store.allPackages() {
                let amr = try await NIOThreadPool.singleton.runIfActive { [store] in try Self.resign(p, with: key, in: store) }
                resigned[p.id!] = (p.blob, amr)
            }
            return try store.withBlobLock {
                for p in try store.allPackages() where resigned[p.id!]?.old != p.blob {
                    resigned[p.id!] = (p.blob, try Self.resign(p, with: key, in: store))
                }
                let switched = resigned
                let settings = try store.db.write { db -> SettingsRecord in
                    var s = try SettingsRecord.fetchOne(db, key: 1) ?? SettingsRecord()
                    s.signingKeyPEM = key.privateKeyPEM
                    s.signingKeyFingerprint = key.fingerprint
                    try s.save(db)
                    for (id, r) in switched {
                        try db.execute(sql: "UPDATE package SET blob = ?, size = ?, md5 = ?, tarOffset = ? WHERE id = ?",
                                       arguments: [r.amr.sha256, Int64(r.amr.size), r.amr.md5, Int64(r.amr.tarOffset), id])
                    }
                    return s
                }
                try store.removeUnreferenced(switched.values.map(\.old))
                return (settings, switched.count)
            }
        } catch {
            try? store.withBlobLock { try store.removeUnreferenced(resigned.values.map(\.amr.sha256)) }
            throw error
        }
    }

    /// Writes a package's `.amr` again around its unchanged tar, signed with `key`, into the blob store.
    static func resign(_ p: PackageRecord, with key: SigningKey, in store: Store) throws -> AmrFile {
        let files = try store.files(of: p.id!).map {
            ManifestFile(path: $0.path, size: UInt64($0.size), sha256: $0.sha256, tarOffset: UInt64($0.tarOffset))
        }
        let out = store.blobs.temporaryPath(suffix: ".amr")
        defer { unlink(out) }
        let amr = try AmrBuilder.resign(amrPath: store.blobs.path(for: p.blob), tarOffset: UInt64(p.tarOffset),
                                        tarSize: UInt64(p.tarSize), files: files, appID: p.appId, version: p.version,
                                        signer: key, to: out)
        try store.blobs.adopt(out, sha256: amr.sha256)
        return amr
    }
}

