import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A tus 1.0.0 client over AsyncHTTPClient, usable against any tus server.
///
/// The client discovers a server's features with `OPTIONS`, creates uploads (with a known length,
/// or deferred when the server offers `creation-defer-length`) and hands out ``TusUpload`` objects
/// that stream bytes in chunks, pausing and resuming through network failures.
///
/// ```swift
/// let client = TusClient(logger: logger)
/// let upload = try await client.createUpload(at: creationURL, length: nil, metadata: ["filename": "a.bin"])
/// try await upload.append(bytes)
/// let size = try await upload.finish()
/// try await client.shutdown()
/// ```
///
/// The client never logs upload metadata values or ``Configuration/additionalHeaders``.
public final class TusClient: Sendable {
    /// Called with the number of bytes the server has acknowledged so far (an absolute offset).
    public typealias ProgressHandler = @Sendable (_ acknowledgedBytes: Int64) -> Void

    /// The configuration the client was created with.
    public let configuration: Configuration
    let httpClient: HTTPClient
    private let ownsHTTPClient: Bool
    let logger: Logger

    /// Creates a client with its own `HTTPClient`, configured with the connect and idle timeouts of
    /// `configuration`. Call ``shutdown()`` when done.
    ///
    /// - Parameters:
    ///   - configuration: Chunk size, retry policy, timeouts and headers.
    ///   - logger: Where the client logs (debug for requests, warning for retries).
    public init(configuration: Configuration = Configuration(), logger: Logger) {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = HTTPClient.Configuration.Timeout(
            connect: TimeAmount(configuration.timeouts.connect),
            read: TimeAmount(configuration.timeouts.idle),
            write: TimeAmount(configuration.timeouts.idle)
        )
        httpConfiguration.redirectConfiguration = .disallow
        self.httpClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        self.ownsHTTPClient = true
        self.configuration = configuration
        self.logger = logger
    }

    /// Creates a client over an existing `HTTPClient` that the caller owns and shuts down.
    ///
    /// The connect and idle timeouts are then those of `httpClient`; the per-request deadline of
    /// ``Configuration/Timeouts/request`` still applies.
    public init(configuration: Configuration = Configuration(), httpClient: HTTPClient, logger: Logger) {
        self.httpClient = httpClient
        self.ownsHTTPClient = false
        self.configuration = configuration
        self.logger = logger
    }

    /// Shuts down the `HTTPClient` if this client created it.
    public func shutdown() async throws {
        if ownsHTTPClient {
            try await httpClient.shutdown()
        }
    }

    // MARK: Discovery

