import CourierArchive
@testable import CourierClient
import CourierCore
import CourierTestSupport
import Crypto
import Foundation
import XCTest

/// Patches (SPEC §3, issue 18): built by the server's own code from two real `.amr` files, applied
/// by the client to the installed files of the base. The rebuilt `.amr` is the full one, byte for
/// byte, and verifies with the version's own signature; a hostile patch is refused and nothing
/// installed changes.
final class PatchTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A deterministic generator, so a failing round can be replayed from its seed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Builds the `.amr` of `files` (paths below the app's folder) as the server does.
    func amr(_ files: [String: [UInt8]], version: String, key: SigningKey) throws -> (path: String, file: AmrFile) {
        let zip = dir + "/in-\(version).zip"
        try ZipBuilder(files.sorted { $0.key < $1.key }.map { .init("20171228/" + $0.key, $0.value, method: 0) }).write(to: zip)
        let reader = try ZipReader(path: zip)
        let content = try PackageLayout.contentFiles(of: reader.entries, appID: AppID(trusted: "20171228"), type: .normal, global: nil, mainUrl: nil)
        let out = dir + "/\(version).amr"
        return (out, try AmrBuilder.build(from: reader, files: content, appID: "20171228", version: version, signer: key, to: out))
    }

    func randomPath(_ g: inout SplitMix) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_")
        func segment(_ n: Int) -> String { String((0..<n).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] }) }
        let depth = Int(g.next() % 4)
        var parts = (0..<depth).map { _ in segment(1 + Int(g.next() % 12)) }
        if g.next() % 10 == 0 { parts.append(segment(60 + Int(g.next() % 30))) }   // long: the tar splits prefix and name
        parts.append(segment(1 + Int(g.next() % 20)) + ".js")
        return "www/" + parts.joined(separator: "/")
    }

    func randomBytes(_ g: inout SplitMix) -> [UInt8] {
        let size = g.next() % 8 == 0 ? 0 : Int(g.next() % 3000)
        return (0..<size).map { _ in UInt8(truncatingIfNeeded: g.next()) }
    }

    func testAPatchRebuildsTheTargetByteForByteAndItsSignatureHolds() throws {
        let key = try SigningKey.generate()
        let keys = try PinnedKeys(pems: [key.publicKeyPEM])
        for seed in UInt64(1)...12 {
            var g = SplitMix(state: seed)
            var base: [String: [UInt8]] = ["www/index.html": Array("<h1>base</h1>".utf8)]
            for _ in 0..<Int(g.next() % 300) { base[randomPath(&g)] = randomBytes(&g) }
            var target = base
            for path in base.keys.sorted() {
                switch g.next() % 10 {
                case 0: target[path] = nil                      // removed
                case 1: target[path] = randomBytes(&g)          // changed (or emptied)
                default: break
                }
            }
            for _ in 0..<Int(g.next() % 40) { target[randomPath(&g)] = randomBytes(&g) }   // added
            target["www/index.html"] = Array("<h1>target \(seed)</h1>".utf8)

            let b = try amr(base, version: "1.0.0.1", key: key)
            let v = try amr(target, version: "1.0.0.2", key: key)
            let device = dir + "/device-\(seed)"
            let store = try PackageStore(root: device)
            try store.install(amr: b.path, appId: "20171228", version: "1.0.0.1", keys: keys)

            let plan = Patch.plan(base: b.file.files, target: v.file.files)
            XCTAssertEqual(Set(plan.removed), Set(base.keys).subtracting(target.keys), "seed \(seed)")
            let patch = dir + "/\(seed).patch.amr"
            let built = try Patch.build(plan, targetAmr: v.path, tarOffset: v.file.tarOffset, to: patch)
            XCTAssertEqual(built.size, UInt64(try Data(contentsOf: URL(fileURLWithPath: patch)).count))

            let rebuilt = dir + "/\(seed).rebuilt.amr"
            let made = try PatchApplier.rebuild(patch: patch, baseFolder: store.folder("20171228", "1.0.0.1"), appId: "20171228",
                                                version: "1.0.0.2", maxBytes: 1 << 30, to: rebuilt)
            XCTAssertEqual(made.sha256, v.file.sha256, "seed \(seed): the rebuilt .amr is the full one, byte for byte")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: rebuilt)), try Data(contentsOf: URL(fileURLWithPath: v.path)), "seed \(seed)")
            XCTAssertEqual(try store.verify(amr: rebuilt, appId: "20171228", version: "1.0.0.2", keys: keys), "SIGN.json", "seed \(seed)")
        }
    }

    // MARK: Hostile patches

    /// A base (1.0.0.1) installed, and a real target (1.0.0.2) with its patch.
    func installedBaseAndTarget() throws -> (PackageStore, key: SigningKey, v: (path: String, file: AmrFile), plan: Patch.Plan) {
        let key = try SigningKey.generate()
        let base: [String: [UInt8]] = ["www/index.html": Array("<h1>one</h1>".utf8), "www/app.js": Array("one()".utf8),
                                       "www/old.css": Array("p{}".utf8)]
        var target = base
        target["www/app.js"] = Array("two()".utf8)
        target["www/new.js"] = Array("new()".utf8)
        target["www/old.css"] = nil
        let b = try amr(base, version: "1.0.0.1", key: key)
        let v = try amr(target, version: "1.0.0.2", key: key)
        let store = try PackageStore(root: dir + "/device")
        try store.install(amr: b.path, appId: "20171228", version: "1.0.0.1", keys: try PinnedKeys(pems: [key.publicKeyPEM]))
        return (store, key, v, Patch.plan(base: b.file.files, target: v.file.files))
    }

    func tarEntry(_ path: String, _ content: [UInt8], claimedSize: Int? = nil) -> [UInt8] {
        (TarHeader.file(path: path, size: UInt64(claimedSize ?? content.count)) ?? []) + content
            + [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }

    /// A patch around `tar` and `removed`, with the target's own manifest and signatures.
    func hostilePatch(_ tar: [UInt8], removed: [String], v: (path: String, file: AmrFile), name: String) throws -> String {
        let reader = try ZipReader(path: v.path)
        var entries: [ZipBuilder.Entry] = [.init(Patch.tarName, tar, method: 0),
                                           .init(Patch.removedName, Patch.removedJSON(removed), method: 0)]
        for e in reader.entries where e.name.hasSuffix(".json") { entries.append(.init(e.name, try reader.data(e), method: 0)) }
        let path = dir + "/\(name).patch.amr"
        try ZipBuilder(entries).write(to: path)
        return path
    }

    func testHostilePatchesAreRefusedAndTheInstalledVersionIsUntouched() throws {
        let (store, _, v, plan) = try installedBaseAndTarget()
        let before = try PackageStore.readState(root: store.root)
        let good = plan.changed.flatMap { f in tarEntry(f.path, Array("www/app.js" == f.path ? "two()".utf8 : "new()".utf8)) }
        let end = [UInt8](repeating: 0, count: 1024)
        let cases: [(String, [UInt8], [String], String)] = [
            ("outside", tarEntry("../evil.js", Array("x".utf8)) + good + end, ["www/old.css"], "not a plain relative path"),
            ("twice", good + tarEntry("www/new.js", Array("new()".utf8)) + end, ["www/old.css"], "appears twice"),
            ("removes-a-file-V-has", good + end, ["www/old.css", "www/index.html"], "a file of 1.0.0.2"),
            ("truncated", Array((good + end).prefix(700)), ["www/old.css"], "truncated"),
            ("size-lies", tarEntry("www/new.js", Array("new()".utf8), claimedSize: 4) + end, ["www/old.css"], "manifest says"),
            ("other-bytes", tarEntry("www/app.js", Array("evl()".utf8)) + tarEntry("www/new.js", Array("new()".utf8)) + end, ["www/old.css"], "SHA-256"),
            ("lacks-a-change", tarEntry("www/new.js", Array("new()".utf8)) + end, ["www/old.css"], "patch is for another version"),
        ]
        for (name, tar, removed, words) in cases {
            let patch = try hostilePatch(tar, removed: removed, v: v, name: name)
            let out = dir + "/\(name).rebuilt"
            XCTAssertThrowsError(try PatchApplier.rebuild(patch: patch, baseFolder: store.folder("20171228", "1.0.0.1"), appId: "20171228",
                                                          version: "1.0.0.2", maxBytes: 1 << 30, to: out), name) { error in
                XCTAssertEqual((error as? ClientFailure)?.kind, .patchFailed, name)
                XCTAssertTrue("\(error)".contains(words), "\(name): \(error)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(name): nothing half-written")
        }
        // The honest patch, for comparison, rebuilds the target.
        let honest = try hostilePatch(good + end, removed: ["www/old.css"], v: v, name: "honest")
        XCTAssertEqual(try PatchApplier.rebuild(patch: honest, baseFolder: store.folder("20171228", "1.0.0.1"), appId: "20171228",
                                                version: "1.0.0.2", maxBytes: 1 << 30, to: dir + "/honest.rebuilt").sha256, v.file.sha256)
        XCTAssertEqual(try PackageStore.readState(root: store.root), before, "the installed version is untouched")
    }

    func testAPatchOverABaseTheDeviceDoesNotHaveIsRefused() throws {
        let (store, key, v, plan) = try installedBaseAndTarget()
        let patch = dir + "/p.amr"
        _ = try Patch.build(plan, targetAmr: v.path, tarOffset: v.file.tarOffset, to: patch)
        // Another version is installed in the base's place (1.0.0.0, with other files).
        let other = try amr(["www/index.html": Array("<h1>zero</h1>".utf8), "www/app.js": Array("zero()".utf8)], version: "1.0.0.0", key: key)
        try store.install(amr: other.path, appId: "20171228", version: "1.0.0.0", keys: try PinnedKeys(pems: [key.publicKeyPEM]), rollback: true)
        XCTAssertThrowsError(try PatchApplier.rebuild(patch: patch, baseFolder: store.folder("20171228", "1.0.0.0"), appId: "20171228",
                                                      version: "1.0.0.2", maxBytes: 1 << 30, to: dir + "/out")) { error in
            XCTAssertEqual((error as? ClientFailure)?.kind, .patchFailed)
            XCTAssertTrue("\(error)".contains("another version"), "\(error)")
        }
        XCTAssertThrowsError(try PatchApplier.rebuild(patch: patch, baseFolder: dir + "/nowhere", appId: "20171228",
                                                      version: "1.0.0.2", maxBytes: 1 << 30, to: dir + "/out"))
    }
}
