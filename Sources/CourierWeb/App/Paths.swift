import CourierStore

/// The URLs of a package that clients and people are handed, built from the routes.
enum Paths {
    static func amr(_ p: PackageRecord) -> String { Route.amr.path(p.appId, p.version + ".amr") }
    /// `{V}.patch-{B}.amr` (SPEC §3).
    static func patch(_ appId: String, _ version: String, from base: String) -> String {
        Route.amr.path(appId, "\(version).patch-\(base).amr")
    }
    static func fallbackBase(_ p: PackageRecord) -> String { Route.fallback.path(p.appId, p.version, "") }
    static func vhost(_ appId: String, domain: String?) -> String { "https://\(appId).\(domain ?? "")" }
}
