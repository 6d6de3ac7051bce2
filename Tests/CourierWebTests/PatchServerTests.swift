import CourierArchive
import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// Patches on the server (SPEC §3, issue 18): built in the background from each offered
/// version's bases, exactly once, offered in the update answer to clients on a base when worth
/// it, served with Range, deleted when no client can use them, built again after a key change.
final class PatchServerTests: XCTestCase {
    typealias Client = ReleaseTests.Client

    /// A package whose `www/big.bin` is the same 200 KB in every version and whose `www/app.js` says `script`.
    static func zip(script: String, big: [UInt8], extra: [String: String] = [:]) -> ZipBuilder {
        var entries: [ZipBuilder.Entry] = [
            .init("20171228/www/index.html", "<!doctype html><script src=app.js></script>"),
            .init("20171228/www/app.js", script),
            .init("20171228/www/big.bin", big, method: 0),
        ]
        for (path, text) in extra.sorted(by: { $0.key < $1.key }) { entries.append(.init("20171228/" + path, text)) }
        return ZipBuilder(entries)
    }

    func add(_ h: Harness, _ version: String, _ zip: ZipBuilder) async throws {
        let path = h.store.blobs.temporaryPath(suffix: ".zip")
        try zip.write(to: path)
        var draft = PackageDraft(fields: FormFields(Dictionary(uniqueKeysWithValues: packageFields())))
        draft.version = version
        draft.installPolicy = "preload"
        _ = try await h.services.actions.addPackage(by: .commandLine, appId: "20171228", draft: draft, zipPath: path)
    }

