import CourierArchive
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Rebuilds a version's `.amr` from a patch (SPEC §3 "Patches") and the installed files of the
/// version it was made from. The patch is read without trusting it: its entries, its tar (each
/// file a safe path of the new version's manifest, once, with the manifest's size and SHA-256),
/// `REMOVED.json` (files the installed version has and the new one lacks); every other file of
/// the new version must be the installed one's, byte for byte. The result is written the way
/// Courier writes an `.amr`, so an honest patch gives the full package's exact bytes: the caller
/// compares them with the answer's size and SHA-256, and the usual install then checks the
/// version's own signature over the rebuilt tar. Any mismatch is `patch_failed`.
public enum PatchApplier {
    static func refuse(_ why: String) -> ClientFailure { ClientFailure(.patchFailed, "The patch is refused: \(why)") }

    public static func rebuild(patch patchPath: String, baseFolder: String, appId: String, version: String,
                        maxBytes: UInt64, to output: String) throws -> AmrAssembly {
        var limits = ZipLimits()
        limits.maxEntries = 5
        limits.maxTotalUncompressed = maxBytes + (32 << 20)
        let zip: ZipReader
        do { zip = try ZipReader(path: patchPath, limits: limits) } catch { throw refuse("it is not a readable archive (\(error)).") }
        var entries: [String: ZipEntry] = [:]
        for e in zip.entries {
            guard [Patch.tarName, Patch.removedName, "manifest.json", "CERT.json", "SIGN.json"].contains(e.name), entries[e.name] == nil else {
                throw refuse("it holds an unexpected entry “\(e.name.prefix(80))”.")
            }
            entries[e.name] = e
        }
        guard let tarEntry = entries[Patch.tarName], tarEntry.method == 0, let removedEntry = entries[Patch.removedName],
              let manifestEntry = entries["manifest.json"] else {
            throw refuse("it lacks a stored patch.tar, REMOVED.json or manifest.json.")
        }
        func small(_ e: ZipEntry?, limit: UInt64) throws -> [UInt8]? {
            guard let e else { return nil }
            guard e.uncompressedSize <= limit else { throw refuse("\(e.name) is larger than \(limit) bytes.") }
            do { return try zip.data(e) } catch { throw refuse("\(e.name) cannot be read: \(error).") }
        }
        let manifestBytes = try small(manifestEntry, limit: 16 << 20) ?? []
        let manifest: PackageManifest
        do { manifest = try PackageManifest(Data(manifestBytes), appId: appId, version: version, maxBytes: maxBytes) } catch let f as ClientFailure {
            throw refuse(f.message)
        }
        guard let removed = try? JSONDecoder().decode([String].self, from: Data(try small(removedEntry, limit: 4 << 20) ?? [])),
              removed.count <= 20_000 else {
            throw refuse("REMOVED.json is not a list of paths.")
        }
        for path in removed {
            guard TarExtractor.isSafe(path) else { throw refuse("REMOVED.json names “\(path.prefix(80))”, which is not a plain relative path.") }
            guard manifest.expected[path] == nil else { throw refuse("REMOVED.json names “\(path)”, a file of \(version).") }
            guard let fd = regularFile(baseFolder + "/" + path) else {
                throw refuse("REMOVED.json names “\(path)”, which the installed version does not have: the patch is for another version.")
            }
            close(fd)
        }

        // Which files the patch brings: each checked against the manifest (path, size, SHA-256) as it is read.
        var index = TarExtractor(root: nil, expected: manifest.expected, partial: true)
        do {
            try zip.read(tarEntry) { try index.feed($0) }
            try index.finish()
        } catch let f as ClientFailure {
            throw refuse(f.message)
        } catch {
            throw refuse("patch.tar cannot be read: \(error).")
        }
        let patchFD = open(patchPath, O_RDONLY | O_CLOEXEC)
        guard patchFD >= 0 else { throw ClientFailure(.installFailed, "The patch cannot be read: \(String(cString: strerror(errno))).") }
        defer { close(patchFD) }

        // Version V's tar, rebuilt (SPEC §3 pins every header field): the patch's files where it
        // has them, the installed version's everywhere else.
        func stream(_ write: (UnsafeRawBufferPointer) throws -> Void) throws {
            try TarStream.write(manifest.files.map { TarStream.File(path: $0.path, size: $0.size, sha256: $0.sha256) }, write) { f, ask in
                switch ask {
                case .source:
                    if let at = index.offsets[f.path] { return (patchFD, tarEntry.dataOffset + at, false) }
                    guard let opened = regularFile(baseFolder + "/" + f.path, size: f.size) else {
                        throw refuse("the installed version lacks “\(f.path)” as \(version) has it: the patch is for another version.")
                    }
                    return (opened, 0, true)
                case .header: throw refuse("“\(f.path)” does not fit a tar header.")
                case .short: throw refuse("“\(f.path)” ends before its \(f.size) bytes.")
                case .mismatch: throw refuse("“\(f.path)” is not the file \(version) has: the patch is for another version.")
                }
            }
        }
        var crc = CRC32()
        var size: UInt64 = 0
        try stream { chunk in
            crc.update(chunk)
            size += UInt64(chunk.count)
            guard size <= maxBytes else { throw refuse("\(version) would be larger than this device accepts.") }
        }
        // After the tar, V's own entries verbatim, in the order Courier writes them.
        var after: [(String, [UInt8])] = []
        if let cert = try small(entries["CERT.json"], limit: 64 * 1024) { after.append(("CERT.json", cert)) }
        if let sign = try small(entries["SIGN.json"], limit: 64 * 1024) { after.append(("SIGN.json", sign)) }
        after.append(("manifest.json", manifestBytes))
        do {
            return try AmrBuilder.assemble(to: output, tarName: "\(appId).tar", tarSize: size, tarCRC: crc.value,
                                           tar: { sink in try stream { try sink.write($0) } }, after: { _ in after })
        } catch let f as ClientFailure {
            throw f
        } catch {
            throw ClientFailure(.installFailed, "The package rebuilt from the patch could not be written: \(error)")
        }
    }

    /// An open regular file (never through a link), of `size` bytes when given; nil otherwise.
    static func regularFile(_ path: String, size: UInt64? = nil) -> Int32? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, size.map({ UInt64(st.st_size) == $0 }) ?? true else {
            close(fd)
            return nil
        }
        return fd
    }
}
