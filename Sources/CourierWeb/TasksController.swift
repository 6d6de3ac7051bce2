import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// Release tasks in the console: the Create-release-task form and the task page (SPEC §5).
struct TasksController {
    let services: Services

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.newTask, needs: .editReleases) { _, context in
            let (app, p) = try await services.package(context)
            var draft = TaskDraft()
            draft.type = "gray"
            draft.mode = "whitelist"
            return try await form(context, app: app, package: p, draft: draft, failure: .none, preview: nil)
        }
        routes.post(.packageTasks, needs: .editReleases) { _, context in
            let (app, p) = try await services.package(context)
            let draft = TaskFormPage.draft(from: context.form)
            if context.form.has("preview") {
                return try await form(context, app: app, package: p, draft: draft, failure: .none, preview: Markdown.html(draft.description))
            }
            do {
                let t = try await services.actions.createTask(by: context.acting, appId: app.id, version: p.version, draft: draft)
                return Response.redirect(to: Route.task.path(String(t.id ?? 0)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await form(context, app: app, package: p, draft: draft, failure: failure, preview: nil)
            }
        }
        routes.get(.batchRelease, needs: .editReleases) { request, context in
            var draft = TaskDraft()
            draft.type = "gray"   // as on a package's own form: the release that reaches everyone is chosen, never assumed
            draft.mode = "whitelist"
            return try await batch(context, search: request.uri.queryParameters["q"].map(String.init) ?? "", chosen: [], draft: draft,
                                   failure: .none, preview: nil, outcomes: nil)
        }
        routes.post(.batchRelease, needs: .editReleases) { _, context in
            let draft = TaskFormPage.draft(from: context.form)
            let chosen = context.form.all("apps")
            let search = context.form["q"]
            if context.form.has("preview") {
                return try await batch(context, search: search, chosen: chosen, draft: draft, failure: .none,
                                       preview: Markdown.html(draft.description), outcomes: nil)
            }
            do {
                let outcomes = try await services.actions.batchRelease(by: context.acting, appIds: chosen, draft: draft)
                return try await batch(context, search: search, chosen: [], draft: draft, failure: .none, preview: nil, outcomes: outcomes)
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await batch(context, search: search, chosen: chosen, draft: draft, failure: failure, preview: nil, outcomes: nil)
            }
        }
        routes.get(.task, needs: .read) { _, context in try await page(context, failure: .none) }
        for (route, approve) in [(Route.taskApprove, true), (.taskReject, false)] {
            routes.post(route, needs: .approveReleases) { _, context in
                let t = try await task(context)
                do {
                    _ = try await services.actions.decideTask(by: context.acting, task: t.id ?? 0, approve: approve, comment: context.form["comment"])
                    return Response.redirect(to: Route.task.path(String(t.id ?? 0)))
                } catch {
                    guard let failure = FormFailure(error) else { throw error }
                    return try await page(context, failure: failure, typedComment: context.form["comment"])
                }
            }
        }
        routes.get(.approvals, needs: .read) { _, context in
            let waiting = try await services.store.tasksAwaitingApproval()
            return services.views.render("approvals", ApprovalsPage(waiting, user: context.user, chrome: Chrome(context, section: .approvals)))
        }
        routes.post(.taskOperation, needs: .editReleases) { _, context in
            let t = try await task(context)
            let id = t.id ?? 0
            do {
                switch context.parameters.decoded("operation") ?? "" {
                case "delete":
                    try await services.actions.deleteTask(by: context.acting, task: id)
                    return Response.redirect(to: Route.package.path(t.appId, t.version))
                case "percentage":
                    _ = try await services.actions.setPercentage(by: context.acting, task: id, context.form["percentage"])
                case let name:
                    guard let op = TaskOperation(rawValue: name) else { throw NotFound("There is no such task operation.") }
                    _ = try await services.actions.operate(by: context.acting, task: id, op)
                }
                return Response.redirect(to: Route.task.path(String(id)))
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure,
                                      typedPercentage: context.parameters.decoded("operation") == "percentage" ? context.form["percentage"] : nil)
            }
        }
    }

    func task(_ context: SignedInContext) async throws -> TaskRecord {
        guard let id = context.parameters.decoded("task").flatMap({ Int64($0) }), let t = try await services.store.task(id) else {
            throw NotFound("There is no such task.")
        }
        return t
    }

    func form(_ context: SignedInContext, app: AppRecord, package p: PackageRecord, draft: TaskDraft, failure: FormFailure,
              preview: String?) async throws -> Response {
        let open = try await services.store.tasks(of: app.id).first { $0.packageId == p.id && !$0.taskStatus.hasEnded }
        let lists = try await services.store.whitelistSummaries().map(\.0)
        return services.views.render("task_new", TaskFormPage(app: app, package: p, draft: draft, whitelists: lists, openTask: open,
                                                              failure: failure, preview: preview, chrome: Chrome(context, section: .apps)),
                                     status: failure.status)
    }

    func batch(_ context: SignedInContext, search: String, chosen: [String], draft: TaskDraft, failure: FormFailure, preview: String?,
               outcomes: [Actions.BatchOutcome]?) async throws -> Response {
        let candidates = try await services.store.batchReleaseCandidates(search: search, limit: Actions.maxBatch + 1)
        let lists = try await services.store.whitelistSummaries().map(\.0)
        return services.views.render("batch_release", BatchReleasePage(
            search: search, candidates: candidates, chosen: Set(chosen), draft: draft, whitelists: lists, failure: failure,
            preview: preview, outcomes: outcomes, chrome: Chrome(context, section: .apps)), status: failure.status)
    }

    func page(_ context: SignedInContext, failure: FormFailure, typedComment: String = "", typedPercentage: String? = nil) async throws -> Response {
        let t = try await task(context)
        let id = t.id ?? 0
        guard let p = try await services.store.package(t.appId, t.version), let app = try await services.store.app(t.appId) else {
            throw NotFound("The package of task \(id) is gone.")
        }
        let names = Dictionary(try await services.store.whitelistSummaries().compactMap { w, _ in w.id.map { ($0, w.name) } },
                               uniquingKeysWith: { a, _ in a })
        let model = TaskPage(t, app: app, package: p, whitelistNames: names, events: try await services.store.eventCounts(task: id),
                             admitted: services.delivery.ledger.count(id),
                             history: try await services.store.auditEntries(subject: String(id), actionPrefix: "task."),
                             user: context.user, failure: failure, typedComment: typedComment, typedPercentage: typedPercentage,
                             unreadable: services.delivery.snapshot.targeting.unreadable(t.releaseTask), chrome: Chrome(context, section: .apps))
        return services.views.render("task", model, status: failure.status)
    }
}
