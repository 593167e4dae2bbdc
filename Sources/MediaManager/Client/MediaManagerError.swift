/// An error of the Media Manager REST client.
///
/// ``code`` classifies the failure (derived from the HTTP status when a response came);
/// ``status``, ``message`` and ``applicationCode`` come from the response and its error envelope
/// (`{"message", "details": {"applicationError": {"code"}}}`). Messages never contain the API key.
public struct MediaManagerError: Error, Sendable, CustomStringConvertible {
    /// A broad classification of a ``MediaManagerError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidArgument, transport, badRequest, unauthenticated, permissionDenied, notFound
            case conflict, rateLimited, serverError, unexpectedStatus, invalidResponse, cancelled
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A caller-supplied value is invalid (e.g. a malformed base URL); nothing was sent.
        public static let invalidArgument = Code(.invalidArgument)
        /// The request could not be completed (connection refused or reset, timeout).
        public static let transport = Code(.transport)
        /// 400: bad or missing parameters, failed validation.
        public static let badRequest = Code(.badRequest)
        /// 401: missing or wrong credentials.
        public static let unauthenticated = Code(.unauthenticated)
        /// 403: authenticated but not permitted.
        public static let permissionDenied = Code(.permissionDenied)
        /// 404: no such file, folder or upload.
        public static let notFound = Code(.notFound)
        /// 409: already exists or conflicting state.
        public static let conflict = Code(.conflict)
        /// 429: too many requests or a reused single-use token (after retries ran out).
        public static let rateLimited = Code(.rateLimited)
        /// 5xx (after retries ran out).
        public static let serverError = Code(.serverError)
        /// Any other non-success status.
        public static let unexpectedStatus = Code(.unexpectedStatus)
        /// A success response whose body could not be decoded.
        public static let invalidResponse = Code(.invalidResponse)
        /// The surrounding task was cancelled.
        public static let cancelled = Code(.cancelled)

        /// The code for an HTTP error status.
        public init(status: Int) {
            switch status {
            case 400: self = .badRequest
            case 401: self = .unauthenticated
            case 403: self = .permissionDenied
            case 404, 410: self = .notFound
            case 409: self = .conflict
            case 429: self = .rateLimited
            case 500...599: self = .serverError
            default: self = .unexpectedStatus
            }
        }

        public var description: String { base.rawValue }
    }

    /// The broad class of the error.
    public var code: Code
    /// The HTTP status, when a response came.
    public var status: Int?
    /// The envelope's `message`, or a description of the failure.
    public var message: String
    /// The envelope's application error code (or first violated rule), e.g. `NOT_FOUND`.
    public var applicationCode: String?
    /// The decoded error envelope, when the body was one.
    public var envelope: ErrorEnvelope?
    /// The error that caused this one (a transport or decoding error), if any.
    public var underlying: (any Error)?

    public init(
        code: Code,
        status: Int? = nil,
        message: String,
        applicationCode: String? = nil,
        envelope: ErrorEnvelope? = nil,
        underlying: (any Error)? = nil
    ) {
        self.code = code
        self.status = status
        self.message = message
        self.applicationCode = applicationCode
        self.envelope = envelope
        self.underlying = underlying
    }

    public var description: String {
        var text = "MediaManagerError.\(code)"
        if let status { text += " (HTTP \(status)" + (applicationCode.map { ", \($0)" } ?? "") + ")" }
        text += ": \(message)"
        if let underlying { text += " [\(String(describing: underlying))]" }
        return text
    }
}
