import CourierCore
import Foundation
import XCTest

/// Issue 19: a package's settings are described once (`PackageField.all`), and a draft stored
/// before a setting existed is read whole, the new setting at its default.
final class PackageFieldTests: XCTestCase {
    /// A pending import row's draft exactly as Courier stored it before the settings table.
    static let storedBeforeTheTable = #"""
    {"version":"2.0.0.0","type":"normal","android":true,"androidMin":"10.0","androidMax":"","ios":false,"iosMin":"","iosMax":"",
     "mainUrl":"/www/index.html","extendInfo":"{\"a\":\"1\"}","downloadPolicy":"all","installPolicy":"preload"}
    """#

    func testADraftStoredBeforeTheTableIsReadWhole() throws {
        let d = try JSONDecoder().decode(PackageDraft.self, from: Data(Self.storedBeforeTheTable.utf8))
        XCTAssertEqual(d.version, "2.0.0.0")
        XCTAssertTrue(d.android)
        XCTAssertFalse(d.ios)
        XCTAssertEqual(d.androidMin, "10.0")
        XCTAssertEqual(d.mainUrl, "/www/index.html")
        XCTAssertEqual(d.extendInfo, #"{"a":"1"}"#)
        XCTAssertEqual(d.downloadPolicy, "all")
        XCTAssertEqual(d.installPolicy, "preload")
        // And it is written back in the same shape, so an older binary reads it too.
        let again = try JSONSerialization.jsonObject(with: JSONEncoder().encode(d)) as? [String: Any]
        XCTAssertEqual(again?["android"] as? Bool, true)
        XCTAssertEqual(again?["installPolicy"] as? String, "preload")
        XCTAssertEqual(try JSONDecoder().decode(PackageDraft.self, from: JSONEncoder().encode(d)), d)
    }

    /// What adding a setting does to every pending draft: each stored draft lacks the new key.
    /// Whichever key is missing, the draft keeps every other value and the missing one reads
    /// as its default (before the table, a missing key blanked the whole draft).
    func testWhicheverSettingADraftLacksItKeepsTheOthersAndTakesTheDefault() throws {
        let full = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(Self.storedBeforeTheTable.utf8)) as? [String: Any])
        let original = try JSONDecoder().decode(PackageDraft.self, from: Data(Self.storedBeforeTheTable.utf8))
        for field in PackageField.all {
            var lacking = full
            lacking[field.key] = nil
            lacking["aSettingFromANewerBinary"] = "x"
            let d = try JSONDecoder().decode(PackageDraft.self, from: JSONSerialization.data(withJSONObject: lacking))
            for other in PackageField.all where other.key != field.key {
                XCTAssertEqual(d[other.key], original[other.key], "\(other.key) kept when \(field.key) is missing")
            }
            XCTAssertEqual(d[field.key], field.defaultValue, "\(field.key) reads as its default")
        }
        XCTAssertEqual(try JSONDecoder().decode(PackageDraft.self, from: Data("{}".utf8)), PackageDraft())
    }

    func testTheTableIsConsistentAndEveryDescribedSettingIsChecked() throws {
        XCTAssertEqual(Set(PackageField.all.map(\.key)).count, PackageField.all.count, "keys are unique")
        for f in PackageField.all {
            if !f.choices.isEmpty {
                XCTAssertTrue(f.choices.contains { $0.value == f.defaultValue } || f.laidOutByHand, "\(f.key)'s default is one of its choices")
                XCTAssertThrowsError(try f.check("none of them")) { XCTAssertEqual(($0 as? FieldError)?.field, f.key) }
            }
            if f.isFlag { XCTAssertTrue(f.laidOutByHand, "a checkbox needs a layout of its own") }
        }
        // The described settings' checks are the ones validation applies, each error on its field.
        var d = PackageDraft()
        d.version = "1.0.0.0"; d.type = "normal"; d.android = true; d.androidMin = "1.0"
        d.mainUrl = "www/index.html"; d.extendInfo = "[1]"; d.downloadPolicy = "sometimes"; d.installPolicy = "never"
        do {
            _ = try d.validate(for: AppFacts(fixedType: nil, highestVersion: nil))
            XCTFail("four bad settings were accepted")
        } catch {
            XCTAssertEqual(Set(error.errors.map(\.field)), ["mainUrl", "extendInfo", "downloadPolicy", "installPolicy"])
        }
        d.mainUrl = "/www/index.html"; d.extendInfo = ""; d.downloadPolicy = "all"; d.installPolicy = "preload"
        let s = try d.validate(for: AppFacts(fixedType: nil, highestVersion: nil))
        XCTAssertEqual(s.values["mainUrl"], "/www/index.html")
        XCTAssertEqual(s.values["extendInfo"], "{}")
        XCTAssertEqual(s.values["downloadPolicy"], "all")
        XCTAssertEqual(Set(s.values.keys), Set(PackageField.all.map(\.key)), "every setting has a checked value")
    }
}
