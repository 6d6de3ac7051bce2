import CourierArchive
import CourierClient
import CourierCore
import CourierTestSupport
import Crypto
import _CryptoExtras
import Foundation
import XCTest

/// The device's install (SPEC §10): verify before a byte is installed, stage and rename, replace
/// the state atomically, keep the previous version through the trial. Real `.amr` files built by
/// the server's own builder, real RSA keys, hostile tars built byte by byte.
final class PackageStoreTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The server's `.amr` for the sample package, signed with `key` (or unsigned).
    func amr(_ version: String = "1.0.0.1", key: SigningKey?) throws -> String {
        let zip = dir + "/in-\(version).zip"
        try samplePackage().write(to: zip)
        let reader = try ZipReader(path: zip)
        let files = try PackageLayout.contentFiles(of: reader.entries, appID: AppID(trusted: "20171228"), type: .normal, global: nil, mainUrl: nil)
        let out = dir + "/\(version).amr"
        _ = try AmrBuilder.build(from: reader, files: files, appID: "20171228", version: version, signer: key, to: out)
        return out
    }

    func store() throws -> PackageStore { try PackageStore(root: dir + "/device") }

    /// Nothing half-made: no staging leftovers, no version folder but those the state names.
    func assertNothingLeft(_ s: PackageStore, installed: [String] = [], file: StaticString = #filePath, line: UInt = #line) {
        let fm = FileManager.default
        XCTAssertEqual((try? fm.contentsOfDirectory(atPath: s.root + "/staging")) ?? ["?"], [], "staging is empty", file: file, line: line)
        let versions = (try? fm.contentsOfDirectory(atPath: s.root + "/packages/20171228")) ?? []
        XCTAssertEqual(Set(versions), Set(installed), file: file, line: line)
        XCTAssertFalse(fm.fileExists(atPath: s.root + "/state.json.tmp"), file: file, line: line)
    }

    func testASignedPackageInstallsItsFilesAndTheStateSaysSo() throws {
        let key = try SigningKey.generate()
        let s = try store()
        let done = try s.install(amr: try amr(key: key), appId: "20171228", version: "1.0.0.1", keys: try PinnedKeys(pems: [key.publicKeyPEM]))
        XCTAssertEqual(done.verifiedBy, "SIGN.json")
        XCTAssertEqual(done.files, 4)
        let index = try String(contentsOfFile: s.folder("20171228", "1.0.0.1") + "/www/index.html", encoding: .utf8)
        XCTAssertTrue(index.contains("<title>Checkout</title>"))
        XCTAssertEqual(s.state.apps["20171228"]?.installed, "1.0.0.1")
        XCTAssertEqual(s.state.apps["20171228"]?.onTrial, true)
        // What is on disk is what the store says (another process reads it so).
        XCTAssertEqual(try PackageStore.readState(root: s.root), s.state)
        XCTAssertThrowsError(try store(), "one device process per data folder") { XCTAssertTrue("\($0)".contains("in use"), "\($0)") }
        assertNothingLeft(s, installed: ["1.0.0.1"])
    }

    func testAPackageSignedByAnotherKeyOrUnsignedIsRefusedAndNothingChanges() throws {
        let ours = try SigningKey.generate(), theirs = try SigningKey.generate()
        let pinned = try PinnedKeys(pems: [ours.publicKeyPEM])
        let s = try store()
        try s.install(amr: try amr(key: ours), appId: "20171228", version: "1.0.0.1", keys: pinned)
        let before = s.state
        for (path, words) in [(try amr("1.0.0.2", key: theirs), "does not verify with a pinned key"),
                              (try amr("1.0.0.3", key: nil), "not signed")] {
            let version = path.hasSuffix("1.0.0.2.amr") ? "1.0.0.2" : "1.0.0.3"
            XCTAssertThrowsError(try s.install(amr: path, appId: "20171228", version: version, keys: pinned)) { e in
                XCTAssertEqual((e as? ClientFailure)?.kind, .verifyFailed)
                XCTAssertTrue("\(e)".contains(words), "\(e)")
            }
            XCTAssertEqual(s.state, before, "the installed version stays")
            assertNothingLeft(s, installed: ["1.0.0.1"])
        }
        // Key rotation: two pinned keys, either verifies.
        let both = try PinnedKeys(pems: [ours.publicKeyPEM, theirs.publicKeyPEM])
        XCTAssertEqual(try s.install(amr: try amr("1.0.0.4", key: theirs), appId: "20171228", version: "1.0.0.4", keys: both).verifiedBy, "SIGN.json")
        // With no key pinned an unsigned package installs (development).
        XCTAssertNil(try s.install(amr: try amr("1.0.0.5", key: nil), appId: "20171228", version: "1.0.0.5", keys: .none).verifiedBy)
        // A manifest for another version is refused.
        XCTAssertThrowsError(try s.install(amr: try amr("1.0.0.6", key: ours), appId: "20171228", version: "1.0.0.7", keys: pinned))
    }

    // MARK: Hostile tars

    /// A ustar header for any path and type, with a right or wrong checksum.
    func header(_ path: String, size: Int, type: UInt8 = UInt8(ascii: "0"), badChecksum: Bool = false) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        for (i, b) in path.utf8.prefix(100).enumerated() { h[i] = b }
        func put(_ text: String, at: Int) { for (i, b) in text.utf8.enumerated() { h[at + i] = b } }
        put("0000644", at: 100); put("0000000", at: 108); put("0000000", at: 116)
        put(String(format: "%011o", size), at: 124); put("00000000000", at: 136)
        h[156] = type
        put("ustar", at: 257); put("00", at: 263)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) } + (badChecksum ? 1 : 0)
        put(String(format: "%06o", sum), at: 148); h[154] = 0
        return h
    }

    func entry(_ path: String, _ content: [UInt8], type: UInt8 = UInt8(ascii: "0"), badChecksum: Bool = false) -> [UInt8] {
        header(path, size: content.count, type: type, badChecksum: badChecksum) + content
            + [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }

    /// An unsigned `.amr` around `tar`, with a manifest of `listed` files.
    func hostile(_ tar: [UInt8], listed: [(String, [UInt8])], name: String) throws -> String {
        let files = listed.map { p, c in
            ["path": p, "size": c.count, "sha256": SHA256.hash(data: Data(c)).map { String(format: "%02x", $0) }.joined()] as [String: Any]
        }
        let manifest = try JSONSerialization.data(withJSONObject: ["id": "20171228", "version": "1.0.0.9", "files": files])
        let path = dir + "/\(name).amr"
        try ZipBuilder([.init("20171228.tar", tar, method: 0), .init("manifest.json", [UInt8](manifest), method: 0)]).write(to: path)
        return path
    }

    func testAHostileTarIsRefusedBeforeAnythingIsInstalled() throws {
        let s = try store()
        let body = Array("alert(1)".utf8)
        let end = [UInt8](repeating: 0, count: 1024)
        let cases: [(String, [UInt8], [(String, [UInt8])], String)] = [
            ("slip", entry("../evil.js", body) + end, [("../evil.js", body)], "unsafe path"),
            ("absolute", entry("/etc/evil.js", body) + end, [("/etc/evil.js", body)], "unsafe path"),
            ("symlink", entry("www/link", [], type: UInt8(ascii: "2")) + end, [("www/link", [])], "other than a regular file"),
            ("unlisted", entry("www/a.js", body) + end, [], "not in the manifest"),
            ("size-lies", entry("www/a.js", body) + end, [("www/a.js", body + [1])], "manifest says"),
            ("hash-lies", entry("www/a.js", body) + end, [("www/a.js", Array("alert(2)".utf8))], "SHA-256"),
            ("twice", entry("www/a.js", body) + entry("www/a.js", body) + end, [("www/a.js", body)], "twice"),
            ("truncated", Array((entry("www/a.js", body) + end).prefix(600)), [("www/a.js", body)], "truncated"),
            ("checksum", entry("www/a.js", body, badChecksum: true) + end, [("www/a.js", body)], "checksum"),
            ("missing", entry("www/a.js", body) + end, [("www/a.js", body), ("www/b.js", body)], "lacks"),
            ("no-end", entry("www/a.js", body), [("www/a.js", body)], "zero blocks"),
            ("dotdot-dir", entry("www/../../x.js", body) + end, [("www/../../x.js", body)], "unsafe path"),
            // `/` followed by a combining mark is one grapheme cluster: checked on bytes, it is still `..`.
            ("combining", entry("www/../\u{301}x.js", body) + end, [("www/../\u{301}x.js", body)], "unsafe path"),
            ("space", entry("www/a b.js", body) + end, [("www/a b.js", body)], "unsafe path"),
        ]
        for (name, tar, listed, words) in cases {
            XCTAssertThrowsError(try s.install(amr: try hostile(tar, listed: listed, name: name), appId: "20171228", version: "1.0.0.9",
                                               keys: .none), name) { e in
                XCTAssertEqual((e as? ClientFailure)?.kind, .verifyFailed, name)
                XCTAssertTrue("\(e)".contains(words), "\(name): \(e)")
            }
            assertNothingLeft(s)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/evil.js") || FileManager.default.fileExists(atPath: s.root + "/evil.js"),
                           "\(name): nothing written outside staging")
        }
        XCTAssertEqual(s.state, DeviceState())
        // With a key pinned, the signature is checked before the tar is even read for files.
        let key = try SigningKey.generate()
        XCTAssertThrowsError(try s.install(amr: try hostile(entry("../evil.js", body) + end, listed: [("www/a.js", body)], name: "signed-first"),
                                           appId: "20171228", version: "1.0.0.9", keys: try PinnedKeys(pems: [key.publicKeyPEM]))) { e in
            XCTAssertTrue("\(e)".contains("not signed"), "\(e)")
        }
        // And the same tar done right installs.
        let good = try hostile(entry("www/a.js", body) + end, listed: [("www/a.js", body)], name: "good")
        XCTAssertEqual(try s.install(amr: good, appId: "20171228", version: "1.0.0.9", keys: .none).files, 1)
    }

    // MARK: Trial

    func testAVersionOnTrialThatNeverLoadsIsGivenUpAndThePreviousComesBack() throws {
        let key = try SigningKey.generate()
        let pinned = try PinnedKeys(pems: [key.publicKeyPEM])
        let s = try store()
        try s.install(amr: try amr("1.0.0.1", key: key), appId: "20171228", version: "1.0.0.1", keys: pinned)
        try s.markLoaded("20171228", "1.0.0.1")
        try s.install(amr: try amr("1.0.0.2", key: key), appId: "20171228", version: "1.0.0.2", keys: pinned)
        XCTAssertEqual(s.state.apps["20171228"]?.previous, "1.0.0.1", "kept until the new one passes its trial")
        assertNothingLeft(s, installed: ["1.0.0.1", "1.0.0.2"])
        XCTAssertNil(try s.opened("20171228"))
        XCTAssertNil(try s.opened("20171228"))
        XCTAssertEqual(try s.opened("20171228"), "1.0.0.2", "opened a third time without loading: given up")
        let app = try XCTUnwrap(s.state.apps["20171228"])
        XCTAssertEqual(app.installed, "1.0.0.1")
        XCTAssertEqual(app.givenUp, ["1.0.0.2"])
        assertNothingLeft(s, installed: ["1.0.0.1"])
        XCTAssertThrowsError(try s.install(amr: try amr("1.0.0.2", key: key), appId: "20171228", version: "1.0.0.2", keys: pinned),
                             "a given-up version is not installed again")
        // A version that passes its trial lets the previous one go.
        try s.install(amr: try amr("1.0.0.3", key: key), appId: "20171228", version: "1.0.0.3", keys: pinned)
        try s.markLoaded("20171228", "1.0.0.3")
        assertNothingLeft(s, installed: ["1.0.0.3"])
        XCTAssertNil(s.state.apps["20171228"]?.previous)
    }

    func testARollbackLeavesNoPreviousToComeBackTo() throws {
        let key = try SigningKey.generate()
        let pinned = try PinnedKeys(pems: [key.publicKeyPEM])
        let s = try store()
        try s.install(amr: try amr("1.0.0.1", key: key), appId: "20171228", version: "1.0.0.1", keys: pinned)
        try s.markLoaded("20171228", "1.0.0.1")
        try s.install(amr: try amr("1.0.0.2", key: key), appId: "20171228", version: "1.0.0.2", keys: pinned)
        XCTAssertEqual(s.state.apps["20171228"]?.previous, "1.0.0.1")
        // 1.0.0.2 was rolled back on the server: the device goes back to 1.0.0.1, and 1.0.0.2 is not a version to return to.
        try s.install(amr: try amr("1.0.0.1", key: key), appId: "20171228", version: "1.0.0.1", keys: pinned, rollback: true)
        XCTAssertEqual(s.state.apps["20171228"]?.installed, "1.0.0.1")
        XCTAssertNil(s.state.apps["20171228"]?.previous)
        assertNothingLeft(s, installed: ["1.0.0.1"])
        // Given up now, nothing comes back: it is not listed as both installed and given up.
        XCTAssertEqual(try s.giveUp("20171228"), "1.0.0.1")
        XCTAssertNil(s.state.apps["20171228"]?.installed ?? nil)
    }

    func testALeftoverOfAKilledInstallIsRemovedAtStart() throws {
        var s: PackageStore? = try store()
        let root = s!.root
        s = nil   // the device process ended (killed)
        try FileManager.default.createDirectory(atPath: root + "/staging/20171228-1.0.0.1-42/www", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/state.json.tmp", contents: Data("{".utf8))
        try FileManager.default.createDirectory(atPath: root + "/packages/20171228/1.0.0.8", withIntermediateDirectories: true)
        var again: PackageStore? = try store()
        assertNothingLeft(again!)
        again = nil
        // A state that cannot be read is refused in words, not replaced by an empty one.
        FileManager.default.createFile(atPath: root + "/state.json", contents: Data("not json".utf8))
        XCTAssertThrowsError(try store()) { XCTAssertTrue("\($0)".contains("state.json cannot be read"), "\($0)") }
        _ = s
        _ = again
    }
}
