import HTTPTypes
import CourierCore
import Hummingbird
import NIOCore

/// How an error a request can end with is shown to a person: one mapping of error to status
/// and message, rendered as an HTML page by the console and as JSON by the API.
struct PresentedError {
    let status: HTTPResponse.Status
    let message: String
    let fields: [FieldError]
    var headers: HTTPFields = [:]

    /// Nil for errors nobody planned for: those are logged and shown as a 500.
    init?(_ error: Error) {
        switch error {
        case let e as FieldErrors:
            self.init(status: .unprocessableContent, message: e.isEmpty ? "Invalid request." : e.description, fields: e.errors)
        case let e as FieldError:
            self.init(status: .unprocessableContent, message: e.message, fields: e.field.isEmpty ? [] : [e])
        case let e as Conflict:
            self.init(status: .conflict, message: e.description, fields: e.field.map { [FieldError($0, e.description)] } ?? [])
        case let e as NotFound:
            self.init(status: .notFound, message: e.description, fields: [])
        case let e as Refused:
            self.init(status: .forbidden, message: e.description, fields: [])
        case let e as Busy:
            self.init(status: .serviceUnavailable, message: e.description, fields: [],
                      headers: [HTTPField.Name("Retry-After")!: String(e.retryAfter)])
        case let e as StorageFull:
            self.init(status: HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), message: e.description, fields: [])
        case let e as ServerFault:
            self.init(status: .internalServerError, message: e.description, fields: [])
        case let e as UploadTooLarge:
            self.init(status: .contentTooLarge, message: e.message, fields: [FieldError("file", e.message)])
        case let e as HTTPError:
            self.init(status: e.status, message: e.body ?? e.status.reasonPhrase, fields: [], headers: e.headers)
        case is NIOTooManyBytesError:
            // A body over what its route reads (a form, a JSON document, a PEM key).
            self.init(status: .contentTooLarge, message: "The request is larger than this form or endpoint accepts. Send less.", fields: [])
        case is DecodingError:
            self.init(status: .badRequest, message: "The request body is not the JSON this endpoint expects.", fields: [])
        default:
            return nil
        }
    }

    init(status: HTTPResponse.Status, message: String, fields: [FieldError], headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.fields = fields
        self.headers = headers
    }

    static let unexpected = PresentedError(status: .internalServerError,
                                           message: "Something went wrong on the server. The error was logged.", fields: [])

    /// Maps `error`, logging the unplanned ones.
    static func of(_ error: Error, _ request: Request, _ context: AppContext) -> PresentedError {
        if let shown = PresentedError(error) { return shown }
        context.logger.error("Unhandled error", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
        return .unexpected
    }
}
