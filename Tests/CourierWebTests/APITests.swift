import CourierArchive
import CourierCore
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

final class APITests: XCTestCase {
    struct Caller: Sendable {
        let client: any TestClientProtocol
        let token: String
        func call(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil, type: String = "application/json") async throws -> TestResponse {
            var h: HTTPFields = [.authorization: "Bearer \(token)"]
            if json != nil { h[.contentType] = type }
            return try await client.execute(uri: uri, method: method, headers: h, body: json.map { ByteBuffer(string: $0) })
        }
        func upload(_ appId: String, _ fields: [(String, String)], file: [UInt8]?) async throws -> TestResponse {
            let (body, type) = multipart(fields, file: file.map { ("file", "p.zip", $0) })
            return try await client.execute(uri: "/api/v1/apps/\(appId)/packages", method: .post,
                                            headers: [.authorization: "Bearer \(token)", .contentType: type], body: body)
        }
    }

    func testTokensAuthenticateAndScopesLimit() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("ci")
        let actions = h.services.actions
        let reader = try await actions.createToken(by: .commandLine, userName: "ci", scopes: "read")
        let writer = try await actions.createToken(by: .commandLine, userName: "ci", scopes: "read,upload")
        await assertThrows(try await actions.createToken(by: .commandLine, userName: "ci", scopes: "owner")) { XCTAssertTrue($0 is FieldErrors, "\($0)") }
        await assertThrows(try await actions.createToken(by: .commandLine, userName: "nobody", scopes: "read")) { XCTAssertTrue($0 is NotFound) }
        let stored = try await h.store.tokenHashes()
        XCTAssertFalse(stored.contains(reader), "tokens are stored hashed")
        try await h.test { client in
            let none = try await client.execute(uri: "/api/v1/apps", method: .get)
            XCTAssertEqual(none.status, .unauthorized)
            XCTAssertNotNil((none.json["error"] as? [String: Any])?["message"])
            let bad = try await Caller(client: client, token: "cour_nope").call(.get, "/api/v1/apps")
            XCTAssertEqual(bad.status, .unauthorized)
            let r = Caller(client: client, token: reader)
            await assertEqual(try await r.call(.get, "/api/v1/apps").status, .ok)
            let refused = try await r.call(.post, "/api/v1/apps", json: #"{"id":"20171228","name":"Checkout"}"#)
            XCTAssertEqual(refused.status, .forbidden)
            XCTAssertTrue(((refused.json["error"] as? [String: Any])?["message"] as? String)?.contains("upload scope") == true)
            let w = Caller(client: client, token: writer)
            // A JSON body over what the endpoint reads: 413 in the API's error shape, not a 500.
            let huge = try await w.call(.post, "/api/v1/apps", json: #"{"id":"20171228","name":""# + String(repeating: "n", count: 70_000) + #""}"#)
            XCTAssertEqual(huge.status, .contentTooLarge)
            XCTAssertNotNil((huge.json["error"] as? [String: Any])?["message"])
            XCTAssertEqual(huge.headers[.xContentTypeOptions], "nosniff")
            await assertEqual(try await w.call(.post, "/api/v1/apps", json: #"{"id":"20171228","name":"Checkout"}"#).status, .created)
            // Console cookies do not open the API, and API tokens do not open the console.
            let console = try await client.execute(uri: "/apps", method: .get, headers: [.authorization: "Bearer \(writer)"])
            XCTAssertEqual(console.status, .seeOther)
        }
    }

    func testAppsSettingsAndPackagesThroughTheAPI() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        try await h.addUser("ci")
        let token = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read,upload,admin")
        let uploader = try await h.services.actions.createToken(by: .commandLine, userName: "ci", scopes: "read,upload")
        try await h.test { client in
            let api = Caller(client: client, token: token)
            // Issue 15, 3.6: an upload token (CI's) reaches neither settings nor the signing key.
            let ci = Caller(client: client, token: uploader)
            await assertEqual(try await ci.call(.put, "/api/v1/settings", json: #"{"virtualDomain":"h5app.example.com"}"#).status, .forbidden)
            await assertEqual(try await ci.call(.put, "/api/v1/settings", json: #"{"officialNeedsApproval":false}"#).status, .forbidden)
            await assertEqual(try await ci.call(.post, "/api/v1/settings/signing-key/generate").status, .forbidden)
            let invalid = try await api.call(.post, "/api/v1/apps", json: #"{"id":"66666612","name":"X"}"#)
            XCTAssertEqual(invalid.status, .unprocessableContent)
            let error = try XCTUnwrap(invalid.json["error"] as? [String: Any])
            XCTAssertEqual(error["field"] as? String, "id")
            XCTAssertTrue((error["message"] as? String)?.contains("reserved") == true)
            await assertEqual(try await api.call(.post, "/api/v1/apps", json: "not json").status, .badRequest)
            let created = try await api.call(.post, "/api/v1/apps", json: #"{"id":"20171228","name":"Checkout"}"#)
            XCTAssertEqual(created.json["id"] as? String, "20171228")
            XCTAssertTrue(created.json["type"] is NSNull, "type is sent as null before the first package (issue 15): \(created.text)")
            let listed = try await api.call(.get, "/api/v1/apps")
            XCTAssertTrue(listed.text.contains(#""type":null"#), listed.text)
            await assertEqual(try await api.call(.post, "/api/v1/apps", json: #"{"id":"20171228","name":"Again"}"#).status, .conflict)

            // Packages need the virtual domain first: 409, as in the console.
            let early = try await api.upload("20171228", packageFields(), file: samplePackage().bytes())
            XCTAssertEqual(early.status, .conflict)
            XCTAssertEqual((early.json["error"] as? [String: Any])?["field"] as? String, "virtualDomain")

            let settings = try await api.call(.put, "/api/v1/settings", json: #"{"virtualDomain":"h5app.example.com","globalHost":"mcube.example.com","appKey":"53E5279071442_test"}"#)
            XCTAssertEqual(settings.status, .ok)
            XCTAssertEqual(settings.json["virtualDomain"] as? String, "h5app.example.com")
            let change = try await api.call(.put, "/api/v1/settings", json: #"{"virtualDomain":"other.example.com"}"#)
            XCTAssertEqual(change.status, .conflict)
            let badDomain = try await api.call(.put, "/api/v1/settings", json: #"{"virtualDomain":"NOT A DOMAIN"}"#)
            XCTAssertEqual((badDomain.json["error"] as? [String: Any])?["field"] as? String, "virtualDomain")

            let key = try SigningKey.generate()
            let installed = try await api.call(.put, "/api/v1/settings/signing-key", json: key.privateKeyPEM, type: "application/x-pem-file")
            XCTAssertEqual(installed.json["fingerprint"] as? String, key.fingerprint)
            let pub = try await client.execute(uri: "/api/v1/settings/public-key", method: .get)
            XCTAssertEqual(pub.text, key.publicKeyPEM)

            // The API's fields: a platform is chosen by sending its minimum.
            let fields: [(String, String)] = [("version", "1.0.0.1"), ("type", "normal"), ("iosMin", "9.0"), ("mainUrl", "/www/index.html")]
            let up = try await api.upload("20171228", fields, file: samplePackage().bytes())
            XCTAssertEqual(up.status, .created, up.text)
            XCTAssertEqual(up.json["version"] as? String, "1.0.0.1")
            XCTAssertEqual(up.json["status"] as? String, "toBeReleased")
            XCTAssertEqual(up.json["files"] as? Int, 4)
            XCTAssertEqual(up.json["iosMin"] as? String, "9.0")
            XCTAssertNil(up.json["androidMin"] as? String)
            XCTAssertEqual(up.json["amrUrl"] as? String, "http://courier.test/packages/20171228/1.0.0.1.amr")
            XCTAssertEqual((up.json["sha256"] as? String)?.count, 64)

            let wrong = try await api.upload("20171228", [("version", "1.0.0.1"), ("type", "global")], file: samplePackage().bytes())
            XCTAssertEqual(wrong.status, .unprocessableContent)
            let all = ((wrong.json["error"] as? [String: Any])?["errors"] as? [[String: String]])?.compactMap { $0["field"] } ?? []
            XCTAssertTrue(all.contains("version") && all.contains("platforms"), "\(wrong.text)")

            let app = try await api.call(.get, "/api/v1/apps/20171228")
            XCTAssertEqual(app.json["type"] as? String, "normal")
            XCTAssertEqual((app.json["packages"] as? [[String: Any]])?.first?["version"] as? String, "1.0.0.1")
            await assertEqual(try await api.call(.get, "/api/v1/apps/12345678").status, .notFound)
            let list = try await api.call(.get, "/api/v1/apps?q=Check")
            XCTAssertEqual(list.json["total"] as? Int, 1)
        }
    }
}
