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
            page(context, failure: .none, notice: Notice.read(request, for: context.user))
        }
        routes.post(.account, needs: .read) { _, context in
            do {
                var errors = FieldErrors()
                let f = context.form
                _ = errors.collect { () throws(FieldError) in try Password.validate(f["password"], repeated: f["password2"], new: true) }
                if let refused = try await services.checkCurrentPassword(context, missing: "Enter your current password.",
                                                                         wrong: "That is not your current password.") {
                    errors.append(refused)
                }
                guard errors.isEmpty else { throw errors }
                try await services.store.changeOwnPassword(context.user.name, passwordHash: try await services.passwords.hash(f["password"]),
                                                           keep: context.session?.idHash, by: context.acting)
                return Response.redirect(to: Route.account.path([], query: Notice.query("Your password was changed; your other sessions were signed out.", for: context.user)))
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

extension Services {
    /// Checks the `currentPassword` field against the signed-in user's password, counted like a
    /// sign-in (a stolen session cannot guess the password at bcrypt speed); nil when it matches.
    func checkCurrentPassword(_ context: SignedInContext, missing: String, wrong: String) async throws -> FieldError? {
        let password = context.form["currentPassword"]
        guard !password.isEmpty else { return FieldError("currentPassword", missing) }
        switch try await throttle.reserve(name: context.user.name, address: context.remoteIP) {
        case .failure(let wait):
            return FieldError("currentPassword", "Too many wrong passwords. Try again in \(max(1, (wait.seconds + 59) / 60)) minute(s).")
        case .success(let ticket):
            guard try await passwords.verify(password, hash: context.user.passwordHash) else { return FieldError("currentPassword", wrong) }
            try await throttle.succeeded(ticket)
            return nil
        }
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
