import CourierCore
import CourierStore
import Foundation
import HTTPTypes
import Hummingbird

/// The headers every answer carries, whichever path made it: the router's middleware below and
/// the update API's event-loop path (`ClientFastPath`) both write these, and FastPathTests
/// fails when the router's answers carry a header the event-loop path's do not.
enum EveryAnswer {
    /// Browsers must not guess a type from content.
    static let headers: [(name: HTTPField.Name, value: String)] = [(.xContentTypeOptions, "nosniff")]
}

struct EveryAnswerMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        for h in EveryAnswer.headers { response.headers[h.name] = h.value }
        return response
    }
}

/// With a separate content host (`--console-url` on another host than `--public-url`), each
/// group of routes answers only on its own host, so package content never shares the console's
/// origin. With `host` nil (a shared origin) it lets everything through.
struct HostGate: RouterMiddleware {
    let host: String?
    let serves: String
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard Self.admits(authority: request.head.authority, host: host) else {
            throw HTTPError(.notFound, message: "This address does not serve \(serves).")
        }
        return try await next(request, context)
    }

    /// True when no host is set or the request names it (any port).
    static func admits(authority: String?, host: String?) -> Bool {
        guard let host else { return true }
        let asked = (authority ?? "").lowercased()
        let name = asked.hasPrefix("[") ? String(asked.prefix { $0 != "]" }.dropFirst()) : String(asked.split(separator: ":").first ?? "")
        return name == host
    }
}

/// Console pages only: fallback files are the apps' own pages and get their own headers.
struct SecurityHeadersMiddleware: RouterMiddleware {
    /// The configured console origin: the policy names it rather than the request's Host.
    let consoleOrigin: String
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        if response.headers[.contentType]?.hasPrefix("text/html") == true {
            // Scripts and styles only from /static: on a shared origin, 'self' would also admit
            // uploaded package files as console scripts.
            let assets = consoleOrigin == "'self'" ? "'self'" : consoleOrigin + "/static/"
            response.headers[.contentSecurityPolicy] = "default-src 'self'; script-src \(assets); style-src \(assets); img-src 'self' data:; "
                + "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
            response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
            response.headers[.cacheControl] = "no-store"
        }
        return response
    }
}


/// Loads the signed-in user from the session cookie; a request without one goes to login.
struct SessionMiddleware: RouterMiddleware {
    let store: Store
    let cookieName: String
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var context = context
        if let cookie = request.cookies[cookieName]?.value, let (session, user) = try await store.session(cookie: cookie) {
            context.session = session
            context.user = user
            if request.method == .get, user.role.may(.approveReleases) {
                context.awaitingApprovals = try await store.countAwaitingApproval()
            }
            return try await next(request, context)
        }
        let next = request.method == .get ? request.uri.path + (request.uri.query.map { "?" + $0 } ?? "") : "/"
        return Response.redirect(to: "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/"), type: .normal)
    }
}

/// Every state-changing console request carries the session's CSRF token: in the form body
/// for ordinary forms (the decoded form is handed on in the context), in the query string only
/// for streamed multipart uploads (their body is read later, by the route). A cross-site or
/// opaque Origin is refused in both cases.
struct CSRFMiddleware: RouterMiddleware {
    /// A pasted whitelist of 100,000 IDs fits.
    static let maxFormBytes = 8 << 20

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard request.method != .get, request.method != .head else { return try await next(request, context) }
        guard sameOrigin(request) else { throw HTTPError(.forbidden, message: "This form was sent from another site; it was refused.") }
        var context = context
        let expected = context.session?.csrfToken ?? ""
        let type = request.headers[.contentType]?.lowercased() ?? ""
        let sent: String
        if type.hasPrefix("application/x-www-form-urlencoded") {
            let body = try await request.body.collect(upTo: Self.maxFormBytes)
            context.form = FormFields(urlEncoded: String(buffer: body))
            sent = context.form["csrf"]
        } else if type.hasPrefix("multipart/form-data") {
            sent = request.uri.queryParameters["csrf"].map(String.init) ?? ""
        } else {
            sent = ""
        }
        guard !expected.isEmpty, constantTimeEqual(sent, expected) else {
            throw HTTPError(.forbidden, message: "The form has expired or did not come from this console. Reload the page and try again.")
        }
        return try await next(request, context)
    }
}

/// True unless the browser says the request comes from elsewhere: a different Origin, an
/// opaque one (`null`: sandboxed package pages, data: URLs), or a cross-site fetch. Requests
/// without these headers (curl, old browsers) pass; the CSRF token still guards them.
func sameOrigin(_ request: Request) -> Bool {
    if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" {
        return false
    }
    guard let origin = request.headers[.origin] else { return true }
    guard origin != "null" else { return false }
    guard let host = request.head.authority else { return false }
    return URL(string: origin).map { u in (u.host ?? "") + (u.port.map { ":\($0)" } ?? "") == host } ?? false
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
}

/// Console errors become an HTML page with the message and a way back.
struct HTMLErrorMiddleware: RouterMiddleware {
    let views: Views
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let shown = PresentedError.of(error, request, context)
            var response = views.errorPage(status: shown.status, message: shown.message, context: context)
            for h in shown.headers { response.headers.append(h) }
            return response
        }
    }
}
