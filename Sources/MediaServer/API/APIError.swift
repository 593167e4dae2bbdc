import Foundation
import Hummingbird
import MediaManager

/// An error answered with the Media Manager's envelope:
/// `{message, details: {applicationError | validationError}}`.
struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    let status: HTTPResponse.Status
    let envelope: ErrorEnvelope
    /// Extra response headers (for example tus headers on the upload host).
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.envelope = ErrorEnvelope(
            message: message,
            details: .init(applicationError: .init(code: code, description: message))
        )
    }

    init(status: HTTPResponse.Status = .badRequest, field: String, message: String, rule: String = "INVALID_ARGUMENT") {
        self.status = status
        self.envelope = ErrorEnvelope(
            message: message,
            details: .init(validationError: .init(fieldViolations: [.init(field: field, description: message, violatedRule: rule)]))
        )
    }

    var description: String { "\(status.code) \(envelope.code ?? ""): \(envelope.message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = (try? WireFormat.makeEncoder().encode(envelope)) ?? Data("{}".utf8)
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func with(headers: HTTPFields) -> APIError {
        var copy = self
        for field in headers { copy.headers[field.name] = field.value }
        return copy
    }

    // MARK: Common errors

    static func notFound(_ what: String, _ id: String) -> APIError {
        APIError(.notFound, code: "NOT_FOUND", message: "\(what) '\(id)' was not found")
    }

    static func missing(_ field: String) -> APIError {
        APIError(field: field, message: "\(field) is required", rule: "REQUIRED_FIELD")
    }

    static func invalid(_ field: String, _ message: String) -> APIError {
        APIError(field: field, message: message)
    }

    static let unauthenticated = APIError(
        .unauthorized,
        code: "UNAUTHENTICATED",
        message: "Missing or invalid API key: send it in the Authorization header"
    )

    static let readOnly = APIError(
        .forbidden,
        code: "PERMISSION_DENIED",
        message: "This API key has only the Read Media Manager scope; this method needs Manage Media Manager"
    )
}

extension APIError {
    static let tokenReused = APIError(
        .tooManyRequests,
        code: "RESOURCE_EXHAUSTED",
        message: "This single-use upload token was already used; generate a new upload URL"
    )

    static func token(_ error: TokenError) -> APIError {
        switch error {
        case .invalid:
            APIError(.forbidden, code: "PERMISSION_DENIED", message: "The upload token is invalid or was tampered with")
        case .expired:
            APIError(.unauthorized, code: "UNAUTHENTICATED", message: "The upload token has expired; generate a new upload URL")
        case .alreadyUsed:
            tokenReused
        }
    }
}
