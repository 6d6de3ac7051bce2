import CourierArchive
import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

final class PackageTests: XCTestCase {
    func testUploadBuildsServesAndListsThePackage() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            let form = try await b.get("/apps/20171228/packages/new")
            XCTAssertTrue(form.text.contains("https://20171228.h5app.example.com"), "virtual domain shown read-only")
            let zip = samplePackage()
            let r = try await b.upload("/apps/20171228/packages", packageFields(), file: zip.bytes())
            XCTAssertEqual(r.status, .seeOther, r.text)
            XCTAssertEqual(r.headers[.location]?.split(separator: "?").first.map(String.init), "/apps/20171228/packages/1.0.0.1")

            let p = try await unwrap(try await h.store.package("20171228", "1.0.0.1"))
            XCTAssertEqual(p.fileCount, 4)
            XCTAssertEqual(p.type, .normal)
            await assertEqual(try await h.store.app("20171228")?.type, .normal, "the first package fixes the type")
            XCTAssertEqual(p.extendInfo, #"{"asyncReqRate":"1800"}"#)

            let page = try await b.get("/apps/20171228/packages/1.0.0.1").text
            for s in ["www/index.html", "www/img/logo.png", "Download .amr", "h5_json.json", "http://courier.test/fallback/20171228/1.0.0.1/", "To be released", "Yes (CERT.json, SIGN.json)"] {
                XCTAssertTrue(page.contains(s), s)
            }
            let app = try await b.get("/apps/20171228").text
            XCTAssertTrue(app.contains("1.0.0.1") && app.contains("To be released"))
            await assertTrue(try await b.get("/apps").text.contains("1.0.0.1"))

            // .amr: ETag, conditional GET, ranges, immutable caching; no login needed.
            let amr = try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get)
            XCTAssertEqual(amr.status, .ok)
            XCTAssertEqual(Int64(amr.body.readableBytes), p.size)
            XCTAssertEqual(amr.headers[.eTag], "\"\(p.blob)\"")
            XCTAssertTrue(amr.headers[.cacheControl]?.contains("immutable") == true)
            let again = try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get, headers: [.ifNoneMatch: "\"\(p.blob)\""])
            XCTAssertEqual(again.status, .notModified)
            let head = try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .head)
            XCTAssertEqual(head.status, .ok)
            XCTAssertEqual(head.headers[.contentLength], String(p.size))
            XCTAssertEqual(head.body.readableBytes, 0)
            let part = try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get, headers: [.range: "bytes=0-3"])
            XCTAssertEqual(part.status, .partialContent)
            XCTAssertEqual(Array(part.body.readableBytesView), [0x50, 0x4B, 0x03, 0x04])
            XCTAssertEqual(part.headers[.contentRange], "bytes 0-3/\(p.size)")
            let tail = try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get, headers: [.range: "bytes=-22"])
            XCTAssertEqual(Array(tail.body.readableBytesView.prefix(4)), [0x50, 0x4B, 0x05, 0x06])
            await assertEqual(try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get, headers: [.range: "bytes=999999-"]).status, .rangeNotSatisfiable)
            // Several ranges, another unit or nonsense: ignored, the whole file (HTTP allows it).
            for ignored in ["bytes=0-1,4-5", "items=0-3", "bytes=abc", "bytes=-", "bytes=5-2"] {
                let whole = try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get, headers: [.range: ignored])
                XCTAssertEqual(whole.status, .ok, ignored)
                XCTAssertEqual(Int64(whole.body.readableBytes), p.size, ignored)
            }
            await assertEqual(try await client.execute(uri: "/packages/20171228/9.9.9.9.amr", method: .get).status, .notFound)

            // Fallback files come from the stored tar with their own type.
            for e in zip.entries where !e.name.hasSuffix("/") {
                let path = String(e.name.dropFirst(9))
                let f = try await client.execute(uri: "/fallback/20171228/1.0.0.1/\(path)", method: .get)
                XCTAssertEqual(f.status, .ok, path)
                XCTAssertEqual(Array(f.body.readableBytesView), e.data, path)
            }
            let html = try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/index.html", method: .get)
            XCTAssertEqual(html.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertEqual(html.headers[.contentSecurityPolicy], "sandbox allow-scripts allow-forms allow-popups",
                           "on the console's origin package pages run sandboxed, never as the console")
            XCTAssertEqual(html.headers[.xContentTypeOptions], "nosniff")
            await assertEqual(try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/app.js", method: .get).headers[.contentType], "text/javascript; charset=utf-8")
            await assertTrue(try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/app.js", method: .get).headers[.cacheControl]?.contains("immutable") == true)
            await assertEqual(try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/nope.js", method: .get).status, .notFound)
            let escape = try await client.execute(uri: "/fallback/20171228/1.0.0.1/../../courier.sqlite", method: .get)
            XCTAssertTrue([.notFound, .badRequest].contains(escape.status))
            XCTAssertFalse(escape.text.contains("SQLite"))

            // The preset file in the client SDK's h5_json.json shape.
            let preset = try await b.get("/apps/20171228/packages/1.0.0.1/h5_json.json")
            let data = try XCTUnwrap(preset.json["data"] as? [[String: Any]]).first!
            XCTAssertEqual(data["app_id"] as? String, "20171228")
            XCTAssertEqual(data["version"] as? String, "1.0.0.1")
            XCTAssertEqual(data["package_url"] as? String, "http://courier.test/packages/20171228/1.0.0.1.amr")
            XCTAssertEqual(data["vhost"] as? String, "https://20171228.h5app.example.com")
            XCTAssertEqual(data["main_url"] as? String, "/www/index.html")
            XCTAssertEqual(data["auto_install"] as? Bool, true)
            XCTAssertEqual(data["install_type"] as? String, "preload")
            XCTAssertEqual((data["extend_info"] as? [String: String])?["asyncReqRate"], "1800")
            XCTAssertEqual(data["package_md5"] as? String, p.md5)
            XCTAssertEqual((preset.json["config"] as? [String: Int])?["updateReqRate"], 1800)
            // Nothing is officially released yet, so the public preset is empty.
            let released = try await client.execute(uri: "/client/v1/preset/20171228.json", method: .get)
            XCTAssertEqual((released.json["data"] as? [Any])?.count, 0)
            await assertEqual(try await client.execute(uri: "/client/v1/preset/99999999.json", method: .get).status, .notFound)

            // The next package: version must grow, the type stays fixed.
            let same = try await b.upload("/apps/20171228/packages", packageFields(), file: zip.bytes())
            XCTAssertEqual(same.status, .unprocessableContent)
            XCTAssertTrue(same.text.contains(#"id="error-version""#) && same.text.contains("greater than 1.0.0.1"))
            let next = try await b.get("/apps/20171228/packages/new").text
            XCTAssertTrue(next.contains(#"id="fixed-type">normal"#))
            XCTAssertTrue(next.contains(#"value="1.0.0.2""#), "the next version is suggested")
            XCTAssertEqual(h.tempCount, 0)
        }
    }

    /// A package whose pages try to act as the signed-in admin, as the security review wrote it.
    static func attackingPackage() -> ZipBuilder {
        ZipBuilder([
            .init("20171228/www/index.html", "<script>fetch('/settings').then(r => r.text()).then(t => document.title = t)</script>"),
            .init("20171228/www/logo.svg", #"<svg xmlns="http://www.w3.org/2000/svg" onload="fetch('/settings')"/>"#),
        ])
    }

    func testPackageContentIsSandboxedOnTheConsolesOrigin() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            await assertEqual(try await b.upload("/apps/20171228/packages", packageFields(extra: [("mainUrl", "")]),
                                                 file: Self.attackingPackage().bytes()).status, .seeOther)
            for (path, type) in [("www/index.html", "text/html; charset=utf-8"), ("www/logo.svg", "image/svg+xml")] {
                for method in [HTTPRequest.Method.get, .head] {
                    let r = try await b.get("/fallback/20171228/1.0.0.1/\(path)", headers: [:], method: method)
                    XCTAssertEqual(r.status, .ok, path)
                    XCTAssertEqual(r.headers[.contentType], type)
                    let csp = r.headers[.contentSecurityPolicy] ?? ""
                    XCTAssertTrue(csp.hasPrefix("sandbox"), path)
                    XCTAssertFalse(csp.contains("allow-same-origin"), "an opaque origin, never the console's")
                    XCTAssertEqual(r.headers[.xContentTypeOptions], "nosniff")
                    XCTAssertEqual(r.headers[.cacheControl], "no-cache", "documents are revalidated, so a cached copy gets today's headers")
                }
                let etag = try await b.get("/fallback/20171228/1.0.0.1/\(path)").headers[.eTag] ?? ""
                let notModified = try await b.get("/fallback/20171228/1.0.0.1/\(path)", headers: [.ifNoneMatch: etag])
                XCTAssertEqual(notModified.status, .notModified)
                XCTAssertTrue(notModified.headers[.contentSecurityPolicy]?.hasPrefix("sandbox") == true, "a 304 refreshes the stored headers too")
            }
            let settings = try await b.get("/settings").text
            XCTAssertTrue(settings.contains("Shared origin, sandboxed."), "the configuration page says which mode is in force")
        }
    }

    func testASeparateContentHostKeepsConsoleAndContentApart() async throws {
        // The test client always asks for host "localhost": first as the console host...
        let console = try await Harness.make(publicURL: "http://cdn.courier.test", consoleURL: "http://localhost:8080")
        defer { console.cleanUp() }
        try await console.test { client in
            let b = try await console.ready(client)
            await assertEqual(try await b.upload("/apps/20171228/packages", packageFields(), file: samplePackage().bytes()).status, .seeOther)
            let page = try await b.get("/apps/20171228/packages/1.0.0.1").text
            XCTAssertTrue(page.contains(#"href="http://cdn.courier.test/fallback/20171228/1.0.0.1/www/index.html""#),
                          "links to package content go to the content host")
            XCTAssertTrue(page.contains(#"href="http://cdn.courier.test/packages/20171228/1.0.0.1.amr""#))
            await assertTrue(try await b.get("/apps/20171228").text.contains(#"href="http://cdn.courier.test/packages/20171228/1.0.0.1.amr""#))
            await assertTrue(try await b.get("/settings").text.contains("Separate hosts."))
            await assertEqual(try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/index.html", method: .get).status, .notFound)
            await assertEqual(try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get).status, .notFound)
        }
        // ...then, with the same data, as the content host.
        let content = try await Harness.make(dir: console.dir, publicURL: "http://localhost:8080", consoleURL: "http://console.courier.test")
        try await content.test { client in
            let html = try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/index.html", method: .get)
            XCTAssertEqual(html.status, .ok)
            XCTAssertNil(html.headers[.contentSecurityPolicy], "on its own host package content runs unsandboxed")
            await assertEqual(try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get).status, .ok)
            let login = try await client.execute(uri: "/login", method: .get)
            XCTAssertEqual(login.status, .notFound, "the console does not answer on the content host")
            XCTAssertFalse(login.text.contains("password"))
            let api = try await client.execute(uri: "/api/v1/apps", method: .get)
            XCTAssertEqual(api.status, .notFound)
            XCTAssertNotNil(api.json["error"], "the API still answers in JSON")
        }
    }

    func testRefusedUploadsExplainAndLeaveNothingBehind() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            func refused(_ zip: ZipBuilder, _ fields: [(String, String)] = packageFields(), field: String, contains: String,
                         line: UInt = #line) async throws {
                let r = try await b.upload("/apps/20171228/packages", fields, file: zip.bytes())
                XCTAssertEqual(r.status, .unprocessableContent, line: line)
                XCTAssertTrue(r.text.contains(#"id="error-\#(field)""#), "no error next to \(field)", line: line)
                XCTAssertTrue(r.text.contains(contains), "missing “\(contains)”", line: line)
                XCTAssertTrue(r.text.contains(#"value="10.0""#), "typed values are kept", line: line)
                await assertEqual(try await h.store.packages(of: "20171228").count, 0, line: line)
                XCTAssertEqual(h.blobCount, 0, line: line)
                XCTAssertEqual(h.tempCount, 0, line: line)
            }
            try await refused(ZipBuilder([.init("20171228/../evil.js", "x")]), field: "file", contains: "20171228/../evil.js")
            var link = ZipBuilder.Entry("20171228/www/l", "/etc/passwd")
            link.unixMode = 0o120777
            try await refused(ZipBuilder([link]), field: "file", contains: "symbolic link")
            try await refused(ZipBuilder([.init("20180101/www/index.html", "x")]), field: "file", contains: "different app ID")
            try await refused(ZipBuilder([.init("20171228/www/zeros", [UInt8](repeating: 0, count: 4 << 20))]), field: "file", contains: "zip bomb")
            try await refused(samplePackage(), packageFields(extra: [("mainUrl", "/www/missing.html")]), field: "mainUrl", contains: "not in the zip")
            try await refused(samplePackage(), packageFields(extra: [("extendInfo", #"{"asyncReqRate":"99999"}"#)]), field: "extendInfo", contains: "86400")
            try await refused(samplePackage(), packageFields(extra: [("ios", "true"), ("iosMin", "1.0"), ("iosMax", "3.0")]), field: "iosMax", contains: "both be blank or both the same value")
            let nonZip = try await b.upload("/apps/20171228/packages", packageFields(), file: Array("<html>".utf8))
            XCTAssertTrue(nonZip.text.contains("not a zip archive"))

            // No confirmation: every field problem is reported with it, and nothing is built.
            let unconfirmed = try await b.upload("/apps/20171228/packages",
                                                 packageFields(version: "1.0").filter { $0.0 != "confirm" }, file: samplePackage().bytes())
            XCTAssertTrue(unconfirmed.text.contains(#"id="error-confirm""#) && unconfirmed.text.contains(#"id="error-version""#))
            // Stray extra files are not kept, whatever the outcome.
            let (body, type) = multipart(packageFields(version: "2.0.0.1"), files: [("file", "p.zip", samplePackage().bytes()), ("other", "x.bin", [1, 2, 3])])
            let stray = try await b.client.execute(uri: "/apps/20171228/packages?csrf=\(b.csrf)", method: .post,
                                                   headers: [.cookie: b.cookie, .contentType: type], body: body)
            XCTAssertEqual(stray.status, .seeOther)
            XCTAssertEqual(h.tempCount, 0)
            let noFile = try await b.upload("/apps/20171228/packages", packageFields(), file: nil)
            XCTAssertTrue(noFile.text.contains(#"id="error-file""#) && noFile.text.contains("Choose the offline package"))
            XCTAssertEqual(h.tempCount, 0)
        }
    }

    func testUploadsOverTheLimitAreCutOffWhileStreaming() async throws {
        let h = try await Harness.make(maxUploadBytes: 200_000)
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client, key: false)
            let noise = (0..<400_000).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761) >> 13) }
            let big = try await b.upload("/apps/20171228/packages", packageFields(),
                                         file: ZipBuilder([.init("20171228/www/noise.bin", noise, method: 0)]).bytes())
            XCTAssertEqual(big.status, .contentTooLarge)
            XCTAssertTrue(big.text.contains("larger than 200 KB"), big.text)
            XCTAssertEqual(h.tempCount, 0)
            await assertEqual(try await h.store.packages(of: "20171228").count, 0)
        }
    }

    func testEveryHostileZipUploadGetsA4xxAndLeavesNothing() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            for (name, bytes, says) in hostileZips() {
                let r = try await b.upload("/apps/20171228/packages", packageFields(extra: [("mainUrl", "")]), file: bytes)
                XCTAssertEqual(r.status, .unprocessableContent, name)
                let error = r.text.components(separatedBy: #"id="error-file">"#).dropFirst().first?.components(separatedBy: "</p>").first ?? ""
                XCTAssertTrue(error.contains(says), "\(name): \(error)")
                await assertEqual(try await h.store.packages(of: "20171228").count, 0, name)
                XCTAssertEqual(h.blobCount, 0, name)
                XCTAssertEqual(h.tempCount, 0, name)
            }
        }
    }

    func testUploadsWaitForTheVirtualDomain() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("alice")
        try await h.test { client in
            let b = try await Browser.signIn(client, "alice")
            await assertEqual(try await b.post("/apps", [("id", "20171228"), ("name", "Checkout")]).status, .seeOther)
            await assertTrue(try await b.get("/apps/20171228").text.contains("cannot be added until the virtual domain is set"))
            await assertEqual(try await b.get("/apps/20171228/packages/new").status, .conflict)
            let r = try await b.upload("/apps/20171228/packages", packageFields(), file: samplePackage().bytes())
            XCTAssertEqual(r.status, .conflict)
            XCTAssertTrue(r.text.contains("Set the virtual domain on the configuration page"))
            await assertNil(try await h.store.package("20171228", "1.0.0.1"))
        }
    }

    func testReplacingTheKeyResignsEveryPackage() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            await assertEqual(try await b.upload("/apps/20171228/packages", packageFields(), file: samplePackage().bytes()).status, .seeOther)
            let before = try await unwrap(try await h.store.package("20171228", "1.0.0.1"))
            let oldCert = try h.cert(before)
            let key = try SigningKey.generate()
            let r = try await b.post("/settings/signing-key", [("privateKey", key.privateKeyPEM), ("confirmReplace", "true"),
                                                                 ("currentPassword", "correct-horse")])
            XCTAssertEqual(r.headers[.location], "/settings?saved=key-resigned")
            let after = try await unwrap(try await h.store.package("20171228", "1.0.0.1"))
            XCTAssertNotEqual(before.blob, after.blob)
            XCTAssertNotEqual(oldCert, try h.cert(after))
            XCTAssertFalse(FileManager.default.fileExists(atPath: h.store.blobs.path(for: before.blob)), "the old blob is gone")
            XCTAssertEqual(h.blobCount, 1)
            await assertEqual(try await h.store.settings().signingKeyFingerprint, key.fingerprint)
            // Fallback still reads the right bytes from the new blob.
            let f = try await client.execute(uri: "/fallback/20171228/1.0.0.1/www/css/site.css", method: .get)
            XCTAssertEqual(f.text, "body { color: #333 }\n")
        }
    }

    func testDoubleSubmitCreatesOnePackageAndKeepsItsBlob() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            let b = try await h.ready(client)
            let bytes = samplePackage().bytes()
            async let first = b.upload("/apps/20171228/packages", packageFields(), file: bytes)
            async let second = b.upload("/apps/20171228/packages", packageFields(), file: bytes)
            let statuses = try await [first.status, second.status].map(\.code).sorted()
            XCTAssertEqual(statuses, [303, 422])
            let p = try await unwrap(try await h.store.package("20171228", "1.0.0.1"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: h.store.blobs.path(for: p.blob)))
            await assertEqual(try await client.execute(uri: "/packages/20171228/1.0.0.1.amr", method: .get).status, .ok)
            XCTAssertEqual(h.blobCount, 1)
            XCTAssertEqual(h.tempCount, 0)
        }
    }

    func testTheFirstPackagesTypeHoldsEvenForARacingUpload() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            _ = try await h.ready(client, key: false)
            // Both were validated while the app had no type; the second to commit loses.
            for (version, type) in [("1.0.0.1", PackageType.normal), ("1.0.0.2", .global)] {
                let temp = h.store.blobs.temporaryPath(suffix: ".amr")
                FileManager.default.createFile(atPath: temp, contents: Data("amr".utf8))
                do {
                    _ = try await h.store.commitPackage(amrAt: temp, packageRecord(version, type, blob: String(repeating: "ef", count: 32)), files: [],
                                                  signedWith: nil, by: .alice)
                    XCTAssertEqual(type, .normal)
                } catch let e as FieldError {
                    XCTAssertEqual(e.field, "type")
                    XCTAssertEqual(type, .global)
                }
                unlink(temp)
            }
            await assertEqual(try await h.store.packages(of: "20171228").map(\.version), ["1.0.0.1"])
        }
    }

    func testAPackageSignedWithAReplacedKeyIsNotStored() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.test { client in
            _ = try await h.ready(client)     // installs a key
            let temp = h.store.blobs.temporaryPath(suffix: ".amr")
            FileManager.default.createFile(atPath: temp, contents: Data("amr".utf8))
            let record = try packageRecord("1.0.0.1", blob: String(repeating: "cd", count: 32))
            await assertThrows(try await h.store.commitPackage(amrAt: temp, record, files: [], signedWith: "AA:BB", by: .alice)) {
                XCTAssertTrue(($0 as? FieldError)?.message.contains("signing key was replaced") == true, "\($0)")
            }
            await assertNil(try await h.store.package("20171228", "1.0.0.1"))
            XCTAssertEqual(h.blobCount, 0)
            unlink(temp)
        }
    }

    func testStartUpSweepsWhatAnInterruptedUploadLeft() async throws {
        let dir = temporaryDirectory()
        let h = try await Harness.make(dir: dir)
        defer { h.cleanUp() }
        FileManager.default.createFile(atPath: h.store.blobs.temporaryPath(suffix: ".upload"), contents: Data(count: 1000))
        let orphan = String(repeating: "ab", count: 32)
        try FileManager.default.createDirectory(atPath: dir + "/blobs/ab", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: h.store.blobs.path(for: orphan), contents: Data(count: 10))
        _ = try await Harness.make(dir: dir)    // a restart
        XCTAssertEqual(h.tempCount, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.store.blobs.path(for: orphan)))
    }

    func testMultipartParserHandlesBoundariesSplitAcrossChunks() async throws {
        let content = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 251) } + Array("\r\n--notquite".utf8)
        let (body, type) = multipart([("a", "1"), ("b", "two words")], file: ("file", "x.zip", content))
        let boundary = try XCTUnwrap(MultipartReader.boundary(of: type))
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for chunkSize in [1, 7, 70, 4096] {
            var chunks: [ByteBuffer] = []
            var copy = body
            while let slice = copy.readSlice(length: min(chunkSize, copy.readableBytes)), slice.readableBytes > 0 { chunks.append(slice) }
            let form = try await MultipartReader(maxTotal: 1 << 20, tempPath: { dir + "/" + UUID().uuidString }).read(Chunks(chunks), boundary: boundary)
            XCTAssertEqual(form.fields["a"], "1")
            XCTAssertEqual(form.fields["b"], "two words")
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: try XCTUnwrap(form.file("file")).path))), content, "chunk \(chunkSize)")
            form.discard()
        }
        // Truncated and oversized bodies are refused and leave no temp file.
        var cut = body
        let truncated = try XCTUnwrap(cut.readSlice(length: body.readableBytes - 30))
        do {
            _ = try await MultipartReader(maxTotal: 1 << 20, tempPath: { dir + "/" + UUID().uuidString }).read(Chunks([truncated]), boundary: boundary)
            XCTFail("accepted a truncated body")
        } catch {}
        do {
            _ = try await MultipartReader(maxTotal: 50_000, tempPath: { dir + "/" + UUID().uuidString }).read(Chunks([body]), boundary: boundary)
            XCTFail("accepted an oversized body")
        } catch is UploadTooLarge {}
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, 0)
    }

    func testMultipartPaddingIsBoundedAndTheEpilogueIgnored() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reader = MultipartReader(maxTotal: 64 << 20, tempPath: { dir + "/" + UUID().uuidString })
        // The review's request: a boundary followed by 16 MiB of CR. Refused after a few hundred bytes.
        let flood = (0..<512).map { _ in ByteBuffer(bytes: [UInt8](repeating: 0x0D, count: 32 << 10)) }
        do {
            _ = try await reader.read(Chunks([ByteBuffer(string: "--B")] + flood), boundary: "B")
            XCTFail("accepted 16 MiB of padding")
        } catch let e as FieldError {
            XCTAssertTrue(e.message.contains("not followed by a line break"), e.message)
        }
        // Padding within the limit is still accepted, as RFC 2046 allows.
        let padded = try await reader.read(Chunks([ByteBuffer(string: "--B  \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--")]),
                                           boundary: "B")
        XCTAssertEqual(padded.fields["a"], "1")
        // Whatever follows the closing boundary is dropped as it arrives.
        let withEpilogue = try await reader.read(Chunks([ByteBuffer(string: "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--\r\n")] + flood),
                                                 boundary: "B")
        XCTAssertEqual(withEpilogue.fields["a"], "1")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, 0)
    }
}

struct Chunks: AsyncSequence {
    typealias Element = ByteBuffer
    let chunks: [ByteBuffer]
    init(_ c: [ByteBuffer]) { chunks = c }
    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<ByteBuffer>
        mutating func next() async throws -> ByteBuffer? { rest.popFirst() }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: chunks[...]) }
}
