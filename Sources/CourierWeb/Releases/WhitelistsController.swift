import CourierDomain
import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// The Whitelists pages: lists of user IDs, device IDs or user-ID expressions (SPEC §5).
struct WhitelistsController {
    let services: Services

    /// The list's kind, for reading pasted values.
    func kind(_ context: SignedInContext) async throws -> String {
        let listID = try id(context)
        return try await services.store.whitelistSummaries().first { $0.0.id == listID }?.0.kind ?? ""
    }

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.whitelists, needs: .read) { request, context in
            try await list(context, failure: .none, notice: Notice.read(request, for: context.user))
        }
        routes.post(.whitelists, needs: .editReleases) { _, context in
            do {
                let pasted = Actions.parseValueList(context.form["values"], kind: context.form["kind"])
                let values = Set(pasted)
                let w = try await services.actions.createWhitelist(by: context.acting, name: context.form["name"], kind: context.form["kind"],
                                                                   values: values)
                let dropped = pasted.count - values.count
                return Response.redirect(to: Route.whitelist.path([String(w.id ?? 0)], query: Notice.query(
                    "Whitelist \(w.name) was created with \(values.count) value\(values.count == 1 ? "" : "s")"
                        + (dropped > 0 ? "; \(dropped) duplicate\(dropped == 1 ? " was" : "s were") dropped." : "."), for: context.user)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await list(context, failure: failure, notice: nil)
            }
        }
        routes.get(.whitelist, needs: .read) { request, context in
            try await page(context, failure: .none, notice: Notice.shown(request, for: context.user))
        }
        routes.post(.whitelistValues, needs: .editReleases) { _, context in
            try await change(context) {
                let pasted = Actions.parseValueList(context.form["values"], kind: try await kind(context))
                let (n, waiting) = try await services.actions.addWhitelistValues(by: context.acting, id: try id(context), values: Set(pasted))
                let dropped = pasted.count - n
                return ("\(n) new value\(n == 1 ? "" : "s") added"
                    + (dropped > 0 ? "; \(dropped) duplicate\(dropped == 1 ? " was" : "s were") dropped (repeated, or already in the list)." : ".")
                    + (waiting.isEmpty ? "" : " Task\(waiting.count == 1 ? "" : "s") \(waiting.map(String.init).joined(separator: ", ")) "
                        + "had been approved for the list as it was: \(waiting.count == 1 ? "it waits" : "they wait") for a reviewer again, and clients are not offered \(waiting.count == 1 ? "it" : "them") meanwhile."),
                        waiting: !waiting.isEmpty)
            }
        }
        routes.post(.whitelistRemove, needs: .editReleases) { _, context in
            try await change(context) {
                let n = try await services.actions.removeWhitelistValues(by: context.acting, id: try id(context),
                                                                         values: Actions.parseValues(context.form["remove"], kind: try await kind(context)))
                return ("\(n) value\(n == 1 ? "" : "s") removed.", waiting: false)
            }
        }
        routes.post(.whitelistDelete, needs: .editReleases) { _, context in
            let whitelistID = try id(context)
            let name = try await services.store.whitelist(whitelistID)?.0.name ?? String(whitelistID)
            do {
                try await services.actions.deleteWhitelist(by: context.acting, id: whitelistID)
                return Response.redirect(to: Route.whitelists.path([], query: Notice.query("Whitelist \(name) was deleted.", for: context.user)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure, notice: nil)
            }
        }
    }

    func id(_ context: SignedInContext) throws -> Int64 {
        guard let id = context.parameters.decoded("whitelist").flatMap({ Int64($0) }) else { throw NotFound("There is no such whitelist.") }
        return id
    }

    func change(_ context: SignedInContext, _ action: () async throws -> (String, waiting: Bool)) async throws -> Response {
        do {
            let (notice, waiting) = try await action()
            return Response.redirect(to: Route.whitelist.path([String(try id(context))],
                                                              query: Notice.query(notice, for: context.user, waiting: waiting)))
        } catch {
            guard let failure = FormFailure(error) else { throw error }
            return try await page(context, failure: failure, notice: nil)
        }
    }

    func list(_ context: SignedInContext, failure: FormFailure, notice: String?) async throws -> Response {
        let all = try await services.store.whitelistSummaries()
        return services.views.render("whitelists", WhitelistsPage(all, form: context.form, failure: failure, notice: notice,
                                                                   user: context.user, chrome: Chrome(context, section: .whitelists)),
                                     status: failure.status)
    }

    func page(_ context: SignedInContext, failure: FormFailure, notice: Notice.Shown?) async throws -> Response {
        let whitelistID = try id(context)
        guard let (w, values) = try await services.store.whitelist(whitelistID) else {
            throw NotFound("There is no whitelist \(whitelistID).")
        }
        let users = try await services.store.allTasks().filter { !$0.taskStatus.hasEnded && $0.whitelistIdList.contains(whitelistID) }
        return services.views.render("whitelist", WhitelistPage(w, values: values, usedBy: users, form: context.form, failure: failure,
                                                                notice: notice, user: context.user, chrome: Chrome(context, section: .whitelists)),
                                     status: failure.status)
    }
}