    func release(_ h: Harness, _ version: String) async throws {
        var draft = TaskDraft()
        draft.type = "official"
        _ = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: version, draft: draft)
    }

    /// The answer's entry for a client with `installed`.
    static func entry(_ client: any TestClientProtocol, installed: String) async throws -> [String: Any] {
        let r = try await Client(client: client).update(ClientProtocolTests.request(installed: installed))
        XCTAssertEqual(r.status, .ok, r.text)
        return ((r.json["data"] as? [[String: Any]]) ?? []).first ?? [:]
    }

    func onDisk(_ h: Harness, _ blob: String?) -> Bool { blob.map { FileManager.default.fileExists(atPath: h.store.blobs.path(for: $0)) } ?? false }

    func testPatchesAreBuiltOnceOfferedToClientsOnABaseServedAndDeletedWhenNoClientCanUseThem() async throws {
        let dir = temporaryDirectory()
        let h = try await Harness.make(dir: dir)
        defer { h.cleanUp() }
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        _ = try await h.services.actions.installSigningKey(by: .commandLine, try SigningKey.generate())
        let big = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
        try await add(h, "1.0.0.1", Self.zip(script: "one()", big: big))
        try await add(h, "1.0.0.2", Self.zip(script: "two()", big: big))
        try await add(h, "1.0.0.3", Self.zip(script: "three()", big: big, extra: ["www/new.css": "p{}"]))

        try await release(h, "1.0.0.1")
        try await h.services.patches.reconcile()
        await assertEqual(try await h.store.patches().count, 0, "nothing below the first release")

        try await release(h, "1.0.0.2")
        try await h.services.patches.reconcile()
        let first = try await h.store.patches()
        XCTAssertEqual(first.map { "\($0.base)>\($0.version)" }, ["1.0.0.1>1.0.0.2"])
        let p12 = try XCTUnwrap(first.first)
        let full2 = try await h.store.package("20171228", "1.0.0.2")!.size
        XCTAssertTrue(p12.size * 50 < full2, "one changed script: \(p12.size) of \(full2) bytes")
        XCTAssertEqual(p12.changedFiles, 1)
        XCTAssertTrue(onDisk(h, p12.blob))

        try await h.test { client in
            let onBase = try await Self.entry(client, installed: "1.0.0.1")
            XCTAssertEqual(onBase["version"] as? String, "1.0.0.2")
            XCTAssertEqual(onBase["patch"] as? String, "http://courier.test/packages/20171228/1.0.0.2.patch-1.0.0.1.amr")
            XCTAssertEqual(onBase["patch_size"] as? Int, Int(p12.size))
            XCTAssertEqual(onBase["patch_sha256"] as? String, p12.blob)
            XCTAssertEqual(onBase["patch_from"] as? String, "1.0.0.1")
            let fresh = try await Self.entry(client, installed: "0")
            XCTAssertEqual(fresh["version"] as? String, "1.0.0.2")
            XCTAssertNil(fresh["patch"], "a client without the base gets the full package only")

            // Served like a package: whole, and resumed.
            let whole = try await client.execute(uri: "/packages/20171228/1.0.0.2.patch-1.0.0.1.amr", method: .get)
            XCTAssertEqual(whole.status, .ok)
            XCTAssertEqual(SHA256.hash(data: Data(buffer: whole.body)).hex, p12.blob)
            let rest = try await client.execute(uri: "/packages/20171228/1.0.0.2.patch-1.0.0.1.amr", method: .get, headers: [.range: "bytes=100-"])
            XCTAssertEqual(rest.status, .partialContent)
            XCTAssertEqual(Data(buffer: rest.body), Data(buffer: whole.body).dropFirst(100))
            await assertEqual(try await client.execute(uri: "/packages/20171228/1.0.0.2.patch-1.0.0.0.amr", method: .get).status, .notFound)
            _ = try await client.execute(uri: "/packages/20171228/1.0.0.2.amr", method: .get)
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            XCTAssertTrue(metrics.contains("courier_package_bytes_sent_total{kind=\"patch\"} \(Int(p12.size) * 2 - 100)"), metrics)
            XCTAssertTrue(metrics.contains("courier_package_bytes_sent_total{kind=\"full\"} \(full2)"), metrics)
        }

        // 1.0.0.3 released: patches to it from both; the one to 1.0.0.2 (no longer offered) goes.
        try await release(h, "1.0.0.3")
        try await h.services.patches.reconcile()
        let second = try await h.store.patches()
        XCTAssertEqual(Set(second.map { "\($0.base)>\($0.version)" }), ["1.0.0.1>1.0.0.3", "1.0.0.2>1.0.0.3"])
        XCTAssertFalse(onDisk(h, p12.blob), "the unused patch's file is deleted")

        // Exactly once: again, and after a restart, nothing is built.
        try await h.services.patches.reconcile()
        let restarted = try await Harness.make(dir: dir)
        try await restarted.services.patches.reconcile()
        await assertEqual(try await restarted.store.patches().map(\.createdAt).sorted(), second.map(\.createdAt).sorted())

        // A new signing key re-signs every package: the patches are built again with its signatures.
        _ = try await restarted.services.actions.installSigningKey(by: .commandLine, try SigningKey.generate())
        await assertEqual(try await restarted.store.patches().count, 0)
        for p in second { XCTAssertFalse(onDisk(restarted, p.blob), "old patches' files go with them") }
        try await restarted.services.patches.reconcile()
        let resigned = try await restarted.store.patches()
        XCTAssertEqual(resigned.count, 2)
        let target = try await restarted.store.package("20171228", "1.0.0.3")!
        let targetSign = try ZipReader(path: restarted.store.blobs.path(for: target.blob)).entries.first { $0.name == "SIGN.json" }
        for p in resigned {
            let reader = try ZipReader(path: restarted.store.blobs.path(for: try XCTUnwrap(p.blob)))
            let sign = try XCTUnwrap(reader.entries.first { $0.name == "SIGN.json" })
            XCTAssertEqual(try reader.data(sign), try ZipReader(path: restarted.store.blobs.path(for: target.blob)).data(try XCTUnwrap(targetSign)),
                           "the patch carries the target's new signature")
        }
        // Nothing orphaned on disk: a sweep finds nothing to remove.
        await assertEqual(try await restarted.store.sweep().orphanBlobs, 0)
    }

    func testAPatchNotWorthOfferingIsRecordedOnceAndNotOffered() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        try await add(h, "1.0.0.1", Self.zip(script: "one()", big: (0..<100_000).map { _ in UInt8.random(in: 0...255) }))
        try await add(h, "1.0.0.2", Self.zip(script: "two()", big: (0..<100_000).map { _ in UInt8.random(in: 0...255) }))
        try await release(h, "1.0.0.1")
        try await release(h, "1.0.0.2")
        try await h.services.patches.reconcile()
        let patches = try await h.store.patches()
        XCTAssertEqual(patches.count, 1)
        XCTAssertNil(patches.first?.blob, "everything changed: more than half the full package")
        try await h.services.patches.reconcile()
        await assertEqual(try await h.store.patches(), patches, "not built again")
        try await h.test { client in
            let onBase = try await Self.entry(client, installed: "1.0.0.1")
            XCTAssertEqual(onBase["version"] as? String, "1.0.0.2")
            XCTAssertNil(onBase["patch"])
        }
        XCTAssertTrue(PatchRules.worthOffering(patchSize: 49, fullSize: 100))
        XCTAssertFalse(PatchRules.worthOffering(patchSize: 50, fullSize: 100))
    }

    func testReviewersSeeWhatChangedAndWhatADeviceDownloads() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        _ = try await h.store.setVirtualDomain("h5app.example.com", by: .commandLine)
        _ = try await h.store.createApp(id: AppID(trusted: "20171228"), name: "Checkout", by: .commandLine)
        try await h.addUser("ada")
        try await h.addUser("rita", role: .reviewer)
        let big = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
        try await add(h, "1.0.0.1", Self.zip(script: "one()", big: big))
        try await add(h, "1.0.0.2", Self.zip(script: "two()", big: big))
        try await add(h, "1.0.0.3", Self.zip(script: "three()", big: big, extra: ["www/new.css": "p{}"]))
        try await release(h, "1.0.0.1")
        try await release(h, "1.0.0.2")
        try await h.services.patches.reconcile()
        let token = try await h.services.actions.createToken(by: .commandLine, userName: "ada", scopes: "read,upload,release,admin")
        try await h.test { client in
            let api = APITests.Caller(client: client, token: token)
            let diff = try await api.call(.get, "/api/v1/apps/20171228/packages/1.0.0.3/diff?from=1.0.0.2")
            XCTAssertEqual(diff.status, .ok, diff.text)
            XCTAssertEqual((diff.json["changed"] as? [[String: Any]])?.map { "\($0["path"]!) \($0["sizeFrom"]!)>\($0["sizeTo"]!)" }, ["www/app.js 5>7"])
            XCTAssertEqual((diff.json["added"] as? [[String: Any]])?.map { "\($0["path"]!) \($0["size"]!)" }, ["www/new.css 3"])
            XCTAssertEqual((diff.json["removed"] as? [Any])?.count, 0)
            XCTAssertEqual((diff.json["patches"] as? [Any])?.count, 0, "1.0.0.3 is not offered yet: no patch to it")
            let toTwo = try await api.call(.get, "/api/v1/apps/20171228/packages/1.0.0.2/diff?from=1.0.0.1")
            XCTAssertEqual((toTwo.json["patches"] as? [[String: Any]])?.map { $0["from"] as? String }, ["1.0.0.1"])
            await assertEqual(try await api.call(.get, "/api/v1/apps/20171228/packages/1.0.0.3/diff").status, .unprocessableContent)
            await assertEqual(try await api.call(.get, "/api/v1/apps/20171228/packages/1.0.0.3/diff?from=9.9.9.9").status, .unprocessableContent)

            let b = try await Browser.signIn(client, "ada")
            // The package page: what 1.0.0.3 changes for clients on 1.0.0.2 (official now).
            let package = try await b.get("/apps/20171228/packages/1.0.0.3").text
            XCTAssertTrue(package.contains("What changed since 1.0.0.2"), package)
            XCTAssertTrue(package.contains("1 file changed, 1 added, 0 removed"), package)
            XCTAssertTrue(package.contains("<code>www/app.js</code></td><td>5 B → 7 B"), package)
            XCTAssertTrue(package.contains("No patch from 1.0.0.2"), package)
            // Released: the patch is built, and the task page says what a device downloads.
            var draft = TaskDraft()
            draft.type = "gray"
            draft.mode = "percentage"
            draft.percentage = "10"
            let gray = try await h.services.actions.createTask(by: .commandLine, appId: "20171228", version: "1.0.0.3", draft: draft)
            try await h.services.patches.reconcile()
            let task = try await b.get("/tasks/\(gray.id ?? 0)").text
            XCTAssertTrue(task.contains("What changed since 1.0.0.2"), task)
            XCTAssertTrue(task.contains("A device on 1.0.0.2 downloads a"), task)
            XCTAssertTrue(task.contains("patch instead of the full"), task)
            XCTAssertTrue(element(task, id: "changes-patches").contains("Patches to 1.0.0.3: from 1.0.0.2,") && task.contains("; from 1.0.0.1,"),
                          "each patch to the version, with its size")
            // Any two versions, picked.
            let page = try await b.get("/apps/20171228/diff?from=1.0.0.1&to=1.0.0.3")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains("What changed since 1.0.0.1") && page.text.contains("www/new.css"), page.text)
            XCTAssertTrue(page.text.contains(#"<option value="1.0.0.1" selected>"#), page.text)
            let same = try await b.get("/apps/20171228/diff?from=1.0.0.2&to=1.0.0.2")
            XCTAssertEqual(same.status, .unprocessableContent)
            XCTAssertTrue(element(same.text, id: "diff-problem").contains("two different versions"))

            // The reviewer's Approvals page names the change in one line.
            await assertEqual(try await api.call(.put, "/api/v1/settings", json: #"{"officialNeedsApproval":true}"#).status, .ok)
            var official = TaskDraft()
            official.type = "official"
            try await h.addPackage("1.0.0.4")
            _ = try await h.services.actions.createTask(by: ActingUser(name: "ada", role: .admin), appId: "20171228", version: "1.0.0.4", draft: official)
            let approvals = try await Browser.signIn(client, "rita").get("/approvals").text
            XCTAssertTrue(approvals.contains("Since 1.0.0.2:"), approvals)
        }
    }
}
