import CourierCore
import CourierStore
import Foundation
import HTTPTypes
import Hummingbird

/// Console pages only: fallback files are the apps' own pages and keep their own behaviour.
struct SecurityHeadersMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        if response.headers[.contentType]?.hasPrefix("text/html") == true {
            response.headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
            response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
            response.headers[.cacheControl] = "no-store"
        }
        return response
    }
}

let sessionCookie = "courier_session"

/// Loads the signed-in user from the session cookie; a request without one goes to login.
struct SessionMiddleware: RouterMiddleware {
    let store: Store
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var context = context
        if let cookie = request.cookies[sessionCookie]?.value, let (session, user) = try store.session(cookie: cookie) {
            context.session = session
            context.user = user
            return try await next(request, context)
        }
        let next = request.method == .get ? request.uri.path + (request.uri.query.map { "?" + $0 } ?? "") : "/"
        return Response.redirect(to: "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/"), type: .normal)
    }
}

/// Every state-changing console request carries the session's CSRF token: in the form body
/// for ordinary forms (the decoded form is handed on in the context), in the query string for
/// streamed multipart uploads. A cross-site Origin is refused in both cases.
struct CSRFMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard request.method != .get, request.method != .head else { return try await next(request, context) }
        guard sameOrigin(request) else { throw HTTPError(.forbidden, message: "This form was sent from another site; it was refused.") }
        var context = context
        let expected = context.session?.csrfToken ?? ""
        let type = request.headers[.contentType]?.lowercased() ?? ""
        let sent: String
        if type.hasPrefix("application/x-www-form-urlencoded") {
            let body = try await request.body.collect(upTo: 1 << 20)
            context.form = FormFields(urlEncoded: String(buffer: body))
            sent = context.form["csrf"]
        } else {
            sent = request.uri.queryParameters["csrf"].map(String.init) ?? ""
        }
        guard !expected.isEmpty, constantTimeEqual(sent, expected) else {
            throw HTTPError(.forbidden, message: "The form has expired or did not come from this console. Reload the page and try again.")
        }
        return try await next(request, context)
    }
}

func sameOrigin(_ request: Request) -> Bool {
    guard let origin = request.headers[.origin], origin != "null" else { return true }
    guard let host = request.head.authority else { return false }
    return URL(string: origin).map { u in (u.host ?? "") + (u.port.map { ":\($0)" } ?? "") == host } ?? false
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
}

extension AppContext {
    /// Refuses the request unless the signed-in user (or token owner) has one of `roles`.
    func require(_ roles: Role...) throws -> UserRecord {
        guard let user else { throw HTTPError(.unauthorized, message: "Sign in first.") }
        guard roles.contains(user.role) else {
            throw HTTPError(.forbidden, message: "Your role (\(user.role.rawValue)) cannot do this; ask an administrator.")
        }
        return user
    }
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
