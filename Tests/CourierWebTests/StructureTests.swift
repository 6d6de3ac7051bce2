import CourierDomain
import CourierArchive
import CourierCore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierSQLite
import CourierStore
@testable import CourierWeb

/// The shape the next features build on: every route declares its permission and the route
/// table is what is enforced; every change is one audited write; links come from routes.
final class StructureTests: XCTestCase {
    /// A running console with one user per role, the virtual domain set and one package.
    func populated() async throws -> Harness {
        let h = try await Harness.make()
        for role in Role.allCases { try await h.addUser(role.rawValue, role: role) }
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.setGlobalLocation(host: "mcube.example.com", appKey: "53E5279071442_test", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        let zip = h.store.blobs.temporaryPath(suffix: ".zip")
        try samplePackage().write(to: zip)
        var draft = PackageDraft(fields: FormFields(Dictionary(uniqueKeysWithValues: packageFields())))
        draft.version = "1.0.0.1"
        _ = try await h.services.actions.addPackage(by: .commandLine, appId: "20171228", draft: draft, zipPath: zip)
        return h
    }

    /// A request that the route accepts when allowed: fresh names and versions each time.
    final class Samples: @unchecked Sendable {
        var counter = 0
        let pem = try! SigningKey.generate().privateKeyPEM

        func next() -> Int { counter += 1; return counter }

        func consoleFields(_ route: Route) -> [(String, String)] {
            let replace = [("confirmReplace", "true"), ("currentPassword", "correct-horse")]
            switch route {
            case .apps: return [("id", String(40_000_000 + next())), ("name", "Sample")]
            case .signingKey: return [("privateKey", pem)] + replace
            case .generateKey: return replace
            case .batchRelease: return [("apps", "20171228"), ("type", "official")]
            case .appName: return [("name", "Renamed \(next())")]
            case .tokens: return [("name", "token \(next())"), ("scope-read", "true")]
            case .users: return [("name", "user-\(next())"), ("role", "developer"), ("password", "correct-horse")]
            case .account: return [("currentPassword", "correct-horse"), ("password", "correct-horse"), ("password2", "correct-horse")]
            default: return route.example.sorted { $0.key < $1.key }
            }
        }

        func apiBody(_ route: Route) -> String? {
            switch route {
            case .apiSettings: return #"{"virtualDomain":"h5app.example.com"}"#
            case .apiSigningKey: return pem
            case .apiApps: return #"{"id":"\#(50_000_000 + next())","name":"Sample"}"#
            case .apiSimulate: return #"{"platform":"android","clientVersion":"10.2.3","deviceId":"d-1","apps":[{"id":"20171228","version":"1.0.0.1"}]}"#
            default: return nil
            }
        }

        func version() -> String { "1.0.\(next()).0" }

        /// The console's whitelist and task pages, with what they act on made fresh.
        /// A fresh whitelist's ID.
        func whitelist(_ h: Harness) async throws -> String {
            String(try await h.services.actions.createWhitelist(by: .commandLine, name: "list-\(next())", kind: "user", values: ["u"]).id ?? 0)
        }

        /// A fresh package with a releasing 5 % task (finished if asked); the task's ID.
        func task(_ h: Harness, finish: Bool = false) async throws -> String {
            let version = self.version()
            try await h.addPackage(version)
            var draft = TaskDraft()
            draft.type = "gray"; draft.mode = "percentage"; draft.percentage = "5"
            let t = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: version, draft: draft)
            if finish { _ = try await h.services.actions.operate(by: .commandLine, task: t.id ?? 0, .finish) }
            return String(t.id ?? 0)
        }

        /// A fresh package with a releasing task; its version.
        func releasedVersion(_ h: Harness) async throws -> String {
            let id = try await task(h)
            return try await h.store.task(Int64(id) ?? 0)?.version ?? ""
        }

        /// A fresh package with an official task created by the command line that awaits approval; the task's ID.
        func awaitingTask(_ h: Harness) async throws -> String {
            let version = self.version()
            try await h.addPackage(version)
            _ = try await h.store.setApprovalRules(official: true, gray: false, by: .commandLine)
            var draft = TaskDraft()
            draft.type = "official"
            let t = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: version, draft: draft)
            _ = try await h.store.setApprovalRules(official: false, gray: false, by: .commandLine)
            return String(t.id ?? 0)
        }

