import CourierCore
import CourierStore
import Foundation
import Hummingbird
import Mustache

/// One entry of the console's navigation.
struct NavItem {
    let label: String
    let url: String
    let active: Bool
    let id: String
    /// A count beside the label (releases waiting for a reviewer), nil when there is none.
    var badge: String? = nil
}

/// A button at the head of a page, to another page: shown to those whose role may do what it
/// leads to, when it leads somewhere (a nil URL: not now). A new page is linked from an
/// existing one by one entry in that page's list.
struct PageAction {
    let label: String
    let url: String
    let id: String
    let primary: Bool

    static func shown(to user: UserRecord, _ all: [(label: String, url: String?, id: String, needs: Permission, primary: Bool)]) -> [PageAction] {
        all.compactMap { a in
            guard let url = a.url, user.role.may(a.needs) else { return nil }
            return PageAction(label: a.label, url: url, id: a.id, primary: a.primary)
        }
    }
}

/// The console's frame: who is signed in, the CSRF token for forms, the navigation.
struct Chrome {
    enum Section { case none, apps, whitelists, approvals, simulate, settings, users, tokens, audit }

    let signedIn: Bool
    let userName: String
    let role: String
    let csrf: String
    let nav: [NavItem]
    let accountURL = Route.account.path()
    let homeURL = Route.apps.path()
    let logoutURL = Route.logout.path()
    let loginURL = Route.login.path()

    init(user: UserRecord?, csrf: String, section: Section, awaitingApprovals: Int? = nil) {
        signedIn = user != nil
        userName = user?.name ?? ""
        role = user?.role.rawValue ?? ""
        self.csrf = csrf
        let all: [(String, Route, Section, Permission, String)] = [
            ("H5 apps", .apps, .apps, .read, "nav-apps"),
            ("Whitelists", .whitelists, .whitelists, .read, "nav-whitelists"),
            ("Approvals", .approvals, .approvals, .read, "nav-approvals"),
            ("Simulator", .simulate, .simulate, .read, "nav-simulate"),
            ("Configuration", .settings, .settings, .editSettings, "nav-settings"),
            ("Users", .users, .users, .manageUsers, "nav-users"),
            ("API tokens", .tokens, .tokens, .read, "nav-tokens"),
            ("Audit log", .audit, .audit, .read, "nav-audit"),
        ]
        nav = user.map { user in
            all.filter { user.role.may($0.3) }.map {
                NavItem(label: $0.0, url: $0.1.path(), active: $0.2 == section, id: $0.4,
                        badge: $0.2 == .approvals ? awaitingApprovals.flatMap { $0 > 0 ? String($0) : nil } : nil)
            }
        } ?? []
    }

    init(_ context: SignedInContext, section: Section) {
        self.init(user: context.user, csrf: context.session?.csrfToken ?? "", section: section, awaitingApprovals: context.awaitingApprovals)
    }

    init(_ context: AppContext, section: Section) {
        self.init(user: context.user, csrf: context.session?.csrfToken ?? "", section: section, awaitingApprovals: context.awaitingApprovals)
    }
}

struct ErrorPage {
    let chrome: Chrome
    let status: Int
    let reason: String
    let message: String
    let signedIn: Bool
    /// The same ID as the server's log line for this request.
    let requestId: String
}

/// A form refused for reasons a person can fix: the errors next to their fields, and the one
/// that belongs to no field at the top of the form (never swallowed).
struct FormFailure {
    let status: HTTPResponse.Status
    let fields: [String: String]
    let formError: String?

    /// Nil for errors that are not about the form (refused, not found, server faults): those
    /// go to the error page.
    init?(_ error: Error) {
        guard let shown = PresentedError(error), [.unprocessableContent, .conflict, .contentTooLarge].contains(shown.status) || shown.status.code == 507 else {
            return nil
        }
        status = shown.status
        var fields: [String: String] = [:]
        var general: [String] = []
        for e in shown.fields {
            if e.field.isEmpty { general.append(e.message) } else if fields[e.field] == nil { fields[e.field] = e.message }
        }
        if shown.fields.isEmpty { general.append(shown.message) }
        self.fields = fields
        formError = general.isEmpty ? nil : general.joined(separator: " ")
    }

    static let none = FormFailure(status: .ok, fields: [:], formError: nil)
    private init(status: HTTPResponse.Status, fields: [String: String], formError: String?) {
        self.status = status
        self.fields = fields
        self.formError = formError
    }
}

/// Renders Mustache templates (HTML-escaped by default) into responses.
public struct Views: Sendable {
    let library: MustacheLibrary

    func render(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok) -> Response {
        guard let html = library.render(model, withTemplate: template) else {
            return Response(status: .internalServerError, headers: [.contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: "Missing template \(template)")))
        }
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func errorPage(status: HTTPResponse.Status, message: String, context: AppContext) -> Response {
        render("error", ErrorPage(chrome: Chrome(context, section: .none), status: status.code, reason: status.reasonPhrase,
                                  message: message, signedIn: context.user != nil, requestId: context.id), status: status)
    }
}

/// Byte counts as people read them.
func humanSize(_ bytes: Int64) -> String {
    let units = ["B", "KB", "MB", "GB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

let displayDate: DateFormatter = {
    let f = DateFormatter()
    f.dateFormat = "yyyy-MM-dd HH:mm"
    f.timeZone = TimeZone(identifier: "UTC")
    f.locale = Locale(identifier: "en_US_POSIX")
    return f
}()

/// A list's position and the links to the pages around it (the apps list, the audit log).
struct Pager {
    let total: Int
    let page: Int
    let pageCount: Int
    let prevURL: String?
    let nextURL: String?

    init<T>(_ page: Page<T>, link: (Int) -> String) {
        total = page.total
        self.page = page.page
        pageCount = page.pageCount
        prevURL = page.page > 1 ? link(page.page - 1) : nil
        nextURL = page.page < page.pageCount ? link(page.page + 1) : nil
    }
}
