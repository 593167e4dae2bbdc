/// An error of the tus client.
///
/// The ``code`` gives the broad class (stable, suitable for `switch`-like comparisons and metric
/// labels); ``status`` is the HTTP status when a response caused the error; ``message`` is a human
/// description. Messages never contain upload metadata values or credentials.
public struct ResumableError: Error, Sendable, CustomStringConvertible {
    /// A broad classification of a ``ResumableError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidArgument
            case invalidState
            case unsupportedByServer
            case unexpectedStatus
            case uploadNotFound
            case protocolViolation
            case offsetMismatch
            case lengthMismatch
            case checksumMismatch
            case outage
            case cancelled
            case io
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A caller-supplied value is invalid (a URL, a metadata key, a chunk size).
        public static let invalidArgument = Code(.invalidArgument)
        /// The upload cannot do this now (append after finish, concurrent use, earlier failure).
        public static let invalidState = Code(.invalidState)
        /// The server lacks a feature the operation needs (creation, termination, deferred length).
        public static let unsupportedByServer = Code(.unsupportedByServer)
        /// The server answered with a status the client does not retry (most 4xx).
        public static let unexpectedStatus = Code(.unexpectedStatus)
        /// The upload resource is gone (404, 410, or 403 on an unknown upload).
        public static let uploadNotFound = Code(.uploadNotFound)
        /// A response broke the tus protocol (missing `Location` or `Upload-Offset`, offset going backwards).
        public static let protocolViolation = Code(.protocolViolation)
        /// The server's offset is outside the bytes the client still holds: the upload cannot continue.
        public static let offsetMismatch = Code(.offsetMismatch)
        /// The bytes appended differ from the declared `Upload-Length`.
        public static let lengthMismatch = Code(.lengthMismatch)
        /// The server rejected the same chunk's checksum too many times (460).
        public static let checksumMismatch = Code(.checksumMismatch)
        /// The server stayed unreachable or failing for longer than the retry policy's outage limit.
        public static let outage = Code(.outage)
        /// The surrounding task was cancelled.
        public static let cancelled = Code(.cancelled)
        /// Reading the source or the local spool file failed.
        public static let io = Code(.io)

        public var description: String { base.rawValue }
    }

    /// The broad class of the error.
    public var code: Code
    /// The HTTP status of the response that caused the error, if one came.
    public var status: Int?
    /// A human-readable description.
    public var message: String
    /// The error that caused this one (a connection error, a timeout), if any.
    public var underlying: (any Error)?

    public init(code: Code, status: Int? = nil, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.status = status
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        var text = "ResumableError.\(code)"
        if let status { text += " (HTTP \(status))" }
        text += ": \(message)"
        if let underlying { text += " [\(String(describing: underlying))]" }
        return text
    }
}
