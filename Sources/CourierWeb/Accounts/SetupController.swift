import CourierCore
import CourierStore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers

/// First run without the command line (SPEC §7): while no user exists, `courier serve` prints a
/// one-time address with a random token; its page creates the first administrator and signs
/// them in. The address answers 404 once used, with a wrong token, or when a user exists.
public final class FirstRunSetup: Sendable {
    private let token: NIOLockedValueBox<String?>

    init(open: Bool) { token = NIOLockedValueBox(open ? TokenHash.randomSecret() : nil) }

    /// The address to print, while it still works.
    public var path: String? { token.withLockedValue { $0 }.map { Route.setup.path($0) } }

    func admits(_ candidate: String) -> Bool {
        token.withLockedValue { $0.map { constantTimeEqual($0, candidate) } ?? false }
    }

    func close() { token.withLockedValue { $0 = nil } }
}

struct SetupPage {
    let chrome: Chrome
    let action: String
    let name: String
    let errors: [String: String]
    let formError: String?
}

struct SetupController {
    let services: Services

    func addRoutes(to group: RouterGroup<AppContext>, table: RouteTable) {
        table.add(.init(method: .get, route: .setup, permission: nil, surface: .open))
        table.add(.init(method: .post, route: .setup, permission: nil, surface: .open))
        group.get(Route.setup.routerPath) { _, context in
            let token = try await open(context)
            return page(context, token: token, name: "", failure: .none)
        }
        group.post(Route.setup.routerPath) { request, context in
            let token = try await open(context)
            guard sameOrigin(request) else { throw HTTPError(.forbidden, message: "Setup from another site was refused.") }
            let form = FormFields(urlEncoded: String(buffer: try await request.body.collect(upTo: 64 * 1024)))
            let name = form["name"].trimmingCharacters(in: .whitespaces)
            do {
                var errors = FieldErrors()
                _ = errors.collect { () throws(FieldError) in try UserName.validateNew(name) }
                _ = errors.collect { () throws(FieldError) in try Password.validate(form["password"], repeated: form["password2"]) }
                guard errors.isEmpty else { throw errors }
                let hash = try await services.passwords.hash(form["password"])
                let user = try await services.store.createFirstAdmin(name: name, passwordHash: hash)
                services.setup.close()
                let (cookie, _) = try await services.store.createSession(userId: user.id!, lifetime: 12 * 3600)
                var response = Response.redirect(to: Route.apps.path())
                response.setCookie(Cookie(name: services.config.sessionCookie, value: cookie, maxAge: 12 * 3600, path: "/",
                                          secure: services.config.secureCookies, httpOnly: true, sameSite: .strict))
                return response
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return page(context, token: token, name: name, failure: failure)
            }
        }
    }

    /// The token of a setup address that still works; 404 otherwise.
    func open(_ context: AppContext) async throws -> String {
        let token = context.parameters.decoded("token") ?? ""
        guard services.setup.admits(token) else { throw NotFound("There is no such page.") }
        guard try await services.store.userCount() == 0 else {
            services.setup.close()   // a user was added meanwhile (courier user add)
            throw NotFound("There is no such page.")
        }
        return token
    }

    func page(_ context: AppContext, token: String, name: String, failure: FormFailure) -> Response {
        services.views.render("setup", SetupPage(chrome: Chrome(context, section: .none), action: Route.setup.path(token), name: name,
                                                 errors: failure.fields, formError: failure.formError),
                              status: failure.status)
    }
}
