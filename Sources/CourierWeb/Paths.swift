import CourierStore

/// Every URL Courier hands out, built in one place (console links, redirects, and the
/// `package_url` / `fallback_base_url` clients receive).
enum Paths {
    static func app(_ id: String) -> String { "/apps/\(id)" }
    static func package(_ p: PackageRecord) -> String { "/apps/\(p.appId)/packages/\(p.version)" }
    static func amr(_ p: PackageRecord) -> String { "/packages/\(p.appId)/\(p.version).amr" }
    static func fallbackBase(_ p: PackageRecord) -> String { "/fallback/\(p.appId)/\(p.version)/" }
    static func vhost(_ appId: String, domain: String?) -> String { "https://\(appId).\(domain ?? "")" }
}
