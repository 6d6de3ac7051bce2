import CourierClient
import CourierTestSupport
import Foundation
import XCTest

/// Replays the client fuzz target's seeds and every crash it has found (Fuzz/regressions/client)
/// through the same calls: a trap here kills the run, so a fixed crash stays fixed.
final class FuzzReplayTests: XCTestCase {
    func testClientInputsAreReadOrRefusedNeverATrap() throws {
        let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz").path
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var seen = 0
        for folder in ["corpus/client", "regressions/client"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "\(fuzz)/\(folder)")) ?? [] where !name.hasPrefix(".") {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(fuzz)/\(folder)/\(name)"))
                _ = try? UpdateAnswer.parse(data)
                let amr = dir + "/input.amr"
                XCTAssertTrue(FileManager.default.createFile(atPath: amr, contents: data))
                let store = try PackageStore(root: dir + "/store-\(seen)")
                _ = try? store.verify(amr: amr, appId: "20171228", version: "0.0.0.1", keys: .none)
                _ = try? store.install(amr: amr, appId: "20171228", version: "0.0.0.1", keys: .none)
                seen += 1
            }
        }
        XCTAssertGreaterThanOrEqual(seen, 2, "the seeds are there")
        // The unsigned seed is a real package: it installs.
        let store = try PackageStore(root: dir + "/seed")
        XCTAssertEqual(try store.install(amr: "\(fuzz)/corpus/client/unsigned.amr", appId: "20171228", version: "0.0.0.1", keys: .none).files, 2)
    }

    func testPatchesAreAppliedOrRefusedNeverATrap() throws {
        let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz").path
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The fuzz target's installed version.
        try FileManager.default.createDirectory(atPath: dir + "/base/www", withIntermediateDirectories: true)
        try Data("<h1>base</h1>".utf8).write(to: URL(fileURLWithPath: dir + "/base/www/index.html"))
        try Data("one()".utf8).write(to: URL(fileURLWithPath: dir + "/base/www/app.js"))
        var seen = 0
        for folder in ["corpus/patch", "regressions/patch"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "\(fuzz)/\(folder)")) ?? [] where !name.hasPrefix(".") {
                _ = try? PatchApplier.rebuild(patch: "\(fuzz)/\(folder)/\(name)", baseFolder: dir + "/base", appId: "20171228", version: "0.0.0.2",
                                              maxBytes: 64 << 20, to: dir + "/out-\(seen).amr")
                seen += 1
            }
        }
        XCTAssertGreaterThanOrEqual(seen, 1, "the seed is there")
        // The seed is an honest patch: it rebuilds 0.0.0.2 (unsigned), which installs.
        _ = try PatchApplier.rebuild(patch: "\(fuzz)/corpus/patch/honest.patch.amr", baseFolder: dir + "/base", appId: "20171228",
                                     version: "0.0.0.2", maxBytes: 64 << 20, to: dir + "/honest.amr")
        let store = try PackageStore(root: dir + "/device")
        XCTAssertEqual(try store.install(amr: dir + "/honest.amr", appId: "20171228", version: "0.0.0.2", keys: .none).files, 3)
    }
}
