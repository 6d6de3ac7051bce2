import CourierCore
import CourierStore
import Foundation
import Hummingbird

/// The audit log in the console (SPEC §7): every change, newest first, filtered by app, user
/// and kind, paginated, exported as CSV; and whether the hash chain holds.
struct AuditController {
    let services: Services
    static let maxExport = 100_000

    func addRoutes(to routes: SignedInRoutes) {
        routes.get(.audit, needs: .read) { request, context in
            let filter = Self.filter(request)
            let page = request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1
            let rows = try await services.store.auditPage(filter, page: page)
            let (users, kinds) = try await services.store.auditChoices()
            let chain = try await services.store.verifyAudit()
            return services.views.render("audit", AuditPage(filter: filter, page: rows, users: users, kinds: kinds, chain: chain,
                                                            chrome: Chrome(context, section: .audit)))
        }
        routes.get(.auditCSV, needs: .read) { request, _ in
            let rows = try await services.store.auditRows(Self.filter(request), limit: Self.maxExport)
            var csv = "id,at,user,action,subject,detail,hash\r\n"
            for r in rows {
                csv += [String(r.id ?? 0), r.at, r.user, r.action, r.subject, r.detail, r.hash].map(Self.cell).joined(separator: ",") + "\r\n"
            }
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"courier-audit.csv\""],
                            body: .init(byteBuffer: ByteBuffer(string: csv)))
        }
    }

    /// `GET /api/v1/audit` (SPEC §8): the same filters and pages as the console.
    func addAPIRoutes(to routes: SignedInRoutes) {
        routes.get(.apiAudit, needs: .read) { request, _ in
            let page = try await services.store.auditPage(Self.filter(request), page: request.uri.queryParameters["page"].flatMap { Int($0) } ?? 1)
            struct Entry: Encodable { let id: Int64; let at: String; let user: String; let action: String; let subject: String; let detail: String }
            struct Body: Encodable { let entries: [Entry]; let page: Int; let pageCount: Int; let total: Int; let chainValid: Bool }
            let chain = try await services.store.verifyAudit()
            return try json(Body(entries: page.items.map { Entry(id: $0.id ?? 0, at: $0.at, user: $0.user, action: $0.action, subject: $0.subject,
                                                                 detail: $0.detail) },
                                 page: page.page, pageCount: page.pageCount, total: page.total, chainValid: chain.isValid))
        }
    }

    static func filter(_ request: Request) -> AuditFilter {
        func q(_ name: String) -> String {
            String(request.queryFields[name].prefix(100))
        }
        return AuditFilter(app: q("app"), user: q("user"), kind: q("kind"))
    }

    /// One CSV cell (RFC 4180), with text a spreadsheet would run as a formula made plain.
    static func cell(_ text: String) -> String {
        var t = text
        if let first = t.first, "=+-@\t\r".contains(first) { t = "'" + t }
        guard t.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return t }
        return "\"" + t.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// The audit log page.
struct AuditPage {
    struct Row {
        let id: Int64
        let at: String
        let user: String
        let action: String
        let subject: String
        let subjectURL: String?
        /// What happened, in a sentence; the stored JSON stays for the CSV and the API.
        let sentence: String
        let detail: String
    }
    struct Choice {
        let value: String
        let selected: Bool
    }

    let chrome: Chrome
    let rows: [Row]
    let pager: Pager
    let app: String
    let users: [Choice]
    let kinds: [Choice]
    let chainHolds: Bool
    let chainSummary: String
    let csvURL: String
    let action = Route.audit.path()

    init(filter: AuditFilter, page: Page<AuditRecord>, users: [String], kinds: [String], chain: AuditVerification, chrome: Chrome) {
        self.chrome = chrome
        rows = page.items.map { r in
            Row(id: r.id ?? 0, at: r.at.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: ""),
                user: r.user, action: r.action, subject: AuditWords.subject(r), subjectURL: AuditWords.link(r),
                sentence: AuditWords.sentence(r), detail: r.detail == "{}" ? "" : r.detail)
        }
        var query: [(String, String)] = []
        if !filter.app.isEmpty { query.append(("app", filter.app)) }
        if !filter.user.isEmpty { query.append(("user", filter.user)) }
        if !filter.kind.isEmpty { query.append(("kind", filter.kind)) }
        pager = Pager(page) { Route.audit.path([], query: query + [("page", String($0))]) }
        app = filter.app
        self.users = users.map { Choice(value: $0, selected: $0 == filter.user) }
        self.kinds = kinds.map { Choice(value: $0, selected: $0 == filter.kind) }
        chainHolds = chain.isValid
        chainSummary = chain.summary
        csvURL = Route.auditCSV.path([], query: query)
    }
}
