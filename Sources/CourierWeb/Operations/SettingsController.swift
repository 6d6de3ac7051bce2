import CourierDomain
import CourierArchive
import CourierCore
import CourierStore
import Foundation
import Hummingbird

struct SettingsController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.settings, needs: .editSettings) { request, context in
            try await page(context, notice: request.uri.queryParameters["saved"].map { Self.notices[String($0)] ?? "" })
        }
        routes.post(.virtualDomain, needs: .editSettings) { _, context in
            try await form(context) {
                _ = try await services.actions.setVirtualDomain(by: context.acting, context.form["virtualDomain"],
                                                          confirmed: context.form.isChecked("confirm"))
                return "domain"
            }
        }
        routes.post(.globalLocation, needs: .editSettings) { _, context in
            try await form(context) {
                _ = try await services.actions.setGlobalLocation(by: context.acting, host: context.form["globalHost"], appKey: context.form["appKey"])
                return "global"
            }
        }
        routes.post(.approvalSettings, needs: .editSettings) { _, context in
            try await form(context) {
                _ = try await services.actions.setApprovalRules(by: context.acting, official: context.form.isChecked("officialNeedsApproval"),
                                                                gray: context.form.isChecked("grayNeedsApproval"))
                return "approval"
            }
        }
        routes.post(.updateInterval, needs: .editSettings) { _, context in
            try await form(context) {
                _ = try await services.actions.setUpdateReqRate(by: context.acting, context.form["updateReqRate"])
                return "interval"
            }
        }
        routes.post(.webhookSettings, needs: .editSettings) { _, context in
            do {
                let hook = try await services.actions.setWebhook(by: context.acting, url: context.form["webhookUrl"])
                guard let hook else { return Response.redirect(to: Route.settings.path([], query: [("saved", "webhook-removed")])) }
                // The secret is shown on this answer only: it is not shown again.
                return try await page(context, notice: "The webhook is saved. Copy its secret now: it is not shown again.", newSecret: hook.secret)
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure)
            }
        }
        routes.post(.signingKey, needs: .editSigningKey) { _, context in
            let pem = context.form["privateKey"]
            return try await installKey(context) { try SigningKey(pem: pem) }
        }
        routes.post(.generateKey, needs: .editSigningKey) { _, context in
            try await installKey(context) { try SigningKey.generate() }
        }
    }

    static let notices = [
        "domain": "The virtual domain is saved.", "approval": "The approval rules are saved.", "global": "The global resource settings are saved.",
        "interval": "The update check interval is saved: devices read it from their next answer.",
        "webhook-removed": "The webhook is removed: no more events are sent.",
        "key": "The signing key is installed.", "key-resigned": "The signing key is installed and every package was re-signed with it.",
    ]

    /// Runs a form's action: on success back to the page with its notice, on a refusal the page
    /// again with the errors next to their fields.
    func form(_ context: SignedInContext, _ action: () async throws -> String) async throws -> Response {
        do {
            return Response.redirect(to: Route.settings.path([], query: [("saved", try await action())]))
        } catch {
            guard let failure = FormFailure(error) else { throw error }
            return try await page(context, failure: failure)
        }
    }

    /// Installs the key `make` gives (uploaded or generated). Replacing an installed key needs
    /// the box ticked and the admin's current password, checked here: a page that somehow
    /// acts as a signed-in admin still cannot swap the key clients trust.
    func installKey(_ context: SignedInContext, _ make: @escaping @Sendable () throws -> SigningKey) async throws -> Response {
        try await form(context) {
            if try await services.store.settings().signingKeyPEM != nil { try await confirmReplacement(context) }
            let (_, count) = try await services.actions.installSigningKey(by: context.acting, try await Actions.makeKey(make))
            return count > 0 ? "key-resigned" : "key"
        }
    }

    func confirmReplacement(_ context: SignedInContext) async throws {
        var errors = FieldErrors()
        if !context.form.isChecked("confirmReplace") {
            errors.append(FieldError("confirmReplace", "A key is already installed. Tick the box to confirm replacing it and re-signing every package."))
        }
        if let refused = try await services.checkCurrentPassword(context, missing: "Enter your current password to replace the signing key.",
                                                                 wrong: "That is not your current password. The key was not replaced.") {
            errors.append(refused)
        }
        guard errors.isEmpty else { throw errors }
    }

    func page(_ context: SignedInContext, failure: FormFailure = .none, notice: String? = nil, newSecret: String? = nil) async throws -> Response {
        let s = try await services.store.settings()
        let counts = try await services.store.packageCounts()
        var model = SettingsPage(settings: s, counts: counts,
                                 keyBits: (try? services.signer.current(s))??.bits ?? 0, config: services.config,
                                 form: context.form, failure: failure, notice: notice, chrome: Chrome(context, section: .settings))
        model.webhook = WebhookBox(try await services.store.webhook(), sender: services.webhook, newSecret: newSecret,
                                   typed: failure.fields["webhookUrl"] != nil ? context.form["webhookUrl"] : nil)
        return services.views.render("settings", model, status: failure.status)
    }
}

/// The webhook on the Configuration page: its address, the secret once, the last deliveries.
struct WebhookBox {
    struct Row {
        let at: String
        let event: String
        let attempts: Int
        let outcome: String
        let ok: Bool
    }
    let url: String
    let isSet: Bool
    let setLine: String?
    let newSecret: String?
    let deliveries: [Row]
    let hasDeliveries: Bool
    /// Said only when some were dropped (a 0 would still open the section).
    let dropped: String?
    let action = Route.webhookSettings.path()

    init(_ hook: Webhook?, sender: WebhookSender, newSecret: String?, typed: String?) {
        url = typed ?? hook?.url ?? ""
        isSet = hook != nil
        setLine = hook.map { "Set by \($0.setBy) on \(displayDate.string(from: $0.setAt)) UTC." }
        self.newSecret = newSecret
        let recent = sender.recent
        deliveries = recent.deliveries.map {
            Row(at: displayDate.string(from: $0.at) + " UTC", event: $0.event, attempts: $0.attempts, outcome: $0.outcome, ok: $0.ok)
        }
        hasDeliveries = !deliveries.isEmpty
        dropped = recent.dropped == 0 ? nil : recent.dropped == 1 ? "1 event was dropped" : "\(recent.dropped) events were dropped"
    }
}
