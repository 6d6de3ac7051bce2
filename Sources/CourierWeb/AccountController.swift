import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// Each person's own account (SPEC §7): change one's password, the current one required; every
/// other session of theirs ends.
struct AccountController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.account, needs: .read) { request, context in
            page(context, failure: .none, notice: request.uri.queryParameters["notice"].map(String.init))
        }
        routes.post(.account, needs: .read) { _, context in
            do {
                var errors = FieldErrors()
                let f = context.form
                if f["password"].count < 8 { errors.append(FieldError("password", "Give a new password of at least 8 characters.")) }
                else if f["password"] != f["password2"] { errors.append(FieldError("password2", "The two new passwords differ.")) }
                if f["currentPassword"].isEmpty {
                    errors.append(FieldError("currentPassword", "Enter your current password."))
                } else {
                    // Counted like sign-ins: a stolen session cannot guess the password here at bcrypt speed.
                    switch await services.throttle.reserve(name: context.user.name, address: context.remoteIP) {
                    case .failure(let wait):
                        errors.append(FieldError("currentPassword", "Too many wrong passwords. Try again in \(max(1, (wait.seconds + 59) / 60)) minute(s)."))
                    case .success(let ticket):
                        if try await services.passwords.verify(f["currentPassword"], hash: context.user.passwordHash) {
                            await services.throttle.succeeded(ticket)
                        } else {
                            errors.append(FieldError("currentPassword", "That is not your current password."))
                        }
                    }
                }
                guard errors.isEmpty else { throw errors }
                try await services.store.changeOwnPassword(context.user.name, passwordHash: try await services.passwords.hash(f["password"]),
                                                           keep: context.session?.idHash, by: context.acting)
                return Response.redirect(to: Route.account.path([], query: [("notice", "Your password was changed; your other sessions were signed out.")]))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return page(context, failure: failure, notice: nil)
            }
        }
    }

    func page(_ context: SignedInContext, failure: FormFailure, notice: String?) -> Response {
        services.views.render("account", AccountPage(chrome: Chrome(context, section: .none), name: context.user.name,
                                                     role: context.user.role.rawValue, action: Route.account.path(), notice: notice,
                                                     errors: failure.fields, formError: failure.formError),
                              status: failure.status)
    }
}

struct AccountPage {
    let chrome: Chrome
    let name: String
    let role: String
    let action: String
    let notice: String?
    let errors: [String: String]
    let formError: String?
}
