import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// API tokens (SPEC §7): each person creates and revokes their own; administrators see and
/// revoke everyone's. A new token's secret is shown once, on the answer to its form.
struct TokensController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.tokens, needs: .read) { request, context in
            try await page(context, revoked: request.uri.queryParameters["revoked"].flatMap { Int64($0) })
        }
        routes.post(.tokens, needs: .read) { _, context in
            let f = context.form
            do {
                guard !f["name"].trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw FieldError("name", "Say what the token is for (its name in this list), e.g. “CI of the checkout app”.")
                }
                let scopes = TokenScope.allCases.filter { f.isChecked("scope-\($0.rawValue)") }.map(\.rawValue).joined(separator: ",")
                let secret = try await services.actions.createToken(by: context.acting, userName: context.user.name, name: f["name"],
                                                                   scopes: scopes, expires: f["expires"])
                return try await page(context, created: secret, status: .created)
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure)
            }
        }
        routes.post(.tokenRevoke, needs: .read) { _, context in
            guard let id = context.parameters.decoded("token").flatMap({ Int64($0) }) else { throw NotFound("There is no such API token.") }
            do {
                _ = try await services.actions.revokeToken(by: context.acting, id: id)
                return Response.redirect(to: Route.tokens.path([], query: [("revoked", String(id))]))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure)
            }
        }
    }

    func page(_ context: SignedInContext, failure: FormFailure = .none, revoked: Int64? = nil, created: String? = nil,
              status: HTTPResponse.Status? = nil) async throws -> Response {
        let everyone = context.user.role.may(.manageUsers)
        let tokens = try await services.store.tokens(of: everyone ? nil : context.user.name)
        // Only a token this person can see is named in the notice.
        let notice = revoked.flatMap { id in tokens.first { $0.0.id == id && $0.0.revokedAt != nil } }.map { t, _ in
            "API token “\(t.name.isEmpty ? String(t.id ?? 0) : t.name)” is revoked: it no longer opens the API."
        }
        let model = TokensPage(tokens: tokens, everyone: everyone, me: context.user.name, form: created != nil ? FormFields() : context.form,
                               failure: failure, notice: notice, created: created, chrome: Chrome(context, section: .tokens))
        return services.views.render("tokens", model, status: status ?? failure.status)
    }
}

/// The API tokens page: the list, the form, and a new token's secret once.
struct TokensPage {
    struct Row {
        let id: Int64
        let name: String
        let user: String
        let scopes: String
        let created: String
        let expires: String
        let lastUsed: String
        let state: String
        let stateKey: String
        let revokeAction: String?
    }
    struct Scope {
        let value: String
        let checked: Bool
    }
    let chrome: Chrome
    let rows: [Row]
    let everyone: Bool
    let created: String?
    let notice: String?
    let errors: [String: String]
    let formError: String?
    let name: String
    let expires: String
    let scopes: [Scope]
    let action = Route.tokens.path()
    let today: String

    init(tokens: [(APITokenRecord, user: String)], everyone: Bool, me: String, form: FormFields, failure: FormFailure,
         notice: String?, created: String?, chrome: Chrome, now: Date = Date()) {
        self.chrome = chrome
        self.everyone = everyone
        self.created = created
        self.notice = notice
        errors = failure.fields
        formError = failure.formError
        name = form["name"]
        expires = form["expires"]
        let typed = form.has("name") || form.has("expires")
        // The admin scope is offered to administrators only (`everyone`: they see every token).
        scopes = TokenScope.allCases.filter { $0 != .admin || everyone }.map { Scope(value: $0.rawValue, checked: typed ? form.isChecked("scope-\($0.rawValue)") : $0 == .read) }
        today = String(ISO8601DateFormatter().string(from: now).prefix(10))
        rows = tokens.map { t, user in
            let refusal = t.refusal(now: now)
            let state = t.revokedAt != nil ? "Revoked" : (refusal != nil ? "Expired" : "Active")
            return Row(id: t.id ?? 0, name: t.name.isEmpty ? "—" : t.name, user: user, scopes: t.scopeSet.map(\.rawValue).sorted().joined(separator: ", "),
                       created: displayDate.string(from: t.createdAt),
                       expires: t.expiresAt.map { "end of " + displayDate.string(from: $0.addingTimeInterval(-1)).prefix(10) } ?? "never",
                       lastUsed: t.lastUsedAt.map { displayDate.string(from: $0) } ?? "never",
                       state: state + (t.revokedBy.map { " by \($0)" } ?? ""), stateKey: state.lowercased(),
                       revokeAction: t.revokedAt == nil ? Route.tokenRevoke.path(String(t.id ?? 0)) : nil)
        }
    }
}