        func consoleReleaseRequest(_ entry: RouteTable.Entry, _ h: Harness, as role: Role) async throws -> (String, [(String, String)])? {
            func whitelist() async throws -> String { try await self.whitelist(h) }
            func task() async throws -> String { try await self.task(h) }
            switch (entry.method, entry.route) {
            case (.post, .whitelists): return (entry.route.path(), [("name", "w-\(next())"), ("kind", "user"), ("values", "a,b")])
            case (.get, .whitelist): return (entry.route.path(try await whitelist()), [])
            case (.post, .whitelistValues): return (entry.route.path(try await whitelist()), [("values", "x")])
            case (.post, .whitelistRemove): return (entry.route.path(try await whitelist()), [("remove", "u")])
            case (.post, .whitelistDelete): return (entry.route.path(try await whitelist()), [])
            case (.get, .newTask):
                let version = self.version()
                try await h.addPackage(version)
                return (entry.route.path("20171228", version), [])
            case (.post, .packageTasks):
                let version = self.version()
                try await h.addPackage(version)
                return (entry.route.path("20171228", version), [("type", "official")])
            case (.get, .task): return (entry.route.path(try await task()), [])
            case (.post, .taskOperation): return (entry.route.path(try await task(), "pause"), [])
            case (.post, .packageRevoke): return (entry.route.path("20171228", try await releasedVersion(h)), [("reason", "Broken.")])
            case (.post, .tokenRevoke):
                _ = try await h.store.createToken(userName: role.rawValue, scopes: [.read], by: .commandLine)
                return (entry.route.path(String(try await h.store.tokens(of: role.rawValue).first?.0.id ?? 0)), [])
            case (.post, .taskApprove): return (entry.route.path(try await awaitingTask(h)), [])
            case (.post, .taskReject): return (entry.route.path(try await awaitingTask(h)), [("comment", "No.")])
            case (.post, .userRole): return (entry.route.path(try await aUser(h)), [("role", "reviewer")])
            case (.post, .userDisable): return (entry.route.path(try await aUser(h)), [])
            case (.post, .userEnable): return (entry.route.path(try await aUser(h)), [])
            case (.post, .userPassword): return (entry.route.path(try await aUser(h)), [("password", "another-horse")])
            case (.get, .importPage): return (entry.route.path(try await anImport(h)), [])
            case (.get, .importRow): return (entry.route.path(try await anImport(h), "0"), [])
            case (.post, .importRow):
                return (entry.route.path(try await anImport(h), "0"), [("platformCheckboxes", "true"), ("version", "1.0.0.1"),
                                                                        ("android", "true"), ("androidMin", "10.0")])
            case (.post, .importSubmit): return (entry.route.path(try await anImport(h)), [("confirm", "true")])
            default: return nil
            }
        }

        /// A fresh developer's name.
        func aUser(_ h: Harness) async throws -> String {
            let name = "someone-\(next())"
            try await h.addUser(name, role: .developer)
            return name
        }

        /// A fresh import of one file for a new app; its ID.
        func anImport(_ h: Harness) async throws -> String {
            let path = h.store.blobs.temporaryPath(suffix: ".upload")
            let id = String(31_000_000 + next())
            let zip = samplePackage(id)
            try zip.write(to: path)
            let file = UploadedFile(field: "files", filename: "\(id).zip", path: path, size: UInt64(zip.bytes().count))
            return String(try await h.services.actions.startImport(by: .commandLine, files: [file]).id ?? 0)
        }

