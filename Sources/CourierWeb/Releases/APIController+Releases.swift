import CourierCore
import CourierStore
import Foundation
import Hummingbird

struct WhitelistJSON: Encodable {
    let id: Int64
    let name: String
    let kind: String
    let count: Int
    let values: [String]?
}

/// A task's release health (SPEC §8): its hours since it began, the failure rate and its bound.
struct HealthJSON: Encodable {
    struct Hour: Encodable {
        let at: Date
        let checks: Int, downloads: Int, installs: Int, verifyFailed: Int, installFailed: Int, trialFailed: Int, rollbacks: Int
    }
    let hours: [Hour]
    let failureRate: Double?
    let failureRateLow: Double?
    let installs: Int
    let failures: Int
    let healthThreshold: Double?

    init(_ t: TaskRecord, hours stored: [HealthHour], now: Date = Date()) {
        let health = ReleaseHealth(hours: stored)
        let first = Int64(t.createdAt.timeIntervalSince1970 / 3600)
        hours = health.filled(from: first, to: max(first, Int64(now.timeIntervalSince1970 / 3600), stored.last?.hour ?? first)).map { h in
            Hour(at: h.start, checks: h.checks, downloads: h.downloads, installs: h.installs, verifyFailed: h.verifyFailed,
                 installFailed: h.installFailed, trialFailed: h.trialFailed, rollbacks: h.rollbacks)
        }
        failureRate = health.failureRate
        failureRateLow = health.failureRateLow
        installs = health.installs
        failures = health.failures
        healthThreshold = (try? t.rampPlan())?.threshold
    }
}

struct TaskJSON: Encodable {
    struct Rule: Encodable { let field: String; let op: String; let values: [String] }
    let id: Int64
    let appId: String
    let version: String
    let type: String
    let mode: String?
    let status: String
    let rolledBack: Bool
    let whitelistIds: [Int64]?
    let endTime: Date?
    let userCount: Int?
    let admitted: Int?
    let percentage: Double?
    let rules: [Rule]
    let description: String
    let descriptionHtml: String
    let events: [String: Int]
    let createdBy: String
    let createdAt: Date
    let approval: Approval?
    /// Why the stored task cannot be read by this binary (it then offers nothing); absent when it can be.
    let unreadable: String?
    /// A percentage task's ramp (SPEC §5): its steps, threshold, steps taken and next due time.
    let ramp: Ramp?
    struct Ramp: Encodable {
        let steps: [RampPlan.Step]
        let healthThreshold: Double
        let stepsTaken: Int
        let nextDue: Date?
    }

    /// What a reviewer was asked and what they decided (SPEC §7).
    struct Approval: Encodable {
        let state: String
        let request: String
        let requestedBy: String?
        let requestedAt: Date?
        let decidedBy: String?
        let decidedAt: Date?
        let comment: String
        let commentHtml: String
    }

    init(_ t: TaskRecord, events: [String: Int], admitted: Int) {
        ramp = (try? t.rampPlan()).map { Ramp(steps: $0.steps, healthThreshold: $0.threshold, stepsTaken: $0.done, nextDue: $0.nextDue) }
        id = t.id ?? 0; appId = t.appId; version = t.version; type = t.type
        mode = t.mode.isEmpty ? nil : t.mode
        status = t.status; rolledBack = t.rolledBack
        whitelistIds = t.modeName == .whitelist ? t.whitelistIdList : nil
        endTime = t.endTime; userCount = t.userCount
        self.admitted = t.modeName == .timeWindow ? t.admittedCount ?? admitted : nil
        percentage = t.percentage
        rules = t.targetingRules.map { Rule(field: $0.field.rawValue, op: $0.op.rawValue, values: $0.values) }
        description = t.descriptionMarkdown
        descriptionHtml = Markdown.html(t.descriptionMarkdown)
        self.events = events
        createdBy = t.createdBy; createdAt = t.createdAt
        unreadable = t.unreadable
        approval = t.approval.isEmpty ? nil : Approval(
            state: t.approval, request: t.approvalFor, requestedBy: t.requestedBy, requestedAt: t.requestedAt, decidedBy: t.decidedBy,
            decidedAt: t.decidedAt, comment: t.decisionComment, commentHtml: Markdown.html(t.decisionComment))
    }
}

