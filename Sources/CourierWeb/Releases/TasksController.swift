import CourierDomain
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
            draft.type = TaskType.gray.rawValue
            draft.mode = ModeName.whitelist.rawValue
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
                return redirect(to: t, Self.outcome(created: t), context)
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await form(context, app: app, package: p, draft: draft, failure: failure, preview: nil)
            }
        }
        routes.get(.batchRelease, needs: .editReleases) { request, context in
            var draft = TaskDraft()
            draft.type = TaskType.gray.rawValue   // as on a package's own form: the release that reaches everyone is chosen, never assumed
            draft.mode = ModeName.whitelist.rawValue
            return try await batch(context, search: request.queryFields["q"], chosen: [], draft: draft,
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
        routes.get(.task, needs: .read) { request, context in
            try await page(context, failure: .none, notice: Notice.shown(request, for: context.user))
        }
        for (route, approve) in [(Route.taskApprove, true), (.taskReject, false)] {
            routes.post(route, needs: .approveReleases) { _, context in
                let t = try await task(context)
                do {
                    let decided = try await services.actions.decideTask(by: context.acting, task: t.id ?? 0, approve: approve,
                                                                        comment: context.form["comment"])
                    return redirect(to: decided, "Task \(t.id ?? 0) \(approve ? "approved" : "rejected").", context)
                } catch {
                    guard let failure = FormFailure(error) else { throw error }
                    return try await page(context, failure: failure, typedComment: context.form["comment"])
                }
            }
        }
        routes.get(.approvals, needs: .read) { _, context in
            let waiting = try await services.store.tasksAwaitingApproval()
            var packages: [Int64: PackageRecord] = [:]
            var releases: [String: AppReleases] = [:]
            for t in waiting {
                if packages[t.packageId] == nil, let p = try await services.store.package(t.appId, t.version) { packages[t.packageId] = p }
                if releases[t.appId] == nil { releases[t.appId] = AppReleases(try await services.store.tasks(of: t.appId)) }
            }
            var changes: [Int64: VersionChanges] = [:]
            for t in waiting {
                if let p = packages[t.packageId], let id = t.id { changes[id] = try await services.changesSinceLive(p, tasks: releases[t.appId]?.tasks ?? []) }
            }
            return services.views.render("approvals", ApprovalsPage(
                waiting, decided: try await services.store.recentlyDecided(limit: 20), packages: packages, releases: releases,
                whitelistNames: try await services.whitelistNames(), changes: changes, services: services, user: context.user,
                chrome: Chrome(context, section: .approvals)))
        }
        routes.post(.taskOperation, needs: .editReleases) { _, context in
            let t = try await task(context)
            let id = t.id ?? 0
            do {
                switch context.parameters.decoded("operation") ?? "" {
                case "delete":
                    try await services.actions.deleteTask(by: context.acting, task: id)
                    return Response.redirect(to: Route.package.path([t.appId, t.version],
                                                                    query: Notice.query("Task \(id) was deleted.", for: context.user)))
                case "percentage":
                    let changed = try await services.actions.setPercentage(by: context.acting, task: id, context.form["percentage"])
                    let waits = changed.state.wideningWaits
                    let share = String(format: "%g %%", changed.percentage ?? 0)
                    return redirect(to: changed, waits
                        ? "Task \(id)'s share is raised to \(share) — awaiting approval: "
                            + (changed.taskStatus == .paused ? "the task stays paused, and offers the wider share once approved and resumed."
                                                              : "this task offers \(changed.version) to no client until a reviewer approves it.")
                        : "Task \(id) now releases to \(share) of devices.", context)
                case let name:
                    guard let op = TaskOperation(routed: name) else { throw NotFound("There is no such task operation.") }
                    let done = try await services.actions.operate(by: context.acting, task: id, op)
                    return redirect(to: done, Self.outcome(of: op, done), context)
                }
            } catch {
                guard let failure = FormFailure(error) else { throw error }
                return try await page(context, failure: failure,
                                      typedPercentage: context.parameters.decoded("operation") == "percentage" ? context.form["percentage"] : nil)
            }
        }
    }

    /// Back to the task page, saying what happened; a request that waits for a reviewer is
    /// not shown as a success.
    func redirect(to t: TaskRecord, _ text: String, _ context: SignedInContext) -> Response {
        Response.redirect(to: Route.task.path([String(t.id ?? 0)],
                                              query: Notice.query(text, for: context.user, waiting: t.approvalState == .awaiting)))
    }

    static func outcome(created t: TaskRecord) -> String {
        let id = t.id ?? 0
        return t.approvalState == .awaiting
            ? "Task \(id) created — awaiting approval: clients are not offered \(t.version) until a reviewer approves it."
            : "Task \(id) created: \(t.isOfficial ? "an official" : "a grayscale") release of \(t.version), offered to clients now."
    }

    static func outcome(of op: TaskOperation, _ t: TaskRecord) -> String {
        let id = t.id ?? 0
        switch op {
        case .pause: return "Task \(id) paused: clients that have not updated are no longer offered \(t.version)."
        case .resume: return "Task \(id) resumed."
        case .finish: return "Task \(id) finished."
        case .promote:
            return t.state.promotionWaits
                ? "Task \(id)'s promotion to official — awaiting approval: the grayscale release goes on until a reviewer approves it."
                : "Task \(id) promoted: \(t.version) is now an official release, offered to every client in range."
        case .rollback: return "Task \(id) rolled back: \(t.version) is no longer offered."
        case .delete: return "Task \(id) was deleted."
        case .approve: return "Task \(id) approved."
        case .reject: return "Task \(id) rejected."
        case .changePercentage: return "Task \(id) now releases to " + String(format: "%g %%", t.percentage ?? 0) + " of devices."
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
                                                              failure: failure, preview: preview, rules: try await services.store.settings(),
                                                              chrome: Chrome(context, section: .apps)),
                                     status: failure.status)
    }

    func batch(_ context: SignedInContext, search: String, chosen: [String], draft: TaskDraft, failure: FormFailure, preview: String?,
               outcomes: [Actions.BatchOutcome]?) async throws -> Response {
        let candidates = try await services.store.batchReleaseCandidates(search: search, limit: Actions.maxBatch + 1)
        let lists = try await services.store.whitelistSummaries().map(\.0)
        return services.views.render("batch_release", BatchReleasePage(
            search: search, candidates: candidates, chosen: Set(chosen), draft: draft, whitelists: lists, failure: failure,
            preview: preview, outcomes: outcomes, rules: try await services.store.settings(), chrome: Chrome(context, section: .apps)),
            status: failure.status)
    }

    func page(_ context: SignedInContext, failure: FormFailure, typedComment: String = "", typedPercentage: String? = nil,
              notice: Notice.Shown? = nil) async throws -> Response {
        let t = try await task(context)
        let id = t.id ?? 0
        guard let p = try await services.store.package(t.appId, t.version), let app = try await services.store.app(t.appId) else {
            throw NotFound("The package of task \(id) is gone.")
        }
        let names = try await services.whitelistNames()
        let tasks = try await services.store.tasks(of: t.appId)
        let history = try await services.store.auditEntries(subject: String(id), actionPrefix: "task.")
        var model = TaskPage(t, app: app, package: p, whitelistNames: names, events: try await services.store.eventCounts(task: id),
                             admitted: try await services.store.admittedDevices(task: id),
                             history: history,
                             user: context.user, failure: failure, typedComment: typedComment, typedPercentage: typedPercentage,
                             unreadable: services.delivery.snapshot.targeting.unreadable(t.releaseTask),
                             releases: AppReleases(tasks), settings: try await services.store.settings(),
                             services: services, notice: notice, chrome: Chrome(context, section: .apps))
        model.changes = try await services.changesSinceLive(p, tasks: tasks)
        model.health = HealthView(t, hours: try await services.store.healthHours(task: id), history: history)
        model.failingDevices = services.delivery.recentFailures.of(task: id).map {
            TaskPage.FailingDevice(deviceId: $0.deviceId, what: $0.what, at: displayDate.string(from: $0.at), url: Simulation.link($0, app: t.appId))
        }
        return services.views.render("task", model, status: failure.status)
    }
}
