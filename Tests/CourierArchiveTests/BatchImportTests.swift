import CourierArchive
import CourierCore
import CourierTestSupport
import Foundation
import XCTest

/// The batch-import rules that need no database (SPEC §6), on real zips written to disk.
final class BatchImportTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func file(_ name: String, _ zip: ZipBuilder) throws -> (name: String, path: String, size: Int64) {
        let path = "\(dir)/\(UUID().uuidString).upload"
        try zip.write(to: path)
        return (name, path, Int64(zip.bytes().count))
    }

    func testEachFileGetsItsAppTypeVersionAndCountsOrItsOwnError() throws {
        let existing = AppFacts(fixedType: .normal, highestVersion: PackageVersion(parts: [1, 2, 0, 9]))
        let full = AppFacts(fixedType: .normal, highestVersion: PackageVersion(parts: [1, 0, 0, 99999]))
        let global = GlobalLocation(host: "mcube.example.com", appKey: "KEY_test")
        let globalZip = ZipBuilder([.init("30000009/mcube.example.com/KEY_test/lib.js", "x")])
        let rows = BatchImportRules.inspect([
            try file("30000001.zip", samplePackage("30000001")),       // a new app
            try file("20171228.zip", samplePackage("20171228")),       // an existing app
            try file("checkout.zip", samplePackage("30000002")),       // not named after its app
            try file("20000001.zip", samplePackage("20000001")),       // a reserved ID
            try file("30000001.zip", samplePackage("30000001")),       // a second file for one app
            try file("30000003.zip", samplePackage("30000004")),       // content for another app
            try file("30000005.zip", samplePackage("30000005")),       // its app's last part is full
            try file("30000006.zip", samplePackage("30000006")),       // normal, but the app is global
            try file("30000009.zip", globalZip),                        // global by its layout
        ], facts: ["20171228": existing, "30000005": full, "30000006": AppFacts(fixedType: .global, highestVersion: nil)],
           global: global)
        XCTAssertEqual(rows.count, 9)
        XCTAssertEqual(rows[0], ImportRow(fileName: "30000001.zip", appId: "30000001", newApp: true, type: .normal,
                                          version: PackageVersion(parts: [0, 0, 0, 1]), fileCount: 4, size: rows[0].size, error: nil))
        XCTAssertEqual(rows[1].version?.description, "1.2.0.10")
        XCTAssertFalse(rows[1].newApp)
        XCTAssertTrue(rows[1].isReady)
        XCTAssertTrue(rows[2].error?.contains("is not named after its app") == true, rows[2].error ?? "")
        XCTAssertTrue(rows[3].error?.contains("reserved") == true, rows[3].error ?? "")
        XCTAssertTrue(rows[4].error?.contains("A second file for app 30000001") == true, rows[4].error ?? "")
        XCTAssertTrue(rows[5].error?.contains("30000004/") == true, rows[5].error ?? "")
        XCTAssertTrue(rows[6].error?.contains("cannot go higher") == true, rows[6].error ?? "")
        XCTAssertTrue(rows[7].error?.contains("packages are global") == true, rows[7].error ?? "")
        XCTAssertEqual(rows[8].type, .global)
        XCTAssertTrue(rows[8].isReady, rows[8].error ?? "")
    }

    func testEveryHostileZipFailsOnlyItsOwnRow() throws {
        for hostile in hostileZips() {
            let path = "\(dir)/hostile.upload"
            try Data(hostile.bytes).write(to: URL(fileURLWithPath: path))
            let rows = BatchImportRules.inspect([
                try file("30000001.zip", samplePackage("30000001")),
                ("20171228.zip", path, Int64(hostile.bytes.count)),
                try file("30000002.zip", samplePackage("30000002")),
            ], facts: [:], global: nil)
            XCTAssertNotNil(rows[1].error, "\(hostile.name) is refused")
            XCTAssertTrue(rows[0].isReady && rows[2].isReady, "\(hostile.name) does not stop the others")
        }
    }

    func testTheWholeImportIsRefusedBeyondItsLimits() {
        XCTAssertThrowsError(try BatchImportRules.checkAll(sizes: []))
        XCTAssertThrowsError(try BatchImportRules.checkAll(sizes: Array(repeating: 1, count: 101)))
        XCTAssertThrowsError(try BatchImportRules.checkAll(sizes: [200 << 20, 101 << 20]))
        XCTAssertThrowsError(try BatchImportRules.checkAll(sizes: [Int64.max, Int64.max]), "sizes that would overflow a sum")
        XCTAssertThrowsError(try BatchImportRules.checkAll(sizes: [-1]))
        XCTAssertNoThrow(try BatchImportRules.checkAll(sizes: Array(repeating: 3 << 20, count: 100)))
        XCTAssertNoThrow(try BatchImportRules.checkAll(sizes: [300 << 20]))
    }
}
