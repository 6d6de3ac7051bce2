import CourierCore
import CourierStore
import Hummingbird

/// The request context of every route: who is asking (session or API token), and for console
/// forms the decoded body that the CSRF middleware already read and checked.
public struct AppContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var user: UserRecord?
    public var session: SessionRecord?
    public var token: APITokenRecord?
    public var form: FormFields = FormFields()
    /// For reviewers' pages: how many releases wait for them (the navigation's badge).
    public var awaitingApprovals: Int?
    /// The client's IP address, for login throttling and `/metrics`: the peer's, or behind a
    /// trusted proxy the one it forwarded (`ClientAddressMiddleware`).
    public internal(set) var remoteIP: String
    /// The peer is a declared trusted proxy (so `remoteIP` came from its `X-Forwarded-For`).
    public internal(set) var peerIsTrustedProxy = false

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress ?? "local"
    }

    /// Streamed uploads may be large; each route bounds what it reads itself.
    public var maxUploadSize: Int { 1 << 20 }
}

/// The context of routes that need someone signed in (a console session or an API token):
/// the user is there, not optional, and so is the acting user every action takes.
struct SignedInContext: ChildRequestContext {
    typealias ParentContext = AppContext
    var coreContext: CoreRequestContextStorage
    let user: UserRecord
    let session: SessionRecord?
    let token: APITokenRecord?
    let form: FormFields
    let remoteIP: String
    let awaitingApprovals: Int?

    init(context: AppContext) throws {
        guard let user = context.user else { throw HTTPError(.unauthorized, message: "Sign in first.") }
        coreContext = context.coreContext
        self.user = user
        session = context.session
        token = context.token
        form = context.form
        remoteIP = context.remoteIP
        awaitingApprovals = context.awaitingApprovals
    }

    /// Who acts, with the token's scopes when the request came through the API.
    var acting: ActingUser { ActingUser(name: user.name, role: user.role, scopes: token.map(\.scopeSet)) }

    var maxUploadSize: Int { 1 << 20 }
}
