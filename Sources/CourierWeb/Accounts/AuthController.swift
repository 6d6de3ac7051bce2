import CourierStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import NIOConcurrencyHelpers
import NIOPosix

/// Failed sign-ins, counted per (name, address) and per address so that nobody can lock an
/// account from elsewhere: after 5 failures for one name from one address, or 20 from one
/// address whatever the names, within 15 minutes, that pair or address waits. An attempt is
/// reserved (counted as a failure) before its password is hashed, so parallel guesses cannot
/// all pass the check first; a success releases its own reservation and clears only its own
/// (name, address) pair. Nodes sharing a store count in its ledger (`SignInLedger`), so an
/// attacker gains nothing by spreading guesses over the nodes behind a balancer.
public actor LoginThrottle {
    public struct Ticket: Sendable {
        let pair: String
        let address: String
        let at: Date
        /// The shared ledger's id for this attempt.
        var id: String?
    }

    var attempts: [String: [Date]] = [:]
    let perPair = 5
    let perAddress = 20
    let window: TimeInterval = 15 * 60
    /// Bounds memory whatever is sent: names are cut to this length, keys to this count.
    static let maxNameLength = 64
    let maxKeys: Int

    /// Counts shared by every node, or nil: counted here, in memory.
    let ledger: (any SignInLedger)?

    public init(maxKeys: Int = 10_000, ledger: (any SignInLedger)? = nil) { self.maxKeys = maxKeys; self.ledger = ledger }

    /// Reserves an attempt, or answers how many seconds to wait.
    func reserve(name: String, address: String, now: Date = Date()) async throws -> Result<Ticket, Wait> {
        let address = Self.network(of: address)
        let pair = "pair:" + address + "\u{0}" + name.lowercased().prefix(Self.maxNameLength)
        let addr = "addr:" + address
        if let ledger {
            switch try await ledger.reserveSignIn([(pair, perPair), (addr, perAddress)], window: window, now: now) {
            case .reserved(let id): return .success(Ticket(pair: pair, address: addr, at: now, id: id))
            case .wait(let seconds): return .failure(Wait(seconds: max(1, Int(seconds.rounded(.up)))))
            }
        }
        var wait: TimeInterval = 0
        for (key, limit) in [(pair, perPair), (addr, perAddress)] {
            let recent = (attempts[key] ?? []).filter { now.timeIntervalSince($0) < window }
            attempts[key] = recent.isEmpty ? nil : recent
            if recent.count >= limit, let oldest = recent.first { wait = max(wait, window - now.timeIntervalSince(oldest)) }
        }
        if wait > 0 { return .failure(Wait(seconds: max(1, Int(wait.rounded(.up))))) }
        attempts[pair, default: []].append(now)
        attempts[addr, default: []].append(now)
        if attempts.count > maxKeys { prune(now) }
        return .success(Ticket(pair: pair, address: addr, at: now))
    }

    /// The password was right: this attempt does not count, and this pair starts afresh.
    func succeeded(_ ticket: Ticket) async throws {
        if let ledger, let id = ticket.id { return try await ledger.releaseSignIn(id, clearing: ticket.pair) }
        attempts[ticket.pair] = nil
        if var list = attempts[ticket.address], let i = list.firstIndex(of: ticket.at) {
            list.remove(at: i)
            attempts[ticket.address] = list.isEmpty ? nil : list
        }
    }

    /// Drops expired entries; if still too many (attempts from thousands of addresses), those
    /// whose last attempt is oldest: memory stays bounded whatever is sent.
    func prune(_ now: Date) {
        attempts = attempts.filter { _, dates in dates.contains { now.timeIntervalSince($0) < window } }
        guard attempts.count > maxKeys else { return }
        let oldest = attempts.sorted { ($0.value.last ?? .distantPast) < ($1.value.last ?? .distantPast) }
        for (key, _) in oldest.prefix(attempts.count - maxKeys * 9 / 10) { attempts[key] = nil }
    }

    var keyCount: Int { attempts.count }

    /// What one client controls: an IPv4 address, or the /64 of an IPv6 address (one host
    /// usually has a whole /64, so counting single IPv6 addresses would give it millions of tries).
    static func network(of address: String) -> String {
        guard address.contains(":") else { return address }
        let halves = address.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false).map {
            $0.split(separator: ":", omittingEmptySubsequences: true).map(String.init)
        }
        var groups = halves[0]
        if halves.count == 2 {
            groups += Array(repeating: "0", count: max(0, 8 - halves[0].count - halves[1].count)) + halves[1]
        }
        guard groups.count >= 4 else { return address }
        return groups.prefix(4).map { String(Int($0, radix: 16) ?? 0, radix: 16) }.joined(separator: ":") + "::/64"
    }

    public struct Wait: Error { let seconds: Int }
}

struct LoginPage {
    let chrome: Chrome
    let name: String
    let next: String
    let csrf: String
    let error: String?
    let action: String
    /// No user exists yet: say where the setup address is.
    var noUserYet = false
}


struct AuthController {
    let services: Services