/// The whitelist and task rows of SPEC §8: the same actions as the console.
extension APIController {
    func addReleaseRoutes(to routes: SignedInRoutes) {
        routes.get(.apiWhitelists, needs: .read) { _, _ in
            try json(["whitelists": try await services.store.whitelistSummaries().map {
                WhitelistJSON(id: $0.0.id ?? 0, name: $0.0.name, kind: $0.0.kind, count: $0.count, values: nil)
            }])
        }
        routes.post(.apiWhitelists, needs: .editReleases) { request, context in
            struct Body: Decodable { let name: String?; let kind: String?; let values: [String]? }
            let body = try await decode(Body.self, request, limit: 8 << 20)
            let values = Set((body.values ?? []).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            let w = try await services.actions.createWhitelist(by: context.acting, name: body.name ?? "", kind: body.kind ?? "", values: values)
            return try json(WhitelistJSON(id: w.id ?? 0, name: w.name, kind: w.kind, count: values.count, values: nil), status: .created)
        }
        routes.post(.apiWhitelistValues, needs: .editReleases) { request, context in
            struct Body: Decodable { let values: [String] }
            let body = try await decode(Body.self, request, limit: 8 << 20)
            let (added, waiting) = try await services.actions.addWhitelistValues(
                by: context.acting, id: try whitelistID(context),
                values: Set(body.values.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }))
            struct Added: Encodable { let added: Int; let awaitingApproval: [Int64] }
            return try json(Added(added: added, awaitingApproval: waiting))
        }
        routes.delete(.apiWhitelist, needs: .editReleases) { _, context in
            try await services.actions.deleteWhitelist(by: context.acting, id: try whitelistID(context))
            return Response(status: .noContent)
        }
        routes.post(.apiPackageTasks, needs: .editReleases) { request, context in
            let draft = try TaskDraft(json: Data(buffer: try await request.body.collect(upTo: 64 * 1024)))
            let task = try await services.actions.createTask(by: context.acting, appId: context.parameters.decoded("id") ?? "",
                                                             version: context.parameters.decoded("version") ?? "", draft: draft)
            return try json(try await taskJSON(task), status: .created)
        }
        routes.get(.apiTask, needs: .read) { _, context in
            try json(try await taskJSON(try await task(context)))
        }
        routes.get(.apiTaskHealth, needs: .read) { _, context in
            let t = try await task(context)
            return try json(HealthJSON(t, hours: try await services.store.healthHours(task: t.id ?? 0)))
        }
        routes.patch(.apiTask, needs: .editReleases) { request, context in
            struct Body: Decodable { let percentage: Double }
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            // Only the percentage changes after creation: a key that would change who is admitted
            // (rules, lists, a time window's count, the type) is refused, never silently ignored.
            if let object = try? JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any],
               let other = object.keys.sorted().first(where: { $0 != "percentage" }) {
                throw FieldError(other, "Only a grayscale task's percentage can be changed (“\(other.prefix(40))” is fixed when the task is created): finish this task and create another.")
            }
            let body = try JSONDecoder().decode(Body.self, from: Data(buffer: buffer))
            let t = try await services.actions.setPercentage(by: context.acting, task: try await task(context).id ?? 0, String(body.percentage))
            return try json(try await taskJSON(t))
        }
        routes.delete(.apiTask, needs: .editReleases) { _, context in
            try await services.actions.deleteTask(by: context.acting, task: try await task(context).id ?? 0)
            return Response(status: .noContent)
        }
        for (route, approve) in [(Route.apiTaskApprove, true), (.apiTaskReject, false)] {
            routes.post(route, needs: .approveReleases) { request, context in
                struct Body: Decodable { let comment: String? }
                let buffer = try await request.body.collect(upTo: 64 * 1024)
                let body = buffer.readableBytes == 0 ? Body(comment: nil) : try JSONDecoder().decode(Body.self, from: Data(buffer: buffer))
                let t = try await services.actions.decideTask(by: context.acting, task: try await task(context).id ?? 0, approve: approve,
                                                              comment: body.comment ?? "")
                return try json(try await taskJSON(t))
            }
        }
        routes.post(.apiTaskOperation, needs: .editReleases) { _, context in
            guard let op = TaskOperation(routed: context.parameters.decoded("operation") ?? "") else {
                throw NotFound("Task operations are pause, resume, finish, promote and rollback.")
            }
            let t = try await services.actions.operate(by: context.acting, task: try await task(context).id ?? 0, op)
            return try json(try await taskJSON(t))
        }
    }

    func whitelistID(_ context: SignedInContext) throws -> Int64 {
        guard let id = context.parameters.decoded("whitelist").flatMap({ Int64($0) }) else { throw NotFound("There is no such whitelist.") }
        return id
    }

    func task(_ context: SignedInContext) async throws -> TaskRecord {
        guard let id = context.parameters.decoded("task").flatMap({ Int64($0) }), let t = try await services.store.task(id) else {
            throw NotFound("There is no such task.")
        }
        return t
    }

    func taskJSON(_ t: TaskRecord) async throws -> TaskJSON {
        TaskJSON(t, events: try await services.store.eventCounts(task: t.id ?? 0), admitted: try await services.store.admittedDevices(task: t.id ?? 0))
    }
}
