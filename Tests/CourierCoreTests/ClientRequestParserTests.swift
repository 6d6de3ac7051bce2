import Foundation
import XCTest
@testable import CourierCore

/// The update request's own JSON reader: what it keeps, what it refuses, and that it accepts
/// exactly the JSON a general parser accepts.
final class ClientRequestParserTests: XCTestCase {
    func parse(_ text: String) throws -> ClientRequest {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { try ClientRequest.parse($0) }
    }

    func message(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return (error as? ClientRequestError)?.message ?? "\(error)" }
    }

    func testAFullRequest() throws {
        let r = try parse(#"""
            { "platform" : "Android", "clientVersion":"10.2.3", "deviceId":"d\u002d1", "userId":"\u00e9l\u00e8ve\ud83d\ude00",
              "model":"Pixel \"8\"", "osVersion":"14", "network":"WIFI", "city":"Hangzhou\n",
              "apps":[{"id":"20171228","version":"1.0.0.1"},{"id":"20171229","version":"0"},{"version":null,"id":"20171230"},
                      {"id":"20171231","version":""},{"id":"20171232","extra":[{"deep":[1,-2.5e-3,true,false,null]}]}],
              "all":true, "future":{"a":[{}, [], "", 0]} }
            """#)
        XCTAssertEqual(r.platform, .android)
        XCTAssertEqual(r.clientVersion.description, "10.2.3")
        XCTAssertEqual(r.deviceId, "d-1")
        XCTAssertEqual(r.userId, "élève😀")
        XCTAssertEqual(r.model, #"Pixel "8""#)
        XCTAssertEqual(r.city, "Hangzhou\n")
        XCTAssertEqual(r.installed.count, 5)
        XCTAssertEqual(r.installed["20171228"], .some(PackageVersion(parts: [1, 0, 0, 1])))
        for id in ["20171229", "20171230", "20171231", "20171232"] { XCTAssertEqual(r.installed[id], .some(nil), id) }
        XCTAssertTrue(r.all)
    }

    func testEachWrongFieldIsNamed() {
        XCTAssertEqual(message("not json"), "The body must be a JSON object.")
        XCTAssertEqual(message("[]"), "The body must be a JSON object.")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1"} x"#), "The body must be a JSON object.")
        XCTAssertEqual(message("{}"), "platform is required.")
        XCTAssertEqual(message(#"{"platform":"android"}"#), "clientVersion is required.")
        XCTAssertEqual(message(#"{"platform":"windows","clientVersion":"1"}"#), "platform must be android or ios.")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":10}"#), "clientVersion must be a string of at most 256 bytes.")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"x.y"}"#), "clientVersion must be 1 to 4 numbers separated by dots, like 10.2.3.")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","userId":"\#(String(repeating: "u", count: 257))"}"#),
                       "userId must be a string of at most 256 bytes.")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","apps":{}}"#), #"apps must be a list of {"id","version"}."#)
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","apps":[{"id":"123"}]}"#), #"Each app is {"id": "8 digits", "version": "1.0.0.1"}."#)
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","apps":[{"id":"20171228","version":"1.0"}]}"#),
                       #"The version of app 20171228 must be four numbers, like 1.0.0.1, or "0" for none."#)
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","apps":[{"id":"20171228","version":1}]}"#),
                       "The version of app 20171228 must be a string.")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","all":"yes"}"#), "all must be true or false.")
        let many = (0..<501).map { #"{"id":"\#(10_000_000 + $0)","version":"0"}"# }.joined(separator: ",")
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","apps":[\#(many)]}"#), "apps lists at most 500 apps.")
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertEqual(message(#"{"platform":"android","clientVersion":"1","x":\#(deep)}"#), "The body nests too deeply.")
    }

    func testInvalidUTF8IsRefused() {
        var bytes = Array(#"{"platform":"android","clientVersion":"1","userId":"a"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try ClientRequest.parse($0) })
        bytes = Array(#"{"platform":"android","clientVersion":"1","userId":"a"#.utf8) + [0xE9] + Array(#""}"#.utf8)
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try ClientRequest.parse($0) })
    }

    /// Accepts a document exactly when Foundation's JSON parser does (the fields being right),
    /// except that trailing commas, which Foundation lets through, are refused as RFC 8259 says.
    func testAcceptsExactlyWhatAGeneralParserAccepts() throws {
        let valid = #"{"platform":"ios","clientVersion":"1","x":VALUE}"#
        let values = ["0", "-0", "1.5", "1e5", "1E+5", "-1.25e-3", "01", "1.", ".5", "+1", "1e", "--1", "0x10", "NaN", "Infinity",
                      "true", "false", "null", "tru", "nul", "True", #""""#, #""\u00e9""#, #""\ud83d\ude00""#, #""\ud83d""#, #""\ude00x""#,
                      #""\x""#, #""\u12""#, #""\uZZZZ""#, "\"a\tb\"", "\"a\u{1}b\"", #""a\/b""#, "[]", "[1,]", "[,1]", "[1 2]", "{}",
                      #"{"a":1,}"#, #"{"a"}"#, #"{"a":}"#, #"{1:2}"#, #"{"a":1 "b":2}"#, "[[[[[]]]]]", "[", "]", "{", "\"", ""]
        for v in values {
            let doc = valid.replacingOccurrences(of: "VALUE", with: v)
            let trailingComma = ["[1,]", #"{"a":1,}"#].contains(v)
            let general = !trailingComma && (try? JSONSerialization.jsonObject(with: Data(doc.utf8), options: [.fragmentsAllowed])) != nil
            let ours = (try? parse(doc)) != nil
            XCTAssertEqual(ours, general, "\(doc): ours \(ours), Foundation \(general)")
        }
    }
}
