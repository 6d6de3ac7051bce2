import CourierArchive
import CourierCore
import CourierStore
import Foundation
import Hummingbird

struct SettingsPage {
    let chrome: Chrome
    let virtualDomain: String?
    let domainValue: String
    let globalHost: String
    let appKey: String
    let globalLocked: Bool
    let keyFingerprint: String?
    let keyBits: Int
    let packageCount: Int
    let errors: [String: String]
    let notice: String?
    let separateContentHost: Bool
    let consoleURL: String
    let publicURL: String
    let sameSiteWarning: Bool
}

struct SettingsController {
    let services: Services
    var settings: CourierSettings { CourierSettings(store: services.store) }

    func addRoutes(to group: RouterGroup<AppContext>) {
        group.get("settings") { request, context -> Response in
            _ = try context.require(.admin)
            return try page(context, notice: request.uri.queryParameters["saved"].map { notices[String($0)] ?? "" })
        }
        group.post("settings/virtual-domain") { _, context in
            _ = try context.require(.admin)
            do {
                _ = try settings.setVirtualDomain(context.form["virtualDomain"], confirmed: context.form.isChecked("confirm"))
                return Response.redirect(to: "/settings?saved=domain")
            } catch let e as FieldError {
                return try page(context, errors: [e.field: e.message], status: .unprocessableContent)
            } catch let e as SettingsConflict {
                return try page(context, errors: ["virtualDomain": e.description], status: .conflict)
            }
        }
        group.post("settings/global") { _, context in
            _ = try context.require(.admin)
            do {
                _ = try settings.setGlobalLocation(host: context.form["globalHost"], appKey: context.form["appKey"])
                return Response.redirect(to: "/settings?saved=global")
            } catch let e as FieldErrors {
                return try page(context, errors: dictionary(e), status: .unprocessableContent)
            } catch let e as SettingsConflict {
                return try page(context, errors: ["globalHost": e.description], status: .conflict)
            }
        }
        group.post("settings/signing-key") { _, context in
            try await installKey(context) { try SigningKey(pem: context.form["privateKey"]) }
        }
        group.post("settings/signing-key/generate") { _, context in
            try await installKey(context) { try SigningKey.generate() }
        }
    }

    var notices: [String: String] {
        ["domain": "The virtual domain is saved.", "global": "The global resource settings are saved.",
         "key": "The signing key is installed.", "key-resigned": "The signing key is installed and every package was re-signed with it."]
    }

    /// Installs the key `make` gives (uploaded or generated). Replacing an installed key needs
    /// the box ticked and the admin's current password, checked here: a page that somehow
    /// acts as a signed-in admin still cannot swap the key clients trust.
    func installKey(_ context: AppContext, _ make: () throws -> SigningKey) async throws -> Response {
        let user = try context.require(.admin)
        do {
            if try services.store.settings().signingKeyPEM != nil {
                var errors = FieldErrors()
                if !context.form.isChecked("confirmReplace") {
                    errors.append(FieldError("confirmReplace", "A key is already installed. Tick the box to confirm replacing it and re-signing every package."))
                }
                let password = context.form["currentPassword"]
                if password.isEmpty {
                    errors.append(FieldError("currentPassword", "Enter your current password to replace the signing key."))
                } else {
                    // Counted like sign-ins: a stolen session cannot guess the password here at bcrypt speed.
                    switch await services.throttle.reserve(name: user.name, address: context.remoteIP) {
                    case .failure(let wait):
                        errors.append(FieldError("currentPassword", "Too many wrong passwords. Try again in \(max(1, (wait.seconds + 59) / 60)) minute(s)."))
                    case .success(let ticket):
                        if try await services.passwords.verify(password, hash: user.passwordHash) {
                            await services.throttle.succeeded(ticket)
                        } else {
                            errors.append(FieldError("currentPassword", "That is not your current password. The key was not replaced."))
                        }
                    }
                }
                guard errors.isEmpty else { throw errors }
            }
            let (_, count) = try await settings.installKey(try make())
            return Response.redirect(to: "/settings?saved=key\(count > 0 ? "-resigned" : "")")
        } catch let e as FieldError {
            return try page(context, errors: [e.field: e.message], status: .unprocessableContent)
        } catch let e as FieldErrors {
            return try page(context, errors: dictionary(e), status: .unprocessableContent)
        }
    }

    func page(_ context: AppContext, errors: [String: String] = [:], notice: String? = nil,
              status: HTTPResponse.Status = .ok) throws -> Response {
        let s = try services.store.settings()
        let counts = try services.store.packageCounts()
        let bits = (try? services.signer.current(s))??.bits ?? 0
        let model = SettingsPage(
            chrome: Chrome(context, section: "settings"), virtualDomain: s.virtualDomain,
            domainValue: context.form["virtualDomain"],
            globalHost: context.form.has("globalHost") ? context.form["globalHost"] : (s.globalHost ?? ""),
            appKey: context.form.has("appKey") ? context.form["appKey"] : (s.appKey ?? ""),
            globalLocked: counts.global > 0,
            keyFingerprint: s.signingKeyFingerprint, keyBits: bits, packageCount: counts.all,
            errors: errors, notice: notice, separateContentHost: services.config.separateContentHost,
            consoleURL: services.config.consoleURL ?? services.config.publicURL, publicURL: services.config.publicURL,
            sameSiteWarning: services.config.contentHostIsSameSite && !services.config.secureCookies)
        return services.views.render("settings", model, status: status)
    }
}

func dictionary(_ errors: FieldErrors) -> [String: String] {
    var d: [String: String] = [:]
    for e in errors.errors where d[e.field] == nil { d[e.field] = e.message }
    return d
}