        /// A path and body the whitelist and task routes accept, with what they act on made fresh.
        func releaseRequest(_ entry: RouteTable.Entry, _ h: Harness) async throws -> (String, String?)? {
            func whitelist() async throws -> String { try await self.whitelist(h) }
            func task(finish: Bool = false) async throws -> String { try await self.task(h, finish: finish) }
            switch (entry.method, entry.route) {
            case (.post, .apiWhitelists): return (entry.route.path(), #"{"name":"new-\#(next())","kind":"device","values":["d"]}"#)
            case (.post, .apiWhitelistValues): return (entry.route.path(try await whitelist()), #"{"values":["x","y"]}"#)
            case (.delete, .apiWhitelist): return (entry.route.path(try await whitelist()), nil)
            case (.post, .apiPackageTasks):
                let version = self.version()
                try await h.addPackage(version)
                return (entry.route.path("20171228", version), #"{"type":"official"}"#)
            case (.get, .apiImport): return (entry.route.path(try await anImport(h)), nil)
            case (.patch, .apiImportRow): return (entry.route.path(try await anImport(h), "0"), #"{"version":"2.0.0.0"}"#)
            case (.post, .apiImportSubmit): return (entry.route.path(try await anImport(h)), nil)
            case (.get, .apiTask): return (entry.route.path(try await task()), nil)
            case (.get, .apiTaskHealth): return (entry.route.path(try await task()), nil)
            case (.patch, .apiTask): return (entry.route.path(try await task()), #"{"percentage":20}"#)
            case (.delete, .apiTask): return (entry.route.path(try await task(finish: true)), nil)
            case (.post, .apiTaskOperation): return (entry.route.path(try await task(), "pause"), nil)
            case (.post, .apiPackageRevoke): return (entry.route.path("20171228", try await releasedVersion(h)), #"{"reason":"Broken."}"#)
            case (.post, .apiTaskApprove): return (entry.route.path(try await awaitingTask(h)), nil)
            case (.post, .apiTaskReject): return (entry.route.path(try await awaitingTask(h)), #"{"comment":"No."}"#)
            default: return nil
            }
        }
    }

    static func path(_ route: Route) -> String { route.path("20171228", "1.0.0.1") }

    func testEveryRouteAnswersEachRoleAndScopeAsItsPermissionSays() async throws {
        let h = try await populated()
        defer { h.cleanUp() }
        let samples = Samples()
        try await h.test { client in
            let entries = h.services.routes.entries
            XCTAssertGreaterThanOrEqual(entries.filter { $0.surface == .console }.count, 14)
            XCTAssertEqual(entries.filter { $0.surface == .api }.count, 29)
            for entry in entries where entry.surface == .console {
                let permission = try XCTUnwrap(entry.permission, "\(entry.route) declares its permission")
                for role in Role.allCases {
                    let b = try await Browser.signIn(client, role.rawValue)
                    let r: TestResponse
                    if role.may(permission), let (path, fields) = try await samples.consoleReleaseRequest(entry, h, as: role) {
                        r = entry.method == .get ? try await b.get(path) : try await b.post(path, fields)
                    } else {
                    switch entry.method {
                    case .get: r = try await b.get(Self.path(entry.route))
                    case .post where entry.route == .packages:
                        r = try await b.upload(Self.path(entry.route), packageFields(version: samples.version()), file: samplePackage().bytes())
                    case .post where entry.route == .imports:
                        let id = String(32_000_000 + samples.next())
                        r = try await b.uploadFiles(Self.path(entry.route), [("files", "\(id).zip", samplePackage(id).bytes())])
                    default: r = try await b.post(Self.path(entry.route), samples.consoleFields(entry.route))
                    }
                    }
                    let what = "\(entry.method) \(entry.route) as \(role)"
                    if role.may(permission) {
                        XCTAssertTrue((200..<400).contains(r.status.code), "\(what): \(r.status) \(r.text.prefix(300))")
                    } else {
                        XCTAssertEqual(r.status, .forbidden, what)
                        XCTAssertTrue(r.text.contains("cannot do this"), what)
                    }
                }
            }
            for role in Role.allCases {
                for scope in TokenScope.allCases {
                    if scope == .admin && role != .admin {
                        await assertThrows(try await h.services.actions.createToken(by: .commandLine, userName: role.rawValue, scopes: scope.rawValue),
                                           "the admin scope is for administrators' tokens")
                        continue
                    }
                    let token = try await h.services.actions.createToken(by: .commandLine, userName: role.rawValue, scopes: scope.rawValue)
                    let caller = APITests.Caller(client: client, token: token)
                    for entry in entries where entry.surface == .api {
                        let permission = try XCTUnwrap(entry.permission)
                        let r: TestResponse
                        let allowed = role.may(permission) && scope == permission.scope
                        if entry.route == .apiPackages {
                            r = try await caller.upload("20171228", packageFields(version: samples.version()), file: samplePackage().bytes())
                        } else if entry.route == .apiImports {
                            let id = String(33_000_000 + samples.next())
                            let (body, type) = multipart([], files: [("file", "\(id).zip", samplePackage(id).bytes())])
                            r = try await client.execute(uri: "/api/v1/batch-imports", method: .post,
                                                         headers: [.authorization: "Bearer \(token)", .contentType: type], body: body)
                        } else if entry.route == .apiPackageDiff {
                            r = try await caller.call(.get, Self.path(entry.route) + "?from=1.0.0.1")
                        } else if let (path, body) = allowed ? try await samples.releaseRequest(entry, h) : nil {
                            r = try await caller.call(entry.method, path, json: body)
                        } else {
                            r = try await caller.call(entry.method, Self.path(entry.route), json: samples.apiBody(entry.route),
                                                      type: entry.route == .apiSigningKey ? "application/x-pem-file" : "application/json")
                        }
                        let what = "\(entry.method) \(entry.route) as \(role) with \(scope)"
                        if allowed {
                            XCTAssertTrue((200..<300).contains(r.status.code), "\(what): \(r.status) \(r.text.prefix(300))")
                        } else {
                            XCTAssertEqual(r.status, .forbidden, what)
                            XCTAssertNotNil((r.json["error"] as? [String: Any])?["message"], what)
                        }
                    }
                }
            }
        }
    }

    func testTheOpenAPIDocumentNamesExactlyTheRegisteredAPIRoutes() async throws {
        let h = try await populated()
        defer { h.cleanUp() }
        try await h.test { client in
            let r = try await client.execute(uri: "/api/v1/openapi.json", method: .get)
            XCTAssertEqual(r.status, .ok, "no token needed")
            let doc = r.json
            XCTAssertEqual(doc["openapi"] as? String, "3.1.0")
            let paths = try XCTUnwrap(doc["paths"] as? [String: [String: Any]])
            var documented = Set<String>()
            for (path, operations) in paths {
                for (method, operation) in operations {
                    documented.insert("\(method.uppercased()) \(path)")
                    let o = try XCTUnwrap(operation as? [String: Any])
                    XCTAssertNotNil((o["responses"] as? [String: Any])?["4XX"], "\(method) \(path) documents its errors")
                }
            }
            let registered = Set(h.services.routes.entries.filter { $0.route.pattern.hasPrefix("/api/") }.map { e in
                "\(e.method) " + e.route.pattern.split(separator: "/", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
            })
            XCTAssertEqual(documented.subtracting(registered), [], "documented but not registered")
            XCTAssertEqual(registered.subtracting(documented), [], "registered but not documented")
            let approve = (paths["/api/v1/tasks/{task}/approve"]?["post"] as? [String: Any])?["description"] as? String
            XCTAssertTrue(approve?.contains("`release` scope") == true, approve ?? "")
            let key = (paths["/api/v1/settings/public-key"]?["get"] as? [String: Any])?["security"] as? [Any]
            XCTAssertEqual(key?.count, 0, "the public key needs no token")
        }
    }

    func testEveryRouteRefusesADisabledUserAndAnExpiredOrRevokedToken() async throws {
        let h = try await populated()
        defer { h.cleanUp() }
        try await h.addUser("gone", role: .admin)
        let all: Set<TokenScope> = Set(TokenScope.allCases)
        let expired = try await h.store.createToken(userName: "admin", scopes: all, expiresAt: Date().addingTimeInterval(-60), by: .commandLine)
        let revoked = try await h.store.createToken(userName: "admin", scopes: all, by: .commandLine)
        let revokedID = try await unwrap(try await h.store.tokens(of: "admin").first?.0.id)
        _ = try await h.store.revokeToken(revokedID, owner: nil, by: .commandLine)
        let disabledUsers = try await h.store.createToken(userName: "gone", scopes: all, by: .commandLine)
        try await h.test { client in
            let session = try await Browser.signIn(client, "gone")
            _ = try await h.store.setDisabled("gone", true, by: .commandLine)
            let before = try await h.store.auditEntries(limit: 10_000).count
            let entries = h.services.routes.entries
            for entry in entries where entry.surface == .api {
                for (token, why) in [(expired, "expired"), (revoked, "revoked"), (disabledUsers, "disabled")] {
                    let r = try await APITests.Caller(client: client, token: token).call(entry.method, Self.path(entry.route), json: "{}")
                    XCTAssertEqual(r.status, .unauthorized, "\(entry.method) \(entry.route) with a token that is \(why)")
                    XCTAssertTrue(r.text.contains(why), "\(entry.method) \(entry.route): \(r.text)")
                }
            }
            for entry in entries where entry.surface == .console {
                let r = entry.method == .get ? try await session.get(Self.path(entry.route))
                    : try await session.post(Self.path(entry.route), Samples().consoleFields(entry.route))
                let what = "\(entry.method) \(entry.route) as a disabled user: \(r.status)"
                if entry.method == .get {
                    XCTAssertEqual(r.status, .seeOther, what)
                    XCTAssertTrue(r.headers[.location]?.hasPrefix("/login") == true, what)
                } else {
                    XCTAssertTrue([.seeOther, .forbidden].contains(r.status) && r.headers[.location].map { $0.hasPrefix("/login") } ?? true, what)
                }
            }
            await assertEqual(try await h.store.auditEntries(limit: 10_000).count, before, "nothing changed")
        }
    }

    func testEveryChangeIsOneAuditedWriteAndTheChainShowsTampering() async throws {
        let h = try await populated()
        defer { h.cleanUp() }
        let heard = LockedCounter()
        h.store.changes.subscribe { heard.increment() }
        try await h.test { client in
            let b = try await Browser.signIn(client, "developer")
            await assertEqual(try await b.post("/apps", [("id", "30000001"), ("name", "Orders")]).status, .seeOther)
            XCTAssertEqual(heard.value, 1, "the catalogue change was announced")
            await assertEqual(try await b.post("/apps", [("id", "30000001"), ("name", "Again")]).status, .conflict)
            await assertEqual(try await b.post("/apps", [("id", "1"), ("name", "")]).status, .unprocessableContent)
            XCTAssertEqual(heard.value, 1, "refusals change nothing and announce nothing")
        }
        let entries = try await h.store.auditEntries()
        XCTAssertEqual(entries.map(\.action), ["app.create", "package.add", "app.create", "settings.globalLocation", "settings.virtualDomain",
                                              "user.create", "user.create", "user.create"])
        XCTAssertEqual(entries[0].user, "developer")
        XCTAssertEqual(entries[0].subject, "30000001")
        XCTAssertTrue(entries[0].detail.contains(#""name":"Orders""#))
        XCTAssertFalse(entries.contains { $0.detail.contains("$2b$") || $0.detail.contains("PRIVATE KEY") }, "no secret in the log")
        await assertEqual(try await h.store.verifyAudit(), AuditVerification(rows: 8, firstBadRow: nil))

        // Someone with the database file edits a row: the chain breaks at that row.
        let victim = try XCTUnwrap(entries.first { $0.action == "settings.virtualDomain" }?.id)
        try await h.store.db.write { db in try db.execute(sql: "UPDATE audit SET subject = 'x' WHERE id = ?", arguments: [victim]) }
        await assertEqual(try await h.store.verifyAudit().firstBadRow, victim)
        await assertTrue(try await h.store.verifyAudit().summary.contains("row \(victim) was changed"))
        // Deleting a row breaks it too, and is named as missing.
        try await h.store.db.write { db in
            try db.execute(sql: "UPDATE audit SET subject = 'settings' WHERE id = ?", arguments: [victim])
            try db.execute(sql: "DELETE FROM audit WHERE id = ?", arguments: [victim])
        }
        await assertEqual(try await h.store.verifyAudit(), AuditVerification(rows: Int(victim), firstBadRow: victim, missing: true))
        // So does deleting the newest rows, which leaves no gap behind.
        let newest = try XCTUnwrap(entries.first?.id)
        try await h.store.db.write { db in try db.execute(sql: "DELETE FROM audit WHERE id >= ?", arguments: [victim]) }
        await assertEqual(try await h.store.verifyAudit().firstBadRow, victim)
        XCTAssertGreaterThan(newest, victim)
    }

    func testTheCommandLineUsesTheSameActions() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        let actions = Actions(store: h.store)
        _ = try await actions.addUser(by: .commandLine, name: "ops", password: "long-enough", role: .developer)
        do {
            _ = try await actions.addUser(by: .commandLine, name: "ops", password: "long-enough", role: .developer)
            XCTFail("a second ops")
        } catch let e as Conflict { XCTAssertEqual(e.field, "name") }
        do {
            _ = try await actions.addUser(by: ActingUser(name: "dev", role: .developer), name: "x", password: "long-enough", role: .admin)
            XCTFail("a developer made a user")
        } catch is Refused {}
        await assertEqual(try await h.store.auditEntries().map(\.action), ["user.create"])
        await assertEqual(try await h.store.auditEntries().first?.user, "(command line)")
    }

    func testFormsShowAnErrorThatBelongsToNoFieldAtTheTop() async throws {
        let general = try XCTUnwrap(FormFailure(FieldError("", "The server could not write the package (disk full?).")))
        XCTAssertEqual(general.formError, "The server could not write the package (disk full?).")
        XCTAssertEqual(try XCTUnwrap(FormFailure(Conflict("Taken.", field: "id"))).fields, ["id": "Taken."])
        XCTAssertEqual(try XCTUnwrap(FormFailure(Conflict("Not now."))).formError, "Not now.")
        XCTAssertNil(FormFailure(Refused("No.")), "refusals are error pages, not form errors")
        XCTAssertNil(FormFailure(NotFound("Gone.")))
        let h = try await Harness.make()
        defer { h.cleanUp() }
        let page = NewAppPage(id: "1", name: "x", failure: general, chrome: Chrome(user: nil, csrf: "", section: .apps))
        let html = try XCTUnwrap(h.services.views.library.render(page, withTemplate: "app_new"))
        XCTAssertTrue(html.contains(#"id="form-error">The server could not write the package (disk full?).</p>"#))
    }

    func testNoTemplateHardCodesAPathAndOnlyTheStoreTouchesTheDatabase() throws {
        let root = Harness.repository
        let templates = try FileManager.default.contentsOfDirectory(atPath: root + "/Templates")
        XCTAssertFalse(templates.isEmpty)
        let hardCoded = try NSRegularExpression(pattern: #"(href|action|formaction|src)="/(?!static/)"#)
        for name in templates {
            let text = try String(contentsOfFile: root + "/Templates/" + name, encoding: .utf8)
            XCTAssertEqual(hardCoded.numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text)), 0,
                           "\(name) builds its links from routes")
        }
        // The seam (CourierStore) is plain records and the `Store` protocol; only the SQLite
        // implementation knows GRDB, and only the places that choose the store name it.
        let choosers: Set = ["courier/Courier.swift", "CourierWeb/App/Application.swift", "CourierWeb/App/Metrics.swift"]
        for module in ["CourierWeb", "CourierDomain", "courier", "CourierCore", "CourierArchive", "CourierStore"] {
            let files = try Self.swiftFiles(in: root + "/Sources/" + module)
            XCTAssertFalse(files.isEmpty, module)
            for (name, text) in files {
                XCTAssertFalse(text.contains("import GRDB"), "\(module)/\(name) imports GRDB")
                XCTAssertFalse(text.contains("sql:") || text.contains("SELECT "), "\(module)/\(name) has SQL")
                for store in ["CourierSQLite", "CourierPostgres"] {
                    XCTAssertTrue(!text.contains("import \(store)") || choosers.contains("\(module)/\(name)"),
                                  "\(module)/\(name) depends on \(store) rather than the `Store` protocol")
                }
            }
        }
        for (name, text) in try Self.swiftFiles(in: root + "/Sources/CourierPostgres") {
            XCTAssertFalse(text.contains("import GRDB"), "CourierPostgres/\(name) imports GRDB")
        }
        // CourierWeb is grouped by area (README, "Where things go"): no file outside the folders.
        let loose = try FileManager.default.contentsOfDirectory(atPath: root + "/Sources/CourierWeb").filter { $0.hasSuffix(".swift") }
        XCTAssertEqual(loose, [], "CourierWeb's files live in its area folders")
        // Path parameters arrive percent-encoded: every route reads them through `decoded`.
        for (name, text) in try Self.swiftFiles(in: root + "/Sources/CourierWeb") where !name.hasSuffix("/Routes.swift") {
            for raw in ["parameters.get(", "parameters.require(", "parameters.getCatchAll(", "parameters["] {
                XCTAssertFalse(text.contains(raw), "CourierWeb/\(name) reads a path parameter without decoding it (\(raw))")
            }
        }
        // The device side depends on Foundation, swift-crypto and our archive reading only (SPEC §10).
        let client = root + "/Sources/CourierClient"
        for name in try FileManager.default.contentsOfDirectory(atPath: client) where name.hasSuffix(".swift") {
            let text = try String(contentsOfFile: client + "/" + name, encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.hasPrefix("import ") }.map { String($0.dropFirst(7)) }
            for module in imports {
                XCTAssertTrue(["Foundation", "FoundationNetworking", "Crypto", "_CryptoExtras", "CourierArchive", "Glibc", "Darwin"].contains(module),
                              "CourierClient/\(name) imports \(module)")
            }
        }
    }

    /// Every Swift file under `dir`, by its path below it, with its text.
    static func swiftFiles(in dir: String) throws -> [(String, String)] {
        let names = (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".swift") }.sorted()
        return try names.map { ($0, try String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) }
    }

    func testRoutesBuildEncodedPaths() {
        XCTAssertEqual(Route.package.path("20171228", "1.0.0.1"), "/apps/20171228/packages/1.0.0.1")
        XCTAssertEqual(Route.fallback.path("20171228", "1.0.0.1", "www/a b.html"), "/fallback/20171228/1.0.0.1/www/a%20b.html")
        XCTAssertEqual(Route.app.path("../x"), "/apps/..%2Fx")
        XCTAssertEqual(Route.apps.path([], query: [("page", "2"), ("q", "a&b"), ("empty", "")]), "/apps?page=2&q=a%26b")
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var value: Int { lock.withLock { n } }
    func increment() { lock.withLock { n += 1 } }
}
