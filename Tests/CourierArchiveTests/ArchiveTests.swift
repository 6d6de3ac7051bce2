import CourierArchive
import CourierCore
import CourierTestSupport
import Foundation
import XCTest

final class ArchiveTests: XCTestCase {
    var dir = ""
    let app = AppID(trusted: "20171228")
    override func setUp() { dir = temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ zip: ZipBuilder, _ name: String = "in.zip") throws -> String {
        let path = dir + "/" + name
        try zip.write(to: path)
        return path
    }

    /// Opens, checks the layout and builds the .amr, as an upload does.
    @discardableResult
    func build(_ zipPath: String, type: PackageType = .normal, global: GlobalLocation? = nil, mainUrl: String? = nil,
               signer: SigningKey? = nil, out: String = "out.amr") throws -> AmrFile {
        let reader = try ZipReader(path: zipPath)
        let files = try PackageLayout.contentFiles(of: reader.entries, appID: app, type: type, global: global, mainUrl: mainUrl)
        return try AmrBuilder.build(from: reader, files: files, appID: app.rawValue, version: "1.0.0.1", signer: signer, to: dir + "/" + out)
    }

    func refusal(_ zip: ZipBuilder, type: PackageType = .normal, global: GlobalLocation? = nil, mainUrl: String? = nil,
                 file: StaticString = #filePath, line: UInt = #line) -> FieldError? {
        do {
            try build(try write(zip), type: type, global: global, mainUrl: mainUrl, out: "refused.amr")
            XCTFail("the zip was accepted", file: file, line: line)
            return nil
        } catch let e as FieldError {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/refused.amr"), "a refused build leaves no output behind",
                           file: file, line: line)
            return e
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func testSignedAmrVerifiesWithOpenSSLAndHoldsTheZipFilesByteForByte() throws {
        let key = try SigningKey.generate()
        let zip = samplePackage()
        let amr = try build(try write(zip), mainUrl: "/www/index.html", signer: key)
        XCTAssertEqual(amr.files.map(\.path), ["www/app.js", "www/css/site.css", "www/img/logo.png", "www/index.html"])

        let x = dir + "/x"
        XCTAssertEqual(try shell(["unzip", "-q", dir + "/out.amr", "-d", x]).status, 0)
        try key.publicKeyPEM.write(toFile: dir + "/pub.pem", atomically: true, encoding: .utf8)
        for (file, digest) in [("CERT.json", "-sha1"), ("SIGN.json", "-sha256")] {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(x)/\(file)"))) as? [String: String] ?? [:]
            XCTAssertEqual(Array(json.keys), ["20171228.tar"])
            try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(json["20171228.tar"]))).write(to: URL(fileURLWithPath: "\(dir)/\(file).sig"))
            let verify = try shell(["openssl", "dgst", digest, "-verify", dir + "/pub.pem", "-signature", "\(dir)/\(file).sig", "\(x)/20171228.tar"])
            XCTAssertEqual(verify.status, 0, verify.output)
            XCTAssertTrue(verify.output.contains("Verified OK"))
        }
        // A tampered tar fails verification.
        var tar = try Data(contentsOf: URL(fileURLWithPath: "\(x)/20171228.tar"))
        tar[600] ^= 1
        try tar.write(to: URL(fileURLWithPath: "\(dir)/bad.tar"))
        XCTAssertNotEqual(try shell(["openssl", "dgst", "-sha256", "-verify", dir + "/pub.pem", "-signature", "\(dir)/SIGN.json.sig", "\(dir)/bad.tar"]).status, 0)

        // The tar is a POSIX archive of the zip's files, byte for byte.
        let t = dir + "/t"
        try FileManager.default.createDirectory(atPath: t, withIntermediateDirectories: true)
        XCTAssertEqual(try shell(["tar", "-xf", "\(x)/20171228.tar", "-C", t]).status, 0)
        for e in zip.entries where !e.name.hasSuffix("/") {
            let extracted = try Data(contentsOf: URL(fileURLWithPath: t + "/" + e.name.dropFirst(9)))
            XCTAssertEqual([UInt8](extracted), e.data, e.name)
        }
        let listing = try shell(["tar", "-tvf", "\(x)/20171228.tar"]).output
        XCTAssertTrue(listing.contains("1970-01-01"), "fixed mtimes: \(listing)")

        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(x)/manifest.json"))) as? [String: Any] ?? [:]
        XCTAssertEqual(manifest["id"] as? String, "20171228")
        XCTAssertEqual(manifest["version"] as? String, "1.0.0.1")
        let files = try XCTUnwrap(manifest["files"] as? [[String: Any]])
        XCTAssertEqual(files.count, 4)
        XCTAssertEqual(files.first?["path"] as? String, "www/app.js")
        XCTAssertEqual((files.first?["sha256"] as? String)?.count, 64)

