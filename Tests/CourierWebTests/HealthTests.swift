import CourierCore
@testable import CourierSQLite
import CourierStore
import CourierTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import CourierWeb

/// `/healthz`, `/readyz` and `/metrics` (issue 10).
final class HealthTests: XCTestCase {
    func testHealthReadinessAndMetricsReportWhatHappened() async throws {
        let (h, token) = try await releasedHarness()
        defer { h.cleanUp() }
        try await h.test { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertEqual(health.status, .ok)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(ready.status, .ok, ready.text)
            XCTAssertEqual(ready.json["checks"] as? [String: String], ["database": "ok", "blobs": "ok", "snapshot": "ok"])

            let api = APITests.Caller(client: client, token: token)
            _ = try await api.call(.post, "/api/v1/apps/20171228/packages/1.0.0.1/tasks", json: #"{"type":"official"}"#)
            let c = ReleaseTests.Client(client: client)
            await assertEqual(try await c.versions(), ["1.0.0.1"])
            await assertEqual(try await c.versions(installed: "1.0.0.1"), [])
            await assertEqual(try await api.upload("20171228", packageFields(version: "1.0.0.9"), file: samplePackage().bytes()).status, .created)
            await assertEqual(try await api.upload("20171228", packageFields(version: "1.0.0.9"), file: samplePackage().bytes()).status,
                              .unprocessableContent)

            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(metrics.status, .ok)
            let text = metrics.text
            for line in [#"courier_update_decisions_total{outcome="update"} 1"#, #"courier_update_decisions_total{outcome="none"} 1"#,
                         #"courier_uploads_total{outcome="stored"} 3"#, #"courier_uploads_total{outcome="refused"} 1"#,
                         #"courier_http_requests_total{route="/client/v1/update",method="POST",status="200"} 2"#,
                         #"courier_http_requests_total{route="/api/v1/apps/{id}/packages",method="POST",status="422"} 1"#,
                         "courier_snapshot_apps 1", "courier_snapshot_entries 1"] {
                XCTAssertTrue(text.contains(line), "\(line) in\n\(text)")
            }
            XCTAssertTrue(text.contains("courier_snapshot_rebuild_duration_seconds_count"), text)
            XCTAssertTrue(text.contains("courier_ingest_duration_seconds_count 3"), "the harness's two and this one")
            XCTAssertTrue(text.contains(#"courier_http_request_duration_seconds_bucket{route="/api/v1/apps/{id}/packages",method="POST""#), text)
            XCTAssertFalse(text.contains(token), "no secret in the metrics")
            // The process's memory, read at each scrape: where an operator sees growth come from.
            func gauge(_ name: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            XCTAssertGreaterThan(gauge("courier_process_resident_bytes") ?? 0, 1_000_000, text)
            XCTAssertGreaterThan(gauge(#"courier_heap_bytes{state="in_use"}"#) ?? 0, 100_000, text)
            XCTAssertNotNil(gauge(#"courier_heap_bytes{state="free"}"#), text)
            XCTAssertGreaterThan(gauge("courier_heap_arenas") ?? 0, 0, text)
            XCTAssertGreaterThan(gauge("courier_sqlite_memory_bytes") ?? 0, 0, "the store's connections hold page caches")
        }
        XCTAssertTrue(HealthController.mayReadMetrics(remoteIP: "127.0.0.1", authorization: nil, token: nil))
        XCTAssertTrue(HealthController.mayReadMetrics(remoteIP: "::1", authorization: nil, token: nil))
        XCTAssertFalse(HealthController.mayReadMetrics(remoteIP: "10.0.0.7", authorization: nil, token: nil), "not from another address")
        XCTAssertFalse(HealthController.mayReadMetrics(remoteIP: "10.0.0.7", authorization: "Bearer nope", token: "metrics-token-1234567"))
        XCTAssertTrue(HealthController.mayReadMetrics(remoteIP: "10.0.0.7", authorization: "Bearer metrics-token-1234567", token: "metrics-token-1234567"))
    }

    func testReadinessFailsWhenTheBlobStoreCannotBeWritten() async throws {
        let h = try await Harness.make()
        defer { h.cleanUp() }
        let tmp = h.store.blobs.temporaryDirectory.path
        try await h.test { client in
            // tmp/ replaced by a plain file: nothing can be created in it, even by root.
            try FileManager.default.removeItem(atPath: tmp)
            _ = FileManager.default.createFile(atPath: tmp, contents: Data("x".utf8))
            let r = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(r.status, .serviceUnavailable)
            XCTAssertEqual(r.json["ready"] as? Bool, false)
            await assertEqual(try await client.execute(uri: "/healthz", method: .get).status, .ok, "the process still answers")
            try FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
            await assertEqual(try await client.execute(uri: "/readyz", method: .get).status, .ok, "ready again")
        }
    }

    /// Issue 19: `/readyz` follows the last rebuild, not a flag set once at start; a failed
    /// rebuild is logged and counted, and offers nothing until one succeeds.
    func testReadinessFollowsTheLastSnapshotRebuild() async throws {
        let log = LogLines()
        let h = try await Harness.make(logger: log.logger)
        defer { h.cleanUp() }
        try await h.test { client in
            await assertEqual(try await client.execute(uri: "/readyz", method: .get).status, .ok)
            // The catalogue cannot be read (a table gone missing under the server).
            try await h.store.db.write { db in try db.execute(sql: "ALTER TABLE whitelist RENAME TO whitelistAway") }
            await h.store.changes.announce()
            let r = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(r.status, .serviceUnavailable, r.text)
            XCTAssertTrue((r.json["checks"] as? [String: String])?["snapshot"]?.hasPrefix("the last rebuild failed at ") == true, r.text)
            XCTAssertTrue(log.all.contains { $0.hasPrefix("error Cannot rebuild the delivery snapshot") }, "\(log.all)")
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            XCTAssertTrue(metrics.contains(#"courier_snapshot_rebuilds_total{outcome="failed"} 1"#), String(metrics.prefix(0)))
            // Fixed: the next rebuild turns it green again.
            try await h.store.db.write { db in try db.execute(sql: "ALTER TABLE whitelistAway RENAME TO whitelist") }
            await h.store.changes.announce()
            await assertEqual(try await client.execute(uri: "/readyz", method: .get).status, .ok, "ready again")
        }
    }

    func testMallocInfoTotalsCoverEveryArena() {
        let xml = """
        <malloc version="1">
        <heap nr="0"><sizes></sizes><total type="fast" count="0" size="0"/><total type="rest" count="1" size="10"/>
        <system type="current" size="100"/></heap>
        <heap nr="1"><sizes></sizes><total type="fast" count="2" size="5"/><total type="rest" count="1" size="20"/>
        <system type="current" size="200"/></heap>
        <total type="fast" count="2" size="5"/>
        <total type="rest" count="2" size="30"/>
        <total type="mmap" count="1" size="4096"/>
        <system type="current" size="300"/>
        <system type="max" size="300"/>
        </malloc>
        """
        var m = ProcessMemory()
        m.readMallocInfo(xml)
        XCTAssertEqual(m.arenas, 2)
        XCTAssertEqual(m.heapFree, 35)
        XCTAssertEqual(m.heapInUse, 300 - 35 + 4096)
        let live = ProcessMemory.read()
        XCTAssertGreaterThan(live.resident, 0)
        XCTAssertGreaterThan(live.heapInUse, 0)
    }
}
