import CourierArchive
import CourierCore
import CourierTestSupport
import Foundation
import XCTest

/// Replays the fuzz seeds and every crash a fuzz run has found (Fuzz/regressions/) through the
/// same code the fuzz targets call: a trap here kills the test run, so a fixed crash stays fixed.
final class FuzzCorpusTests: XCTestCase {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    func inputs(_ target: String) throws -> [(String, [UInt8])] {
        var found: [(String, [UInt8])] = []
        for folder in ["corpus", "regressions"] {
            let dir = "\(Self.fuzz)/\(folder)/\(target)"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where !name.hasPrefix(".") {
                found.append(("\(folder)/\(target)/\(name)", [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)")))))
            }
        }
        return found
    }

    func testZipInputsAreReadOrRefusedNeverATrap() throws {
        let all = try inputs("zip")
        XCTAssertGreaterThanOrEqual(all.count, hostileZips().count - 1, "the seed corpus holds the hostile catalogue")
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var accepted = 0
        for (name, bytes) in all {
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/in.zip"))
            do {
                let reader = try ZipReader(path: dir + "/in.zip")
                let files = try PackageLayout.contentFiles(of: reader.entries, appID: AppID(trusted: "20171228"), type: .normal,
                                                           global: nil, mainUrl: nil)
                _ = try AmrBuilder.build(from: reader, files: files, appID: "20171228", version: "1.0.0.1", signer: nil, to: dir + "/out.amr")
                accepted += 1
            } catch let e as FieldError {
                XCTAssertFalse(e.message.isEmpty, name)
            }
        }
        XCTAssertGreaterThanOrEqual(accepted, 1, "the sample package in the corpus is accepted")
    }

    struct Parts: MultipartSink {
        var names: [String] = []
        var bytes = 0
        mutating func begin(name: String, filename: String?) throws { names.append(name) }
        mutating func data(_ b: UnsafeRawBufferPointer) throws { bytes += b.count }
        mutating func end() throws {}
    }

    func testMultipartInputsParseTheSameWhateverTheChunking() throws {
        let all = try inputs("multipart")
        XCTAssertFalse(all.isEmpty)
        for (name, input) in all where !input.isEmpty {
            let body = Array(input.dropFirst())
            func parse(_ chunk: Int) -> Parts? {
                var parser = MultipartParser(boundary: "B")
                var sink = Parts()
                do {
                    var i = 0
                    while i < body.count {
                        let piece = Array(body[i..<min(body.count, i + chunk)])
                        try piece.withUnsafeBytes { try parser.feed($0, into: &sink) }
                        i += chunk
                    }
                    try parser.finish(into: &sink)
                    return sink
                } catch { return nil }
            }
            let whole = parse(max(1, body.count)), bytewise = parse(1)
            XCTAssertEqual(whole?.names, bytewise?.names, name)
            XCTAssertEqual(whole?.bytes, bytewise?.bytes, name)
        }
    }

    func testRuleInputsNeverTrapAndVersionsRoundTrip() throws {
        let all = try inputs("rules")
        XCTAssertFalse(all.isEmpty)
        for (name, bytes) in all {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init) {
                if let v = try? PackageVersion(validating: line) {
                    XCTAssertEqual(try? PackageVersion(validating: v.description), v, name)
                }
                _ = try? ClientVersion(validating: line, field: "v")
                _ = try? DomainName.validate(line, field: "d")
                _ = try? ExtendedInfo.validate(line)
                _ = try? MainURL.validate(line)
            }
        }
    }

    func testUpdateRequestsAreReadOrRefusedAndNeverAcceptNonJSON() throws {
        let all = try inputs("update")
        XCTAssertGreaterThanOrEqual(all.count, 5)
        var accepted = 0
        for (name, bytes) in all {
            do {
                let request = try bytes.withUnsafeBytes { try ClientRequest.parse($0) }
                XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]), name)
                XCTAssertLessThanOrEqual(request.installed.count, ClientRequest.maxApps, name)
                accepted += 1
            } catch let e as ClientRequestError {
                XCTAssertFalse(e.message.isEmpty, name)
            }
        }
        XCTAssertGreaterThanOrEqual(accepted, 5, "the real requests in the corpus are read")
    }

    func testTaskBodiesGiveAKindOrFieldErrors() throws {
        let all = try inputs("task")
        XCTAssertGreaterThanOrEqual(all.count, 5)
        var kinds = 0
        for (name, bytes) in all {
            guard let draft = try? TaskDraft(json: Data(bytes)) else { continue }
            var kind: ReleaseTask.Kind?
            do {
                kind = try draft.validate(now: Date(timeIntervalSince1970: 1_795_000_000), whitelists: [1, 2, 3])
                kinds += 1
            } catch {
                XCTAssertFalse(error.errors.isEmpty, name)
            }
            // Its ramp (issue 21): read back as written, or refused with words.
            do {
                if let plan = try draft.validateRamp(kind, now: Date(timeIntervalSince1970: 1_795_000_000)) {
                    XCTAssertEqual(try RampPlan.stored(plan.json), plan, name)
                }
            } catch {
                XCTAssertFalse(error.errors.isEmpty, name)
            }
            _ = try? RampPlan.parse(lines: String(decoding: bytes, as: UTF8.self))
        }
        XCTAssertGreaterThanOrEqual(kinds, 3, "the good seeds are accepted")
    }
}
