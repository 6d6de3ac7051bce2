import CourierStore
import Crypto
import Foundation
import Hummingbird

/// The one-line notice a page shows after a redirect ("Whitelist beta was deleted."). It travels
/// in the redirect's query with a MAC of this process over the text and the signed-in user it
/// was made for, so a link made elsewhere cannot put its own words on someone's page in the
/// console's voice (`?notice=Your session expired, sign in at …`), not even a notice made for
/// its maker from words they chose (a whitelist's name): an unsigned, altered or someone else's
/// notice is not shown.
enum Notice {
    /// This process's key (SystemRandomNumberGenerator reads getrandom).
    private static let key: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }

    /// The query pairs to add to a redirect. A `waiting` notice says something still waits (for
    /// a reviewer): it is not styled as a success.
    static func query(_ text: String, for user: UserRecord, waiting: Bool = false) -> [(String, String)] {
        [("notice", text)] + (waiting ? [("nw", "1")] : []) + [("ns", mac(text, user: user, waiting: waiting))]
    }

    /// The notice of this request, when this process signed it.
    static func read(_ request: Request, for user: UserRecord) -> String? { shown(request, for: user)?.text }

    /// The notice and how to style it.
    static func shown(_ request: Request, for user: UserRecord) -> Shown? {
        guard let text = request.uri.queryParameters["notice"].map(String.init),
              let given = request.uri.queryParameters["ns"].map(String.init) else { return nil }
        let waiting = request.uri.queryParameters["nw"] == "1"
        // Our notices hold no control characters: one that does was not made here.
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }),
              constantTimeEqual(given, mac(text, user: user, waiting: waiting)) else { return nil }
        return Shown(text: text, style: waiting ? "notice waiting" : "notice")
    }

    struct Shown {
        let text: String
        /// The CSS classes of the notice's paragraph.
        let style: String
    }

    /// Over fixed fields first and the text last, so that no field can be shifted into another.
    private static func mac(_ text: String, user: UserRecord, waiting: Bool) -> String {
        let message = Data("\(user.id ?? 0)\u{0}\(user.name)\u{0}\(waiting ? "waiting" : "plain")\u{0}\(text)".utf8)
        return Data(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