        // The recorded offsets point at each file's bytes inside the .amr (fallback serving reads there).
        let amrBytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/out.amr"))
        for f in amr.files {
            let start = Int(amr.tarOffset + f.tarOffset)
            let original = try XCTUnwrap(zip.entries.first { $0.name == "20171228/" + f.path }).data
            XCTAssertEqual([UInt8](amrBytes[start..<(start + Int(f.size))]), original)
        }
        XCTAssertEqual(UInt64(amrBytes.count), amr.size)
    }

    func testSameZipGivesByteIdenticalAmrAndUnsignedHasNoSignatures() throws {
        let path = try write(samplePackage())
        let a = try build(path, out: "a.amr"), b = try build(path, out: "b.amr")
        XCTAssertEqual(a.sha256, b.sha256)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/a.amr")), try Data(contentsOf: URL(fileURLWithPath: dir + "/b.amr")))
        let list = try shell(["unzip", "-l", dir + "/a.amr"]).output
        XCTAssertTrue(list.contains("20171228.tar") && list.contains("manifest.json"))
        XCTAssertFalse(list.contains("CERT.json") || list.contains("SIGN.json"))
        // `unzip -t` agrees that our output is a sound archive.
        XCTAssertEqual(try shell(["unzip", "-tq", dir + "/a.amr"]).status, 0)
    }

    func testZipsFromOtherToolsGiveTheSameAmr() throws {
        // The same tree zipped plainly, streamed (data descriptors), forced ZIP64, and by Python.
        let tree = dir + "/tree"
        for e in samplePackage().entries where !e.name.hasSuffix("/") {
            let path = tree + "/" + e.name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(e.data).write(to: URL(fileURLWithPath: path))
        }
        XCTAssertEqual(try shell(["zip", "-qrX", "../plain.zip", "20171228"], cwd: tree).status, 0)
        XCTAssertEqual(try shell(["zip", "-qrX", "-fz", "../zip64.zip", "20171228"], cwd: tree).status, 0)
        XCTAssertEqual(try shell(["sh", "-c", "zip -qrX - 20171228 > ../stream.zip"], cwd: tree).status, 0)
        XCTAssertEqual(try shell(["python3", "-c", """
            import zipfile, os
            with zipfile.ZipFile('../py.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                for root, _, names in os.walk('20171228'):
                    for n in names:
                        with open(os.path.join(root, n), 'rb') as f, z.open(os.path.join(root, n), 'w', force_zip64=True) as out:
                            out.write(f.read())
            """], cwd: tree).status, 0)
        let hashes = try ["plain", "zip64", "stream", "py"].map { try build(dir + "/\($0).zip", out: "\($0).amr").sha256 }
        XCTAssertEqual(Set(hashes).count, 1, "\(hashes)")
    }

    func testMacOSFinderFolderIsExplained() {
        let e = refusal(ZipBuilder([.init("20171228/www/index.html", "x"), .init("__MACOSX/20171228/www/._index.html", "x")]))
        XCTAssertTrue(e?.message.contains("macOS Finder") == true)
    }

    func testResigningKeepsTheTarAndChangesTheSignatures() throws {
        let k1 = try SigningKey.generate(), k2 = try SigningKey.generate()
        let first = try build(try write(samplePackage()), signer: k1)
        let second = try AmrBuilder.resign(amrPath: dir + "/out.amr", tarOffset: first.tarOffset, tarSize: first.tarSize,
                                           files: first.files, appID: "20171228", version: "1.0.0.1", signer: k2, to: dir + "/re.amr")
        XCTAssertNotEqual(first.sha256, second.sha256)
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/out.amr")), b = try Data(contentsOf: URL(fileURLWithPath: dir + "/re.amr"))
        let range = Int(first.tarOffset)..<Int(first.tarOffset + first.tarSize)
        XCTAssertEqual(a[range], b[Int(second.tarOffset)..<Int(second.tarOffset + second.tarSize)])
        XCTAssertEqual(try shell(["unzip", "-tq", dir + "/re.amr"]).status, 0)
    }

    func testSigningKeyRules() throws {
        XCTAssertThrowsError(try SigningKey(pem: "hello")) { XCTAssertEqual(($0 as? FieldError)?.field, "privateKey") }
        XCTAssertEqual(try shell(["openssl", "genrsa", "-out", dir + "/small.pem", "1024"]).status, 0)
        XCTAssertThrowsError(try SigningKey(pem: String(contentsOfFile: dir + "/small.pem", encoding: .utf8))) {
            XCTAssertTrue(($0 as? FieldError)?.message.contains("2048 to 4096") == true, "\($0)")
        }
        XCTAssertEqual(try shell(["openssl", "genrsa", "-traditional", "-out", dir + "/pkcs1.pem", "3072"]).status, 0)
        let key = try SigningKey(pem: String(contentsOfFile: dir + "/pkcs1.pem", encoding: .utf8))
        XCTAssertEqual(key.bits, 3072)
        XCTAssertEqual(key.fingerprint.split(separator: ":").count, 32)
    }

    // MARK: hostile and broken archives

    func testEveryHostileArchiveIsRefusedWithAReason() throws {
        for (name, bytes, says) in hostileZips() {
            let path = dir + "/hostile.zip"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try build(path), name) { error in
                let message = (error as? FieldError)?.message ?? "\(error)"
                XCTAssertTrue(message.contains(says), "\(name): \(message)")
            }
        }
    }

    func testZipSlipAbsolutePathsAndBackslashes() {
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228/../../etc/passwd", "x")]))?.message.contains("“..”") == true)
        XCTAssertTrue(refusal(ZipBuilder([.init("/20171228/www/a.js", "x")]))?.message.contains("absolute") == true)
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228\\www\\a.js", "x")]))?.message.contains("backslash") == true)
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228/www/a\u{0}.js", "x")]))?.message.contains("NUL") == true)
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228//a.js", "x")]))?.message.contains("empty") == true)
    }

    func testSymlinksAndOtherNonRegularEntries() {
        var link = ZipBuilder.Entry("20171228/www/passwd", "/etc/passwd")
        link.unixMode = 0o120777
        XCTAssertTrue(refusal(ZipBuilder([link]))?.message.contains("symbolic link") == true)
        var fifo = ZipBuilder.Entry("20171228/www/pipe", "")
        fifo.unixMode = 0o010644
        XCTAssertTrue(refusal(ZipBuilder([fifo]))?.message.contains("not a regular file") == true)
    }

    func testDuplicateNames() {
        let e = refusal(ZipBuilder([.init("20171228/www/a.js", "1"), .init("20171228/www/a.js", "2")]))
        XCTAssertTrue(e?.message.contains("more than once") == true)
        XCTAssertTrue(e?.message.contains("20171228/www/a.js") == true)
    }

    func testTopLevelLayout() {
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228/www/a.js", "1"), .init("readme.txt", "x")]))?.message.contains("file at the top level") == true)
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228/www/a.js", "1"), .init("extra/a.js", "x")]))?.message.contains("“extra/”") == true)
        XCTAssertTrue(refusal(ZipBuilder([.init("20180101/www/a.js", "1")]))?.message.contains("different app ID") == true)
        XCTAssertTrue(refusal(ZipBuilder([.directory("20171228/")]))?.message.contains("no files") == true)
    }

    func testNamesThatURLEncodingWouldChange() {
        for name in ["20171228/www/my page.html", "20171228/www/100%.js", "20171228/www/caf\u{e9}.js", "20171228/www/a+b.js"] {
            let e = refusal(ZipBuilder([.init(name, "x")]))
            XCTAssertTrue(e?.message.contains("URL encoding") == true, name)
            XCTAssertTrue(e?.message.contains(name) == true, name)
        }
    }

    func testEncryptedAndUnsupportedMethods() {
        var enc = ZipBuilder.Entry("20171228/www/a.js", "x")
        enc.flags = 1
        XCTAssertTrue(refusal(ZipBuilder([enc]))?.message.contains("encrypted") == true)
        var bzip = ZipBuilder.Entry("20171228/www/a.js", "x", method: 0)
        bzip.method = 12
        XCTAssertTrue(refusal(ZipBuilder([bzip]))?.message.contains("compression method 12") == true)
    }

    func testBadCRCAndWrongDeclaredSize() {
        var crc = ZipBuilder.Entry("20171228/www/a.js", String(repeating: "a", count: 1000))
        crc.declaredCRC = 0xDEADBEEF
        XCTAssertTrue(refusal(ZipBuilder([crc]))?.message.contains("CRC") == true)
        var size = ZipBuilder.Entry("20171228/www/a.js", String(repeating: "a", count: 1000))
        size.declaredSize = 10
        XCTAssertTrue(refusal(ZipBuilder([size]))?.message.contains("beyond its declared size") == true)
        var bigger = ZipBuilder.Entry("20171228/www/a.js", String(repeating: "a", count: 1000))
        bigger.declaredSize = 5000
        XCTAssertTrue(refusal(ZipBuilder([bigger]))?.message.contains("declares 5000") == true)
    }

    func testDeflateStreamThatEndsEarlyIsRefusedPromptly() {
        var cut = ZipBuilder.Entry("20171228/www/a.js", (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 5) })
        cut.payload = { Array($0.prefix($0.count / 2)) }
        let started = Date()
        XCTAssertTrue(refusal(ZipBuilder([cut]))?.message.contains("ends early") == true)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        var garbage = ZipBuilder.Entry("20171228/www/b.js", "hello hello hello")
        garbage.payload = { _ in [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x12] }
        XCTAssertTrue(refusal(ZipBuilder([garbage]))?.message.contains("corrupt") == true)
    }

    func testTruncatedAndNonZipFiles() throws {
        let full = samplePackage().bytes()
        for cut in [full.count - 5, full.count / 2, 40] {
            let path = dir + "/cut\(cut).zip"
            try Data(full.prefix(cut)).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try build(path)) { XCTAssertEqual(($0 as? FieldError)?.field, "file") }
        }
        try Data("<html>not a zip</html>".utf8).write(to: URL(fileURLWithPath: dir + "/html.zip"))
        XCTAssertThrowsError(try build(dir + "/html.zip")) { XCTAssertTrue(($0 as? FieldError)?.message.contains("not a zip") == true, "\($0)") }
        try Data().write(to: URL(fileURLWithPath: dir + "/empty.zip"))
        XCTAssertThrowsError(try build(dir + "/empty.zip"))
    }

    func testZipBombByRatio() {
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        let e = refusal(ZipBuilder([.init("20171228/www/zeros.bin", zeros)]))
        XCTAssertTrue(e?.message.contains("zip bomb") == true)
        // Highly compressible but small files are fine (the ratio rule starts above 1 MiB).
        XCTAssertNoThrow(try build(try write(ZipBuilder([.init("20171228/www/z.bin", [UInt8](repeating: 0, count: 500_000))]), "small.zip")))
    }

    func testTotalUncompressedLimitAndEntryCount() throws {
        var limits = ZipLimits()
        limits.maxTotalUncompressed = 2000
        let path = try write(ZipBuilder([.init("20171228/a", [UInt8](repeating: 1, count: 1500)), .init("20171228/b", [UInt8](repeating: 2, count: 1500))]))
        XCTAssertThrowsError(try ZipReader(path: path, limits: limits)) { XCTAssertTrue(($0 as? FieldError)?.message.contains("1 GiB") == true, "\($0)") }

        let many = ZipBuilder((0...20_000).map { ZipBuilder.Entry("20171228/f\($0)", "", method: 0) })
        let e = refusal(many)
        XCTAssertTrue(e?.message.contains("20001 entries") == true)
    }

    func testOverlappingEntriesAreRefused() throws {
        var bytes = ZipBuilder([.init("20171228/a.js", "aaaa", method: 0), .init("20171228/b.js", "bbbb", method: 0)]).bytes()
        // Point the second central entry at the first entry's local header.
        let cd = bytes.count - 22 - (46 + 13) * 2
        let second = cd + 46 + 13
        for i in 0..<4 { bytes[second + 42 + i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/overlap.zip"))
        XCTAssertThrowsError(try ZipReader(path: dir + "/overlap.zip")) { error in
            let m = (error as? FieldError)?.message ?? "\(error)"
            XCTAssertTrue(m.contains("overlaps") || m.contains("different file"), m)
        }
    }

    func testGlobalLayout() throws {
        let g = GlobalLocation(host: "mcube.example.com", appKey: "53E5279071442_test")
        let ok = ZipBuilder([.init("20171228/mcube.example.com/53E5279071442_test/common.js", "x")])
        XCTAssertEqual(try build(try write(ok), type: .global, global: g).files.map(\.path), ["mcube.example.com/53E5279071442_test/common.js"])
        XCTAssertTrue(refusal(ZipBuilder([.init("20171228/www/common.js", "x")]), type: .global, global: g)?.message.contains("outside") == true)
        let long = "20171228/mcube.example.com/53E5279071442_test/" + String(repeating: "a", count: 60) + ".js"
        XCTAssertTrue(refusal(ZipBuilder([.init(long, "x")]), type: .global, global: g)?.message.contains("at most 100") == true)
        XCTAssertEqual(refusal(ok, type: .global, global: nil)?.field, "type")
        XCTAssertEqual(PackageLayout.inferredType(of: try ZipReader(path: try write(ok, "g.zip")).entries, appID: app, globalHost: g.host), .global)
    }

    func testMainEntranceMustExist() {
        let e = refusal(samplePackage(), mainUrl: "/www/missing.html")
        XCTAssertEqual(e?.field, "mainUrl")
        XCTAssertTrue(e?.message.contains("/www/missing.html") == true)
    }

    func testLongPathsUseTheUstarPrefix() throws {
        let deep = "20171228/www/" + (0..<8).map { _ in String(repeating: "d", count: 20) }.joined(separator: "/") + "/file.js"
        let amr = try build(try write(ZipBuilder([.init(deep, "x")])))
        XCTAssertEqual(amr.files.first?.path, String(deep.dropFirst(9)))
        let x = dir + "/x"
        XCTAssertEqual(try shell(["unzip", "-q", dir + "/out.amr", "-d", x]).status, 0)
        XCTAssertTrue(try shell(["tar", "-tf", "\(x)/20171228.tar"]).output.contains(String(deep.dropFirst(9))))
    }
}

/// `courier push` zips a folder while sending it (SPEC §2 layout); what it writes must pass
/// every rule the server applies and hold exactly the folder's bytes.
final class FolderZipTests: XCTestCase {
    /// A temporary folder removed when the test ends.
    func scratch() -> String {
        let dir = temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func make(_ files: [String: [UInt8]]) throws -> String {
        let dir = scratch()
        for (path, bytes) in files {
            let full = dir + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: full))
        }
        return dir
    }

    func zipped(_ folder: String, chunk: Int) throws -> (ZipReader, Int) {
        let stream = try FolderZip(folder: folder, appId: "20171228").stream(chunkSize: chunk)
        var bytes: [UInt8] = []
        var chunks = 0
        while let c = try stream.next() { bytes += c; chunks += 1; XCTAssertLessThanOrEqual(c.count, 2 * chunk + 70_000, "bounded by the chunk and zlib's window") }
        let path = scratch() + "/out.zip"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (try ZipReader(path: path), chunks)
    }

    func testAFolderIsZippedIntoTheLayoutAndReadsBackByteForByte() throws {
        let random = (0..<300_000).map { _ in UInt8.random(in: 0...255) }
        let files: [String: [UInt8]] = [
            "www/index.html": Array("<!doctype html><title>x</title>".utf8),
            "www/js/app.js": Array(String(repeating: "console.log(1);\n", count: 5000).utf8),
            "www/empty.txt": [],
            "www/img/noise.bin": random,
            "www/zeros.bin": [UInt8](repeating: 0, count: 3 << 20),   // deflates beyond 200:1: stored instead
        ]
        let folder = try make(files)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for chunk in [1000, 64 * 1024] {
            let (reader, chunks) = try zipped(folder, chunk: chunk)
            XCTAssertGreaterThan(chunks, 3, "produced in pieces")
            XCTAssertEqual(Set(reader.entries.map(\.name)), Set(files.keys.map { "20171228/" + $0 }))
            for e in reader.entries { XCTAssertEqual(try reader.data(e), files[String(e.name.dropFirst(9))], e.name) }
            XCTAssertEqual(reader.entries.first { $0.name.hasSuffix("zeros.bin") }?.method, 0)
            XCTAssertEqual(reader.entries.first { $0.name.hasSuffix("app.js") }?.method, 8)
            let content = try PackageLayout.contentFiles(of: reader.entries, appID: AppID(trusted: "20171228"), type: .normal, global: nil,
                                                         mainUrl: "/www/index.html")
            XCTAssertEqual(content.count, files.count)
        }
        // A folder that already holds the {appId}/ directory is taken as the layout itself.
        let laidOut = try make(["20171228/www/index.html": [1, 2, 3]])
        defer { try? FileManager.default.removeItem(atPath: laidOut) }
        XCTAssertEqual(try FolderZip(folder: laidOut, appId: "20171228").entries.map(\.name), ["20171228/www/index.html"])
    }

    func testWhatTheServerWouldRefuseIsRefusedBeforeSending() throws {
        let spaced = try make(["www/my file.html": [1]])
        defer { try? FileManager.default.removeItem(atPath: spaced) }
        XCTAssertThrowsError(try FolderZip(folder: spaced, appId: "20171228")) { XCTAssertTrue("\($0)".contains("my file.html"), "\($0)") }
        let linked = try make(["www/a.html": [1]])
        defer { try? FileManager.default.removeItem(atPath: linked) }
        symlink("/etc/passwd", linked + "/www/passwd")
        XCTAssertThrowsError(try FolderZip(folder: linked, appId: "20171228")) { XCTAssertTrue("\($0)".contains("symbolic link"), "\($0)") }
        let empty = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        XCTAssertThrowsError(try FolderZip(folder: empty, appId: "20171228")) { XCTAssertTrue("\($0)".contains("no files"), "\($0)") }
        var small = ZipLimits()
        small.maxEntries = 1
        let two = try make(["a.html": [1], "b.html": [2]])
        defer { try? FileManager.default.removeItem(atPath: two) }
        XCTAssertThrowsError(try FolderZip(folder: two, appId: "20171228", limits: small))
    }

    /// Issue 15, 3.3: `build/30000040 -> /ci-home` published the home folder's credentials.
    func testAnAppFolderThatIsASymbolicLinkIsRefused() throws {
        let secrets = try make(["credentials": Array("token=secret".utf8)])
        defer { try? FileManager.default.removeItem(atPath: secrets) }
        let build = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: build) }
        XCTAssertEqual(symlink(secrets, build + "/30000040"), 0)
        XCTAssertThrowsError(try FolderZip(folder: build, appId: "30000040")) {
            XCTAssertTrue("\($0)".contains("30000040 is a symbolic link"), "\($0)")
        }
        // A file swapped for a link after the folder was listed is refused when it is read.
        let swapped = try make(["www/a.html": [1]])
        defer { try? FileManager.default.removeItem(atPath: swapped) }
        let zip = try FolderZip(folder: swapped, appId: "20171228")
        try FileManager.default.removeItem(atPath: swapped + "/www/a.html")
        XCTAssertEqual(symlink(secrets + "/credentials", swapped + "/www/a.html"), 0)
        let stream = zip.stream()
        XCTAssertThrowsError(try { while try stream.next() != nil {} }()) { XCTAssertTrue("\($0)".contains("symbolic link"), "\($0)") }

        // Hidden names inside the app's folder (a build's .git, .env) are left out, and said.
        let hiddenFiles = try make(["www/a.html": [1], "www/.env": Array("KEY=x".utf8), ".git/config": [2]])
        defer { try? FileManager.default.removeItem(atPath: hiddenFiles) }
        let leftOut = try FolderZip(folder: hiddenFiles, appId: "20171228")
        XCTAssertEqual(leftOut.entries.map(\.name), ["20171228/www/a.html"])
        XCTAssertEqual(Set(leftOut.hidden), [".git", "www/.env"])

        // A folder on the way swapped for a link (O_NOFOLLOW guards the last name only): another file, refused.
        let evil = try make(["www/a.html": Array("TOPSECRET".utf8)])
        defer { try? FileManager.default.removeItem(atPath: evil) }
        let mid = try make(["www/a.html": Array("public".utf8)])
        defer { try? FileManager.default.removeItem(atPath: mid) }
        let listed = try FolderZip(folder: mid, appId: "20171228")
        try FileManager.default.removeItem(atPath: mid + "/www")
        XCTAssertEqual(symlink(evil + "/www", mid + "/www"), 0)
        let read = listed.stream()
        XCTAssertThrowsError(try { while try read.next() != nil {} }()) { XCTAssertTrue("\($0)".contains("changed while the folder was being sent"), "\($0)") }
    }
}