    /// Asks the server what it supports (`OPTIONS` on the creation URL).
    ///
    /// A server that does not answer `OPTIONS` with 200/204 is treated as a bare tus 1.0.0 core
    /// server that offers `creation` (the most common case behind proxies that filter `OPTIONS`).
    public func discover(creationURL: String) async throws -> TusServerCapabilities {
        let url = try Self.validatedURL(creationURL)
        let response = try await withRetries(operation: "OPTIONS", url: url) {
            var request = self.makeRequest(url: url, method: .OPTIONS, tusHeader: false)
            request.headers.add(name: "Content-Length", value: "0")
            return try await self.execute(request, timeout: self.configuration.timeouts.request)
        }
        guard response.status == 200 || response.status == 204 else {
            logger.debug("OPTIONS not answered; assuming core+creation", metadata: ["tus.status": "\(response.status)"])
            return TusServerCapabilities(extensions: ["creation"])
        }
        func list(_ name: String) -> [String] {
            (response.headers.first(name: name) ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let capabilities = TusServerCapabilities(
            versions: list("Tus-Version"),
            extensions: Set(list("Tus-Extension")),
            maximumSize: response.headers.first(name: "Tus-Max-Size").flatMap { Int64($0) },
            checksumAlgorithms: Set(list("Tus-Checksum-Algorithm").map { $0.lowercased() })
        )
        logger.debug(
            "tus server discovered",
            metadata: [
                "tus.extensions": "\(capabilities.extensions.sorted().joined(separator: ","))",
                "tus.checksum": "\(capabilities.checksumAlgorithms.sorted().joined(separator: ","))",
            ]
        )
        return capabilities
    }

    // MARK: Creation and resumption

    /// Creates an upload (`POST`) and returns the streaming object that sends its bytes.
    ///
    /// - Parameters:
    ///   - creationURL: The server's creation endpoint, e.g. `http://host/files`.
    ///   - length: The total size when known. `nil` creates the upload with
    ///     `Upload-Defer-Length: 1` (the server must list `creation-defer-length`); the length is then
    ///     declared by ``TusUpload/finish()``.
    ///   - metadata: Sent as `Upload-Metadata` (values base64-encoded; never logged).
    ///   - capabilities: The server's features; discovered with `OPTIONS` when `nil`.
    ///   - progress: Called as the server acknowledges bytes.
    /// - Returns: A ``TusUpload`` positioned at offset 0.
    public func createUpload(
        at creationURL: String,
        length: Int64?,
        metadata: [String: String] = [:],
        capabilities: TusServerCapabilities? = nil,
        progress: ProgressHandler? = nil
    ) async throws -> TusUpload {
        let url = try Self.validatedURL(creationURL)
        let metadataHeader = try UploadMetadata.encode(metadata)
        if let length, length < 0 {
            throw ResumableError(code: .invalidArgument, message: "Upload length must not be negative")
        }
        let caps: TusServerCapabilities
        if let capabilities {
            caps = capabilities
        } else {
            caps = try await discover(creationURL: creationURL)
        }
        if let length, let maximum = caps.maximumSize, maximum > 0, length > maximum {
            throw ResumableError(
                code: .unsupportedByServer,
                message: "Upload of \(length) bytes exceeds the server's Tus-Max-Size \(maximum)"
            )
        }
        if length == nil && !caps.supportsDeferredLength {
            throw ResumableError(
                code: .unsupportedByServer,
                message: "The server does not offer creation-defer-length; the length must be known at creation"
            )
        }
        let response = try await withRetries(operation: "POST", url: url) {
            var request = self.makeRequest(url: url, method: .POST)
            request.headers.add(name: "Content-Length", value: "0")
            if let length {
                request.headers.add(name: "Upload-Length", value: String(length))
            } else {
                request.headers.add(name: "Upload-Defer-Length", value: "1")
            }
            if let metadataHeader {
                request.headers.add(name: "Upload-Metadata", value: metadataHeader)
            }
            return try await self.execute(request, timeout: self.configuration.timeouts.request)
        }
        guard response.status == 201 || response.status == 200 else {
            throw Self.statusError(response, operation: "creation")
        }
        guard let location = response.headers.first(name: "Location"),
            let resolved = URL(string: location, relativeTo: url)?.absoluteURL
        else {
            throw ResumableError(
                code: .protocolViolation,
                status: response.status,
                message: "Creation response has no usable Location header"
            )
        }
        logger.debug(
            "tus upload created",
            metadata: ["tus.url": "\(resolved.absoluteString)", "tus.length": "\(length.map(String.init) ?? "deferred")"]
        )
        let upload = TusUpload(
            client: self,
            url: resolved,
            capabilities: caps,
            offset: 0,
            length: length,
            progress: progress
        )
        if length == nil {
            try await upload.probeDeferredLength()
        }
        return upload
    }

    /// Reopens an existing upload (`HEAD`) to continue it, e.g. after the process restarted.
    ///
    /// The returned upload starts at the server's offset (``TusUpload/offset``): the caller must
    /// append the source's bytes from that position on.
    ///
    /// - Parameters:
    ///   - uploadURL: The upload's URL, as ``TusUpload/url`` gave it.
    ///   - capabilities: The server's features; discovered with `OPTIONS` on `uploadURL` when `nil`.
    ///   - progress: Called as the server acknowledges bytes.
    public func resumeUpload(
        at uploadURL: String,
        capabilities: TusServerCapabilities? = nil,
        progress: ProgressHandler? = nil
    ) async throws -> TusUpload {
        let url = try Self.validatedURL(uploadURL)
        let caps: TusServerCapabilities
        if let capabilities {
            caps = capabilities
        } else {
            caps = try await discover(creationURL: uploadURL)
        }
        let state = try await head(url)
        logger.debug("tus upload resumed", metadata: ["tus.url": "\(url.absoluteString)", "tus.offset": "\(state.offset)"])
        let upload = TusUpload(
            client: self,
            url: url,
            capabilities: caps,
            offset: state.offset,
            length: state.length,
            progress: progress
        )
        if state.length == nil {
            try await upload.probeDeferredLength()
        }
        return upload
    }

    /// The server's view of an upload, from `HEAD`.
    public struct UploadState: Sendable, Hashable {
        /// `Upload-Offset`: how many bytes the server holds.
        public var offset: Int64
        /// `Upload-Length`, or `nil` while deferred.
        public var length: Int64?
        /// `Upload-Metadata`, decoded.
        public var metadata: [String: String]
    }

    /// Asks the server for an upload's offset and length (`HEAD`), retrying transient failures.
    public func state(of uploadURL: String) async throws -> UploadState {
        try await head(try Self.validatedURL(uploadURL))
    }

    /// Deletes an upload (`DELETE`, the `termination` extension).
    public func terminate(uploadURL: String) async throws {
        let url = try Self.validatedURL(uploadURL)
        let response = try await withRetries(operation: "DELETE", url: url) {
            var request = self.makeRequest(url: url, method: .DELETE)
            request.headers.add(name: "Content-Length", value: "0")
            return try await self.execute(request, timeout: self.configuration.timeouts.request)
        }
        switch response.status {
        case 200, 204: return
        default: throw Self.statusError(response, operation: "termination")
        }
    }

    // MARK: Sending from a source

    /// Creates an upload and, when the server offers `creation-with-upload`, sends the bytes
    /// `range` of `source` in the same request (one round trip for a small file). Without that
    /// extension the upload is created empty and the bytes follow in a `PATCH`.
    ///
    /// A `POST` whose answer is lost is sent again: the server may then hold an extra, empty upload,
    /// which expires there.
    ///
    /// - Parameters:
    ///   - length: The total size when known; `nil` creates it with `Upload-Defer-Length: 1`.
    ///   - source: Where the first bytes come from (`range` starts at 0); `nil` sends none.
    /// - Returns: The upload's URL and the offset the server holds.
    public func create(
        at creationURL: String,
        length: Int64?,
        metadata: [String: String] = [:],
        capabilities: TusServerCapabilities,
        sending source: (any UploadSource)? = nil,
        range: Range<Int64> = 0..<0,
        progress: ProgressHandler? = nil
    ) async throws -> (url: String, offset: Int64) {
        let url = try Self.validatedURL(creationURL)
        let metadataHeader = try UploadMetadata.encode(metadata)
        if length == nil && !capabilities.supportsDeferredLength {
            throw ResumableError(
                code: .unsupportedByServer,
                message: "The server does not offer creation-defer-length; the length must be known at creation")
        }
        let withBody =
            source != nil && !range.isEmpty && configuration.creationWithUpload && capabilities.extensions.contains("creation-with-upload")
        let useChecksum = usesChecksum(for: url, capabilities: capabilities)
        let response = try await withRetries(operation: "POST", url: url) {
            var request = self.makeRequest(url: url, method: .POST)
            if let length {
                request.headers.add(name: "Upload-Length", value: String(length))
            } else {
                request.headers.add(name: "Upload-Defer-Length", value: "1")
            }
            if let metadataHeader {
                request.headers.add(name: "Upload-Metadata", value: metadataHeader)
            }
            if withBody, let source {
                request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
                request.headers.add(name: "Content-Length", value: String(range.count))
                if useChecksum {
                    let digest = try Self.sha1(of: source, range: range)
                    request.headers.add(name: "Upload-Checksum", value: "sha1 \(Data(digest).base64EncodedString())")
                }
                return try await self.execute(
                    request, bodyFrom: source, range: range, url: url,
                    timeout: self.configuration.timeouts.patch ?? self.configuration.timeouts.request)
            }
            request.headers.add(name: "Content-Length", value: "0")
            return try await self.execute(request, timeout: self.configuration.timeouts.patch ?? self.configuration.timeouts.request)
        }
        guard response.status == 201 || response.status == 200 else {
            throw Self.statusError(response, operation: "creation")
        }
        guard let location = response.headers.first(name: "Location"),
            let resolved = URL(string: location, relativeTo: url)?.absoluteURL
        else {
            throw ResumableError(code: .protocolViolation, status: response.status, message: "Creation response has no usable Location header")
        }
        var offset: Int64 = 0
        if withBody {
            guard let text = response.headers.first(name: "Upload-Offset"), let stored = Int64(text), stored >= 0, stored <= Int64(range.count)
            else {
                throw ResumableError(code: .protocolViolation, status: response.status, message: "Creation with upload answered without a usable Upload-Offset")
            }
            offset = stored
            if stored > 0 { progress?(stored) }
        }
        logger.debug(
            "tus upload created",
            metadata: ["tus.url": "\(resolved.absoluteString)", "tus.length": "\(length.map(String.init) ?? "deferred")", "tus.offset": "\(offset)"])
        if let source, offset < range.upperBound {
            offset = try await send(
                source, range: offset..<range.upperBound, url: resolved, declareLength: nil, useChecksum: useChecksum, progress: progress)
        }
        return (resolved.absoluteString, offset)
    }

    /// Sends the bytes `range` of `source` to an existing upload in one `PATCH` body, read from the
    /// source as the connection takes it, resuming from the server's offset (`HEAD`) after any
    /// failure until the outage limit.
    ///
    /// - Parameters:
    ///   - declaringLength: The upload's total length, sent with the bytes when it was deferred.
    /// - Returns: The offset after the range.
    public func send(
        _ source: any UploadSource,
        range: Range<Int64>,
        to uploadURL: String,
        declaringLength length: Int64? = nil,
        capabilities: TusServerCapabilities,
        progress: ProgressHandler? = nil
    ) async throws -> Int64 {
        let url = try Self.validatedURL(uploadURL)
        return try await send(
            source, range: range, url: url, declareLength: length,
            useChecksum: usesChecksum(for: url, capabilities: capabilities), progress: progress)
    }

    // MARK: Internals

    static func validatedURL(_ text: String) throws(ResumableError) -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", url.host != nil
        else {
            throw ResumableError(code: .invalidArgument, message: "Not an http(s) URL: '\(text)'")
        }
        return url
    }

    func head(_ url: URL) async throws -> UploadState {
        let response = try await withRetries(operation: "HEAD", url: url) {
            let request = self.makeRequest(url: url, method: .HEAD)
            return try await self.execute(request, timeout: self.configuration.timeouts.request)
        }
        guard response.status == 200 || response.status == 204 else {
            throw Self.statusError(response, operation: "HEAD")
        }
        guard let offsetText = response.headers.first(name: "Upload-Offset"), let offset = Int64(offsetText), offset >= 0
        else {
            throw ResumableError(code: .protocolViolation, status: response.status, message: "HEAD without Upload-Offset")
        }
        let length = response.headers.first(name: "Upload-Length").flatMap { Int64($0) }
        let metadata = response.headers.first(name: "Upload-Metadata").map(UploadMetadata.decode) ?? [:]
        return UploadState(offset: offset, length: length, metadata: metadata)
    }
}
