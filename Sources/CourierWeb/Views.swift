import Foundation
import Hummingbird
import Mustache

/// The console's frame: who is signed in, the CSRF token for forms, which section is open.
struct Chrome {
    let signedIn: Bool
    let userName: String
    let role: String
    let csrf: String
    let isAdmin: Bool
    let appsActive: Bool
    let settingsActive: Bool

    init(_ context: AppContext, section: String) {
        signedIn = context.user != nil
        userName = context.user?.name ?? ""
        role = context.user?.role.rawValue ?? ""
        csrf = context.session?.csrfToken ?? ""
        isAdmin = context.user?.role == .admin
        appsActive = section == "apps"
        settingsActive = section == "settings"
    }
}

struct ErrorPage {
    let chrome: Chrome
    let status: Int
    let reason: String
    let message: String
    let signedIn: Bool
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
        render("error", ErrorPage(chrome: Chrome(context, section: ""), status: status.code, reason: status.reasonPhrase,
                                  message: message, signedIn: context.user != nil), status: status)
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
