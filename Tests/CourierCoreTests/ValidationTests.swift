import CourierCore
import XCTest

final class ValidationTests: XCTestCase {
    func testAppIDs() throws {
        XCTAssertEqual(try AppID(validating: "20171228").rawValue, "20171228")
        for bad in ["2017122", "201712281", "2017122a", "", "２０１７１２２８"] {
            XCTAssertThrowsError(try AppID(validating: bad)) { XCTAssertEqual(($0 as? FieldError)?.field, "id") }
        }
        for reserved in ["20000196", "66666692", "68687029", "68687209", "66666612", "20000999"] {
            XCTAssertThrowsError(try AppID(validating: reserved)) {
                XCTAssertTrue(($0 as! FieldError).message.contains("reserved"))
            }
        }
        XCTAssertThrowsError(try AppName.validate("   "))
        XCTAssertThrowsError(try AppName.validate(String(repeating: "x", count: 65)))
        XCTAssertEqual(try AppName.validate(" Checkout "), "Checkout")
    }

    func testPackageVersionsCompareNumerically() throws {
        let a = try PackageVersion(validating: "1.0.0.10"), b = try PackageVersion(validating: "1.0.0.9")
        XCTAssertTrue(b < a)
        XCTAssertEqual(try PackageVersion(validating: "99999.0.0.1").description, "99999.0.0.1")
        for bad in ["1.0.0", "1.0.0.0.1", "1.0.0.100000", "1.0.0.-1", "1..0.1", "a.b.c.d", "1.0.0.1x", ""] {
            XCTAssertThrowsError(try PackageVersion(validating: bad), bad)
        }
        XCTAssertEqual(try PackageVersion(validating: " 1.0.0.1 ").description, "1.0.0.1", "spaces around it are forgiven")
        XCTAssertEqual(try PackageVersion(validating: "1.2.3.4").nextPatch()?.description, "1.2.3.5")
    }

    func testClientVersionsPadMissingParts() throws {
        XCTAssertEqual(try ClientVersion(validating: "10.2", field: "x"), try ClientVersion(validating: "10.2.0.0", field: "x"))
        XCTAssertTrue(try ClientVersion(validating: "10.2.3", field: "x") < ClientVersion(validating: "10.10", field: "x"))
        XCTAssertThrowsError(try ClientVersion(validating: "1.2.3.4.5", field: "x"))
        XCTAssertThrowsError(try ClientVersion(validating: "v1", field: "x"))
    }

    func testClientRangeRules() throws {
        XCTAssertThrowsError(try ClientRange.validate(android: false, androidMin: "", androidMax: "", ios: false, iosMin: "", iosMax: "")) {
            XCTAssertEqual(($0 as! FieldErrors).errors.first?.field, "platforms")
        }
        XCTAssertThrowsError(try ClientRange.validate(android: true, androidMin: "", androidMax: "", ios: false, iosMin: "", iosMax: "")) {
            XCTAssertEqual(($0 as! FieldErrors).errors.first?.field, "androidMin")
        }
        XCTAssertThrowsError(try ClientRange.validate(android: true, androidMin: "10.2", androidMax: "10.1", ios: false, iosMin: "", iosMax: "")) {
            XCTAssertEqual(($0 as! FieldErrors).errors.first?.field, "androidMax")
        }
        // Both platforms: maxima both blank or the same value.
        XCTAssertThrowsError(try ClientRange.validate(android: true, androidMin: "1", androidMax: "9", ios: true, iosMin: "1", iosMax: "")) {
            XCTAssertEqual(($0 as! FieldErrors).errors.first?.field, "iosMax")
        }
        let same = try ClientRange.validate(android: true, androidMin: "1", androidMax: "9.0", ios: true, iosMin: "2", iosMax: "9")
        XCTAssertEqual(same.android?.max, "9.0")
        XCTAssertTrue(same.admits(.ios, try ClientVersion(validating: "5", field: "")))
        XCTAssertFalse(same.admits(.ios, try ClientVersion(validating: "1.9", field: "")))
        XCTAssertFalse(same.admits(.android, try ClientVersion(validating: "9.0.1", field: "")))
        let open = try ClientRange.validate(android: true, androidMin: "1", androidMax: "", ios: false, iosMin: "", iosMax: "")
        XCTAssertTrue(open.admits(.android, try ClientVersion(validating: "999", field: "")))
        XCTAssertFalse(open.admits(.ios, try ClientVersion(validating: "999", field: "")))
    }

    func testDomainNames() throws {
        XCTAssertEqual(try DomainName.validate("h5app.example.com", field: "d"), "h5app.example.com")
        for bad in ["localhost", "https://a.com", "a.com:8080", "a.com/x", "a.com.", "-a.com", "a-.com", "A.com", "a..com",
                    String(repeating: "a", count: 64) + ".com", String(repeating: "abcdefgh.", count: 29) + "com"] {
            XCTAssertThrowsError(try DomainName.validate(bad, field: "d"), bad)
        }
        XCTAssertEqual(try AppKey.validate("53E5279071442_test"), "53E5279071442_test")
        for bad in ["53E5279071442", "_test", "a_b_c", "a b_c"] { XCTAssertThrowsError(try AppKey.validate(bad), bad) }
    }

