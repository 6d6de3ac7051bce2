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
    /// The peer's IP address, for login throttling.
    public let remoteIP: String

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress ?? "local"
    }

    /// Streamed uploads may be large; each route bounds what it reads itself.
    public var maxUploadSize: Int { 1 << 20 }
}
