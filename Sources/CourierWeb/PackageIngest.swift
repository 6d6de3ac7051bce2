import CourierArchive
import CourierCore
import CourierStore
import Foundation
import NIOPosix

/// Turns an uploaded zip plus a draft into a stored package: validate the fields, check the
/// zip, build and sign the .amr, move it into the blob store, record it. Either all of it
/// happens or none: on any refusal the temp files and the blob are gone and no row exists.
public struct PackageIngest: Sendable {
    let store: Store
    let signer: SigningKeyCache

    /// `zipPath` is consumed: it is deleted whatever the outcome.
    public func ingest(appId: String, draft: PackageDraft, zipPath: String?, user: String) async throws -> PackageRecord {
        defer { if let zipPath { unlink(zipPath) } }
        guard let app = try store.app(appId) else { throw FieldError("id", "There is no app with ID \(appId).") }
        let settings = try store.settings()
        guard settings.virtualDomain != nil else {
            throw FieldError("virtualDomain", "Set the virtual domain on the configuration page before adding packages.")
        }
        var errors = FieldErrors()
        var validated: PackageSettings?
        let facts = try store.facts(of: appId)
        do { validated = try draft.validate(for: facts) } catch { errors = error }
        if zipPath == nil { errors.append(FieldError("file", "Choose the offline package .zip file to upload.")) }
        guard errors.isEmpty, let s = validated, let zipPath else { throw errors }

        let global = settings.globalHost.flatMap { h in settings.appKey.map { GlobalLocation(host: h, appKey: $0) } }
        let appID = AppID(trusted: app.id)
        let key = try signer.current(settings)
        let amrPath = store.blobs.temporaryPath(suffix: ".amr")
        defer { unlink(amrPath) }   // after adopt() it no longer exists under this name
        let built: AmrFile = try await NIOThreadPool.singleton.runIfActive {
            let zip = try ZipReader(path: zipPath)
            let files = try PackageLayout.contentFiles(of: zip.entries, appID: appID, type: s.type,
                                                       global: global, mainUrl: s.mainUrl)
            return try AmrBuilder.build(from: zip, files: files, appID: app.id, version: s.version.description,
                                        signer: key, to: amrPath)
        }
        let record = PackageRecord(
            id: nil, appId: app.id, version: s.version.description, versionKey: PackageRecord.versionKey(s.version),
            type: s.type, androidMin: s.range.android?.min, androidMax: s.range.android?.max,
            iosMin: s.range.ios?.min, iosMax: s.range.ios?.max, mainUrl: s.mainUrl, extendInfo: s.extendInfo,
            downloadPolicy: s.downloadPolicy, installPolicy: s.installPolicy, status: .toBeReleased,
            blob: built.sha256, size: Int64(built.size), md5: built.md5, tarOffset: Int64(built.tarOffset),
            tarSize: Int64(built.tarSize), fileCount: built.files.count, createdAt: Date(), createdBy: user)
        let files = built.files.map {
            PackageFileRecord(packageId: 0, path: $0.path, size: Int64($0.size), sha256: $0.sha256, tarOffset: Int64($0.tarOffset))
        }
        return try store.commitPackage(amrAt: amrPath, record, files: files, signedWith: key?.fingerprint)
    }
}

/// The parsed signing key, kept while its PEM in the settings is unchanged (parsing RSA
/// keys is not free, and every ingest needs it).
public final class SigningKeyCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: (pem: String, key: SigningKey)?

    public init() {}

    public func current(_ settings: SettingsRecord) throws -> SigningKey? {
        guard let pem = settings.signingKeyPEM else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if let c = cached, c.pem == pem { return c.key }
        let key = try SigningKey(pem: pem)
        cached = (pem, key)
        return key
    }
}
