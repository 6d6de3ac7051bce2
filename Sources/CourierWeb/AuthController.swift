import CourierStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import NIOPosix

/// Failed sign-ins per name and per address: after 5 within 15 minutes, wait.
public actor LoginThrottle {
    var failures: [String: [Date]] = [:]
    let limit = 5
    let window: TimeInterval = 15 * 60

    public init() {}

    /// Seconds to wait before another attempt is allowed, or nil.
    func retryAfter(_ keys: [String], now: Date = Date()) -> Int? {
        var wait: TimeInterval = 0
        for key in keys {
            let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < window }
            failures[key] = recent
            if recent.count >= limit, let oldest = recent.first { wait = max(wait, window - now.timeIntervalSince(oldest)) }
        }
        return wait > 0 ? Int(wait.rounded(.up)) : nil
    }

    func failed(_ keys: [String], now: Date = Date()) { for k in keys { failures[k, default: []].append(now) } }
    func succeeded(_ keys: [String]) { for k in keys { failures[k] = nil } }
}

struct LoginPage {
    let chrome: Chrome
    let name: String
    let next: String
    let error: String?
}

struct AuthController {
    let services: Services

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("login") { request, context in
            services.views.render("login", LoginPage(chrome: Chrome(context, section: ""), name: "",
                                                     next: safeNext(request.uri.queryParameters["next"].map(String.init)), error: nil))
        }
        group.post("login") { request, context in try await login(request, context) }
        group.post("logout") { request, context in
            guard sameOrigin(request) else { throw HTTPError(.forbidden, message: "Sign-out from another site was refused.") }
            if let cookie = request.cookies[sessionCookie]?.value { try services.store.deleteSession(cookie: cookie) }
            var response = Response.redirect(to: "/login")
            response.setCookie(Cookie(name: sessionCookie, value: "", maxAge: 0, path: "/", secure: services.config.secureCookies,
                                      httpOnly: true, sameSite: .strict))
            return response
        }
    }

    func login(_ request: Request, _ context: AppContext) async throws -> Response {
        // No session exists yet, so no CSRF token: a cross-site Origin is refused instead.
        guard sameOrigin(request) else { throw HTTPError(.forbidden, message: "Sign-in from another site was refused.") }
        let form = FormFields(urlEncoded: String(buffer: try await request.body.collect(upTo: 64 * 1024)))
        let name = form["name"].trimmingCharacters(in: .whitespaces)
        let next = safeNext(form["next"])
        func page(_ error: String, _ status: HTTPResponse.Status) -> Response {
            services.views.render("login", LoginPage(chrome: Chrome(context, section: ""), name: name, next: next, error: error), status: status)
        }
        let keys = ["user:" + name.lowercased(), "ip:" + context.remoteIP]
        if let wait = await services.throttle.retryAfter(keys) {
            var r = page("Too many failed sign-ins. Try again in \(max(1, wait / 60)) minute(s).", .tooManyRequests)
            r.headers[HTTPField.Name("Retry-After")!] = String(wait)
            return r
        }
        let password = form["password"]
        let user = try services.store.user(named: name)
        // Verify against a dummy hash when the user is unknown, so timing does not reveal names.
        let hash = user?.passwordHash ?? "$2b$12$C6UzMDM.H6dfI/f/IKxGhuN0T8a0K4RRtQWlDEWa3RxLQNtcqQz7S"
        let ok = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
        guard ok, let user else {
            await services.throttle.failed(keys)
            return page("The user name or password is wrong.", .unauthorized)
        }
        await services.throttle.succeeded(keys)
        let (cookie, _) = try services.store.createSession(userId: user.id!, lifetime: 12 * 3600)
        var response = Response.redirect(to: next)
        response.setCookie(Cookie(name: sessionCookie, value: cookie, maxAge: 12 * 3600, path: "/",
                                  secure: services.config.secureCookies, httpOnly: true, sameSite: .strict))
        return response
    }
}

/// Only same-site paths are followed after sign-in.
func safeNext(_ next: String?) -> String {
    guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\") else { return "/apps" }
    return next
}
