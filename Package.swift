// swift-tools-version:6.0
import Foundation
import PackageDescription

let package = Package(
    name: "Courier",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "courier", targets: ["courier"]),
        // The device side (SPEC §10): Foundation, swift-crypto and our archive reading only.
        .library(name: "CourierClient", targets: ["CourierClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .systemLibrary(name: "CAtomicBytes", path: "Sources/CAtomicBytes"),
        .systemLibrary(name: "CCmark", path: "Sources/CCmark", pkgConfig: "libcmark",
                       providers: [.apt(["libcmark-dev"])]),
        .target(name: "CourierCore"),
        .target(name: "CourierArchive", dependencies: [
            "CourierCore", "CZlib",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        .target(name: "CourierClient", dependencies: [
            "CourierArchive",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        // The seam: plain records and the `Store` protocol a database implements.
        .target(name: "CourierStore", dependencies: [
            "CourierCore",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The embedded default: `SQLiteStore` (GRDB), its migrations and backups.
        .target(name: "CourierSQLite", dependencies: [
            "CMalloc",
            "CourierCore", "CourierStore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The same store on PostgreSQL, for several nodes (SPEC §9).
        .target(name: "CourierPostgres", dependencies: [
            "CourierCore", "CourierStore", "CourierSQLite",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The write path (SPEC: one action per change): permission, validation, one store
        // transaction with its audit row. Below CourierWeb; the command line uses it too.
        .target(name: "CourierDomain", dependencies: [
            "CourierCore", "CourierArchive", "CourierStore",
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "CourierWeb", dependencies: [
            "CourierCore", "CourierArchive", "CourierStore", "CourierSQLite", "CourierPostgres", "CourierDomain", "CCmark", "CAtomicBytes",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "courier", dependencies: [
            "CourierWeb", "CourierDomain", "CourierClient", "CourierSQLite", "CourierPostgres",
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "CourierTestSupport", dependencies: ["CZlib"], path: "Tests/CourierTestSupport"),
        .testTarget(name: "CourierCoreTests", dependencies: ["CourierCore"]),
        .testTarget(name: "CourierArchiveTests", dependencies: ["CourierArchive", "CourierTestSupport"]),
        .testTarget(name: "CourierClientTests", dependencies: [
            "CourierClient", "CourierArchive", "CourierTestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        .testTarget(name: "CourierWebTests", dependencies: [
            "CourierWeb", "CourierDomain", "CourierSQLite", "CourierPostgres", "CourierTestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets, only when asked for (`make fuzz`): built with `-sanitize=fuzzer,address`
// into their own scratch path; each main hands its function to libFuzzer's driver.
if ProcessInfo.processInfo.environment["COURIER_FUZZ"] == "1" {
    package.targets.append(.target(name: "CFuzzer", path: "Fuzz/CFuzzer"))
    for (name, dependency) in [("zip", "CourierArchive"), ("multipart", "CourierArchive"), ("rules", "CourierCore"), ("update", "CourierCore"), ("task", "CourierCore"), ("import", "CourierArchive"), ("client", "CourierClient"), ("patch", "CourierClient")] {
        package.targets.append(.executableTarget(name: "fuzz-\(name)", dependencies: ["CFuzzer", .target(name: dependency)],
                                                 path: "Fuzz/\(name)"))
        package.products.append(.executable(name: "fuzz-\(name)", targets: ["fuzz-\(name)"]))
    }
}