    func testExtendedInfo() throws {
        XCTAssertEqual(try ExtendedInfo.validate(""), "{}")
        XCTAssertEqual(try ExtendedInfo.validate(#"{"asyncReqRate":"1800","x":2}"#), #"{"asyncReqRate":"1800","x":2}"#)
        XCTAssertNoThrow(try ExtendedInfo.validate(#"{"asyncReqRate":0}"#))
        for bad in [#"[1]"#, #"{"a":true}"#, #"{"a":{"b":1}}"#, #"{"a":null}"#, "not json", #"{"asyncReqRate":"86401"}"#,
                    #"{"asyncReqRate":1.5}"#, #"{"asyncReqRate":-1}"#, #"{"a":""# + String(repeating: "x", count: 4100) + #""}"#] {
            XCTAssertThrowsError(try ExtendedInfo.validate(bad), bad) { XCTAssertEqual(($0 as? FieldError)?.field, "extendInfo") }
        }
    }

    func testDraftReportsEveryProblemAtOnce() {
        var d = PackageDraft()
        d.version = "1.0"
        d.type = "weird"
        d.mainUrl = "www/index.html"
        d.extendInfo = "[]"
        d.downloadPolicy = "sometimes"
        XCTAssertThrowsError(try d.validate(for: AppFacts(fixedType: nil, highestVersion: nil))) { error in
            let fields = Set((error as! FieldErrors).errors.map(\.field))
            XCTAssertEqual(fields, ["version", "type", "platforms", "mainUrl", "extendInfo", "downloadPolicy"])
        }
    }

    func testDraftVersionMustGrowAndTypeIsFixed() throws {
        var d = PackageDraft()
        d.version = "1.0.0.1"
        d.type = "global"
        d.android = true
        d.androidMin = "1.0"
        let facts = AppFacts(fixedType: .normal, highestVersion: try PackageVersion(validating: "1.0.0.1"))
        XCTAssertThrowsError(try d.validate(for: facts)) { XCTAssertEqual(($0 as! FieldErrors)["version"]?.contains("greater than 1.0.0.1"), true) }
        d.version = "1.0.0.2"
        let s = try d.validate(for: facts)
        XCTAssertEqual(s.type, .normal, "the app's type wins over the form's")
        XCTAssertEqual(s.downloadPolicy, .wifi)
        XCTAssertNil(s.mainUrl)
    }
}

final class AccessAndVersionTests: XCTestCase {
    func testTheSuggestedNextVersionIsAlwaysHigherOrNone() {
        XCTAssertEqual(PackageVersion.suggestedNext(after: nil)?.description, "1.0.0.0")
        XCTAssertEqual(PackageVersion.suggestedNext(after: PackageVersion(parts: [1, 0, 0, 1]))?.description, "1.0.0.2")
        XCTAssertEqual(PackageVersion.suggestedNext(after: PackageVersion(parts: [1, 2, 3, 99999]))?.description, "1.2.4.0")
        XCTAssertEqual(PackageVersion.suggestedNext(after: PackageVersion(parts: [1, 99999, 99999, 99999]))?.description, "2.0.0.0")
        XCTAssertNil(PackageVersion.suggestedNext(after: PackageVersion(parts: [99999, 99999, 99999, 99999])))
    }

    func testRolesScopesAndActingUsers() throws {
        XCTAssertTrue(Role.admin.may(.editSigningKey))
        XCTAssertFalse(Role.developer.may(.editSettings))
        XCTAssertTrue(Role.developer.may(.uploadPackages))
        XCTAssertEqual(Role.reviewer.permissions, [.read, .approveReleases])
        XCTAssertFalse(Role.developer.may(.approveReleases), "developers ask, reviewers decide")
        XCTAssertEqual(TokenScope.parse("read, upload"), [.read, .upload])
        XCTAssertNil(TokenScope.parse("read,owner"))
        XCTAssertEqual(TokenScope.parse("read,admin"), [.read, .admin])
        XCTAssertEqual(Permission.editSettings.scope, .admin, "an upload token cannot change settings (issue 15)")
        XCTAssertEqual(Permission.editSigningKey.scope, .admin)
        XCTAssertEqual(Permission.uploadPackages.scope, .upload)
        XCTAssertNil(TokenScope.parse(""))
        let ci = ActingUser(name: "ci", role: .admin, scopes: [.read])
        XCTAssertThrowsError(try ci.require(.uploadPackages)) { XCTAssertTrue(($0 as? Refused)?.description.contains("upload scope") == true) }
        XCTAssertNoThrow(try ci.require(.read))
        XCTAssertThrowsError(try ActingUser(name: "r", role: .reviewer).require(.editApps))
    }
}
