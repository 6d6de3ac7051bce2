import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// The Users page (SPEC §7, administrators): add a user with a role, change a role, disable and
/// enable (a disabled user's sessions and tokens stop at once), reset a password. The last
/// active administrator can be neither demoted nor disabled.
struct UsersController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.users, needs: .manageUsers) { request, context in
            try await page(context, failure: .none, typed: nil, notice: Notice.read(request, for: context.user))
        }
        routes.post(.users, needs: .manageUsers) { _, context in
            let f = context.form
            return try await act(context, typed: f) {
                guard let role = Role(rawValue: f["role"]) else { throw FieldError("role", "Choose a role: admin, developer or reviewer.") }
                let u = try await services.actions.addUser(by: context.acting, name: f["name"], password: f["password"], role: role)
                return "User \(u.name) was added as \(u.role.rawValue)."
            }
        }
        routes.post(.userRole, needs: .manageUsers) { _, context in
            try await act(context) {
                let u = try await services.actions.setRole(by: context.acting, name: name(context), role: context.form["role"])
                return "\(u.name) is now \(u.role.rawValue)."
            }
        }
        routes.post(.userDisable, needs: .manageUsers) { _, context in
            try await act(context) {
                let u = try await services.actions.setDisabled(by: context.acting, name: name(context), true)
                return "\(u.name) is disabled: their sessions and tokens no longer work."
            }
        }
        routes.post(.userEnable, needs: .manageUsers) { _, context in
            try await act(context) {
                let u = try await services.actions.setDisabled(by: context.acting, name: name(context), false)
                return "\(u.name) is enabled again."
            }
        }
        routes.post(.userPassword, needs: .manageUsers) { _, context in
            try await act(context) {
                do {
                    let revoke = context.form["revokeTokens"] == "true"
                    let u = try await services.actions.resetPassword(by: context.acting, name: name(context), password: context.form["password"],
                                                                     revokeTokens: revoke)
                    return "\(u.name) has a new password; their sessions were ended"
                        + (revoke ? " and their API tokens revoked." : ". Their API tokens still work: revoke them on the API tokens page if the account was misused.")
                } catch let e as FieldError {
                    // Shown above the table, not by the Add form; the name only when it is one.
                    let who = (try? UserName.validate(name(context))).map { "\($0): " } ?? ""
                    throw FieldError.aboutTheForm(who + e.message)
                }
            }
        }
    }

    func name(_ context: SignedInContext) -> String { context.parameters.decoded("name") ?? "" }

    /// Runs a change, then shows the page with its notice, or with the refusal.
    func act(_ context: SignedInContext, typed: FormFields? = nil, _ body: () async throws -> String) async throws -> Response {
        do {
            let notice = try await body()
            return Response.redirect(to: Route.users.path([], query: Notice.query(notice, for: context.user)))
        } catch {
            guard let failure = FormFailure(error) else { throw error }
            return try await page(context, failure: failure, typed: typed, notice: nil)
        }
    }

    func page(_ context: SignedInContext, failure: FormFailure, typed: FormFields?, notice: String?) async throws -> Response {
        services.views.render("users", UsersPage(users: try await services.store.users(), me: context.user.name, failure: failure,
                                                 typed: typed, notice: notice, chrome: Chrome(context, section: .users)),
                              status: failure.status)
    }
}

struct UsersPage {
    struct Choice {
        let value: String
        let selected: Bool
    }
    struct Row {
        let name: String
        let role: String
        let roles: [Choice]
        let disabled: Bool
        let isMe: Bool
        let roleAction: String
        let disableAction: String
        let enableAction: String
        let passwordAction: String
        let created: String
    }

    let chrome: Chrome
    let rows: [Row]
    let notice: String?
    let formError: String?
    let errors: [String: String]
    let name: String
    let roles: [Choice]
    let action = Route.users.path()
    /// What each role may do.
    let roleSummaries: [Fact] = Role.allCases.map { Fact(label: $0.rawValue, value: $0.summary) }

    init(users: [UserRecord], me: String, failure: FormFailure, typed: FormFields?, notice: String?, chrome: Chrome) {
        self.chrome = chrome
        rows = users.map { u in
            Row(name: u.name, role: u.role.rawValue,
                roles: Role.allCases.map { Choice(value: $0.rawValue, selected: $0 == u.role) },
                disabled: u.disabled, isMe: u.name == me,
                roleAction: Route.userRole.path(u.name), disableAction: Route.userDisable.path(u.name),
                enableAction: Route.userEnable.path(u.name), passwordAction: Route.userPassword.path(u.name),
                created: displayDate.string(from: u.createdAt))
        }
        self.notice = notice
        formError = failure.formError
        errors = failure.fields
        name = typed?["name"] ?? ""
        let role = typed?["role"] ?? Role.developer.rawValue
        roles = Role.allCases.map { Choice(value: $0.rawValue, selected: $0.rawValue == role) }
    }
}