    func addRoutes(to group: RouterGroup<AppContext>, table: RouteTable) {
        table.add(.init(method: .get, route: .login, permission: nil, surface: .open))
        table.add(.init(method: .post, route: .login, permission: nil, surface: .open))
        group.get(Route.login.routerPath) { request, context in
            let (token, cookie) = loginToken(request)
            var response = try await page(context, name: "", next: safeNext(request.uri.queryParameters["next"].map(String.init)),
                                          token: token, error: nil, status: .ok)
            if let cookie { response.setCookie(cookie) }
            return response
        }
        group.post(Route.login.routerPath) { request, context in try await login(request, context) }
    }

    /// Sign-out is a state change like any other: session and CSRF token required.
    func addSignedInRoutes(to routes: SignedInRoutes) {
        routes.post(.logout, needs: .read) { request, _ in
            if let cookie = request.cookies[services.config.sessionCookie]?.value { try await services.store.deleteSession(cookie: cookie) }
            var response = Response.redirect(to: Route.login.path())
            response.setCookie(Cookie(name: services.config.sessionCookie, value: "", maxAge: 0, path: "/", secure: services.config.secureCookies,
                                      httpOnly: true, sameSite: .strict))
            return response
        }
    }

    /// The browser's sign-in token, or a new one with the cookie that carries it.
    func loginToken(_ request: Request) -> (String, Cookie?) {
        if let existing = request.cookies[services.config.loginCookie]?.value, existing.count == 43,
           existing.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            return (existing, nil)
        }
        let token = TokenHash.randomSecret()
        return (token, Cookie(name: services.config.loginCookie, value: token, maxAge: 12 * 3600, path: "/",
                              secure: services.config.secureCookies, httpOnly: true, sameSite: .strict))
    }

    func page(_ context: AppContext, name: String, next: String, token: String, error: String?,
              status: HTTPResponse.Status) async throws -> Response {
        let noUserYet = try await services.store.userCount() == 0
        return services.views.render("login", LoginPage(chrome: Chrome(context, section: .none), name: name, next: next, csrf: token,
                                                        error: error, action: Route.login.path(), noUserYet: noUserYet),
                                     status: status)
    }

    func login(_ request: Request, _ context: AppContext) async throws -> Response {
        guard sameOrigin(request) else { throw HTTPError(.forbidden, message: "Sign-in from another site was refused.") }
        let form = FormFields(urlEncoded: String(buffer: try await request.body.collect(upTo: 64 * 1024)))
        let name = form["name"].trimmingCharacters(in: .whitespaces)
        let next = safeNext(form["next"])
        let (token, newCookie) = loginToken(request)
        func answer(_ error: String, _ status: HTTPResponse.Status) async throws -> Response {
            var r = try await page(context, name: String(name.prefix(LoginThrottle.maxNameLength)), next: next, token: token, error: error, status: status)
            if let newCookie { r.setCookie(newCookie) }
            return r
        }
        guard newCookie == nil, constantTimeEqual(form["csrf"], token) else {
            return try await answer("The sign-in form had expired. Sign in again.", .forbidden)
        }
        let ticket: LoginThrottle.Ticket
        switch try await services.throttle.reserve(name: name, address: context.remoteIP) {
        case .failure(let wait):
            var r = try await answer("Too many failed sign-ins. Try again in \(max(1, (wait.seconds + 59) / 60)) minute(s).", .tooManyRequests)
            r.headers[HTTPField.Name("Retry-After")!] = String(wait.seconds)
            return r
        case .success(let t): ticket = t
        }
        let wrong = try await answer("The user name or password is wrong.", .unauthorized)
        guard name.count <= LoginThrottle.maxNameLength else { return wrong }
        let user = try await services.store.user(named: name)
        // Verify against a dummy hash when the user is unknown, so timing does not reveal names.
        let hash = user?.passwordHash ?? "$2b$12$C6UzMDM.H6dfI/f/IKxGhuN0T8a0K4RRtQWlDEWa3RxLQNtcqQz7S"
        guard try await services.passwords.verify(form["password"], hash: hash), let user, !user.disabled else { return wrong }
        try await services.throttle.succeeded(ticket)
        let (cookie, _) = try await services.store.createSession(userId: user.id!, lifetime: 12 * 3600)
        var response = Response.redirect(to: next)
        response.setCookie(Cookie(name: services.config.sessionCookie, value: cookie, maxAge: 12 * 3600, path: "/",
                                  secure: services.config.secureCookies, httpOnly: true, sameSite: .strict))
        return response
    }
}

/// Only same-site paths are followed after sign-in: one `/` then a character that cannot
/// start another host (`//host`, `/\host`, `/\thost` all leave the site in some browser),
/// judged after removing what browsers remove (tabs and newlines anywhere, controls and
/// spaces at the ends).
func safeNext(_ next: String?) -> String {
    let fallback = "/apps"
    guard let next else { return fallback }
    var scalars = next.unicodeScalars.filter { $0 != "\t" && $0 != "\n" && $0 != "\r" }[...]
    while let f = scalars.first, f.value <= 0x20 { scalars.removeFirst() }
    while let l = scalars.last, l.value <= 0x20 { scalars.removeLast() }
    let s = Array(scalars)
    guard s.count >= 2, s[0] == "/", s[1] != "/", s[1] != "\\", !s[1].properties.isWhitespace,
          !s.contains(where: { $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F }) else { return fallback }
    var out = String.UnicodeScalarView()
    out.append(contentsOf: s)
    return String(out)
}
