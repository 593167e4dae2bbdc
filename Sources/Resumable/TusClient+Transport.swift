import Backoff
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A response with its body read (up to a few KiB, for error messages).
struct RawResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String
}

extension TusClient {
    static let maximumErrorBody = 4096

    func makeRequest(url: URL, method: HTTPMethod, tusHeader: Bool = true) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        if tusHeader {
            request.headers.add(name: "Tus-Resumable", value: "1.0.0")
        }
        for (name, value) in configuration.additionalHeaders {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        return request
    }

    /// The end of the current outage budget: a request must not outlive it, or a refused
    /// connection (which AsyncHTTPClient keeps retrying until the deadline) would hold an upload
    /// far past its outage limit.
    @TaskLocal static var outageDeadline: NIODeadline?

    /// The deadline of a request given its own timeout, shortened to the outage budget in force
    /// (``outageDeadline``).
    func requestDeadline(timeout: Duration?) -> NIODeadline {
        var deadline: NIODeadline = timeout.map { .now() + TimeAmount($0) } ?? .distantFuture
        if let outage = Self.outageDeadline {
            // At least a second, so that a request started just before the limit can complete.
            deadline = min(deadline, max(outage, .now() + .seconds(1)))
        }
        return deadline
    }

    /// Runs one request and reads its body; transport failures are thrown as they come.
    func execute(_ request: HTTPClientRequest, timeout: Duration?) async throws -> RawResponse {
        // AHC gets no logger: its debug output must not carry our headers (metadata, credentials).
        let response = try await httpClient.execute(request, deadline: requestDeadline(timeout: timeout))
        var text = ""
        for try await var part in response.body where text.utf8.count < Self.maximumErrorBody {
            text += part.readString(length: min(part.readableBytes, Self.maximumErrorBody)) ?? ""
        }
        return RawResponse(status: Int(response.status.code), headers: response.headers, body: text)
    }

    static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 423 || status == 429 || (500...599).contains(status)
    }

    static func statusError(_ response: RawResponse, operation: String) -> ResumableError {
        let code: ResumableError.Code = (response.status == 404 || response.status == 410) ? .uploadNotFound : .unexpectedStatus
        let detail = response.body.trimmingCharacters(in: .whitespacesAndNewlines)
        let message = "tus \(operation) failed with HTTP \(response.status)" + (detail.isEmpty ? "" : ": \(detail.prefix(200))")
        return ResumableError(code: code, status: response.status, message: message)
    }

    static func cancelled(_ underlying: (any Error)? = nil) -> ResumableError {
        ResumableError(code: .cancelled, message: "The upload task was cancelled", underlying: underlying)
    }

    /// Runs `attempt` until it returns a response whose status is not transient, backing off between
    /// attempts; fails with ``ResumableError/Code/outage`` once the policy's outage limit passed.
    func withRetries(
        operation: String,
        url: URL,
        _ attempt: @Sendable () async throws -> RawResponse
    ) async throws -> RawResponse {
        let clock = ContinuousClock()
        let started = clock.now
        var failures = 0
        while true {
            if Task.isCancelled { throw Self.cancelled() }
            let problem: String
            let underlying: (any Error)?
            let status: Int?
            do {
                let limit = NIODeadline.now() + TimeAmount(configuration.retry.outageLimit - (clock.now - started))
                let response = try await Self.$outageDeadline.withValue(limit) { try await attempt() }
                if !Self.isRetryable(status: response.status) {
                    return response
                }
                problem = "HTTP \(response.status)"
                underlying = nil
                status = response.status
            } catch let error as ResumableError {
                throw error
            } catch {
                if Task.isCancelled { throw Self.cancelled(error) }
                problem = String(describing: error)
                underlying = error
                status = nil
            }
            if clock.now - started > configuration.retry.outageLimit {
                throw ResumableError(
                    code: .outage,
                    status: status,
                    message: "tus \(operation) kept failing for longer than the outage limit (\(configuration.retry.outageLimit)); last: \(problem)",
                    underlying: underlying
                )
            }
            let delay = configuration.retry.delay(forAttempt: failures)
            failures += 1
            logger.warning(
                "tus request failed; retrying",
                metadata: [
                    "tus.operation": "\(operation)", "tus.url": "\(url.absoluteString)",
                    "tus.problem": "\(problem)", "tus.attempt": "\(failures)", "tus.delay": "\(delay)",
                ]
            )
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw Self.cancelled(error)
            }
        }
    }

    /// Sends `chunk` (the bytes of the upload from offset `start`) with as many `PATCH` requests as it
    /// takes, recovering the server's offset with `HEAD` after any failure.
    ///
    /// - Returns: The offset after the chunk (`start + chunk.readableBytes`).
    func sendChunk(
        url: URL,
        chunk: ByteBuffer,
        start: Int64,
        declareLength: Int64?,
        useChecksum: Bool,
        progress: ProgressHandler?
    ) async throws -> Int64 {
        try await send(
            BufferSource(chunk, start: start), range: start..<(start + Int64(chunk.readableBytes)), url: url,
            declareLength: declareLength, useChecksum: useChecksum, progress: progress)
    }

    /// The size of the pieces a request body is read in from its source.
    static let bodyPieceSize = 1 << 20

    /// Sends the bytes `range` of `source` (one `PATCH` body, read from the source as the
    /// connection takes it), with as many `PATCH` requests as it takes, recovering the server's
    /// offset with `HEAD` after any failure and resending from there.
    ///
    /// - Parameters:
    ///   - declareLength: Sent as `Upload-Length` on the first `PATCH` (deferred uploads), until the
    ///     server confirms it knows the length.
    /// - Returns: The offset after the range (`range.upperBound`).
    func send(
        _ source: any UploadSource,
        range: Range<Int64>,
        url: URL,
        declareLength: Int64?,
        useChecksum: Bool,
        progress: ProgressHandler?
    ) async throws -> Int64 {
        let start = range.lowerBound
        let clock = ContinuousClock()
        let end = range.upperBound
        var offset = start
        var pendingLength = declareLength
        var needsHead = false
        var failures = 0
        var checksumFailures = 0
        var lastSuccess = clock.now

        func backOff(_ problem: String, status: Int?, underlying: (any Error)?) async throws {
            if clock.now - lastSuccess > configuration.retry.outageLimit {
                throw ResumableError(
                    code: .outage,
                    status: status,
                    message: "tus upload made no progress for longer than the outage limit (\(configuration.retry.outageLimit)); last: \(problem)",
                    underlying: underlying
                )
            }
            let delay = configuration.retry.delay(forAttempt: failures)
            failures += 1
            logger.warning(
                "tus PATCH interrupted; will resume from the server's offset",
                metadata: [
                    "tus.url": "\(url.absoluteString)", "tus.offset": "\(offset)", "tus.problem": "\(problem)",
                    "tus.attempt": "\(failures)", "tus.delay": "\(delay)",
                ]
            )
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw Self.cancelled(error)
            }
            needsHead = true
        }

        while true {
            if Task.isCancelled { throw Self.cancelled() }
            if needsHead {
                let response: RawResponse
                do {
                    let limit = NIODeadline.now() + TimeAmount(configuration.retry.outageLimit - (clock.now - lastSuccess))
                    response = try await Self.$outageDeadline.withValue(limit) {
                        try await execute(makeRequest(url: url, method: .HEAD), timeout: configuration.timeouts.request)
                    }
                } catch {
                    if Task.isCancelled { throw Self.cancelled(error) }
                    try await backOff("HEAD: \(error)", status: nil, underlying: error)
                    continue
                }
                if Self.isRetryable(status: response.status) {
                    try await backOff("HEAD: HTTP \(response.status)", status: response.status, underlying: nil)
                    continue
                }
                guard response.status == 200 || response.status == 204 else {
                    throw Self.statusError(response, operation: "HEAD")
                }
                guard let text = response.headers.first(name: "Upload-Offset"), let serverOffset = Int64(text) else {
                    throw ResumableError(code: .protocolViolation, status: response.status, message: "HEAD without Upload-Offset")
                }
                lastSuccess = clock.now
                guard serverOffset >= start else {
                    throw ResumableError(
                        code: .offsetMismatch,
                        status: response.status,
                        message: "The server's offset \(serverOffset) is behind the oldest byte still held (\(start)); those bytes were acknowledged earlier and are lost"
                    )
                }
                guard serverOffset <= end else {
                    throw ResumableError(
                        code: .offsetMismatch,
                        status: response.status,
                        message: "The server's offset \(serverOffset) is beyond the bytes sent so far (\(end))"
                    )
                }
                if let serverLength = response.headers.first(name: "Upload-Length").flatMap({ Int64($0) }) {
                    if let pending = pendingLength, pending != serverLength {
                        throw ResumableError(
                            code: .lengthMismatch,
                            message: "The server holds Upload-Length \(serverLength), the upload has \(pending) bytes"
                        )
                    }
                    pendingLength = nil
                }
                if serverOffset > offset { progress?(serverOffset) }
                offset = serverOffset
                needsHead = false
            }
            if offset == end && pendingLength == nil {
                return end
            }

            let bodyLength = end - offset
            var request = makeRequest(url: url, method: .PATCH)
            request.headers.add(name: "Upload-Offset", value: String(offset))
            request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
            request.headers.add(name: "Content-Length", value: String(bodyLength))
            if let pendingLength {
                request.headers.add(name: "Upload-Length", value: String(pendingLength))
            }
            if useChecksum {
                let digest = try Self.sha1(of: source, range: offset..<end)
                request.headers.add(name: "Upload-Checksum", value: "sha1 \(Data(digest).base64EncodedString())")
            }
            let response: RawResponse
            do {
                let limit = NIODeadline.now() + TimeAmount(configuration.retry.outageLimit - (clock.now - lastSuccess))
                let patch = request
                let bytes = offset..<end
                response = try await Self.$outageDeadline.withValue(limit) {
                    try await execute(patch, bodyFrom: source, range: bytes, url: url, timeout: configuration.timeouts.patch)
                }
            } catch let error as ResumableError where error.code == .io {
                throw error
            } catch {
                if Task.isCancelled { throw Self.cancelled(error) }
                try await backOff("PATCH: \(error)", status: nil, underlying: error)
                continue
            }
            switch response.status {
            case 200, 204:
                guard let text = response.headers.first(name: "Upload-Offset"), let newOffset = Int64(text),
                    newOffset >= offset, newOffset <= end
                else {
                    throw ResumableError(
                        code: .protocolViolation,
                        status: response.status,
                        message: "PATCH answer has a missing or impossible Upload-Offset (sent \(offset)..<\(end))"
                    )
                }
                lastSuccess = clock.now
                pendingLength = nil
                checksumFailures = 0
                if newOffset > offset {
                    failures = 0
                    offset = newOffset
                    progress?(offset)
                } else if bodyLength > 0 {
                    // Nothing stored: treat like a transient failure so a stuck server cannot spin us.
                    try await backOff("PATCH stored no bytes", status: response.status, underlying: nil)
                }
            case 409:
                try await backOff("PATCH: offset conflict (409)", status: 409, underlying: nil)
            case 460:
                checksumFailures += 1
                if checksumFailures >= configuration.maximumChecksumFailures {
                    throw ResumableError(
                        code: .checksumMismatch,
                        status: 460,
                        message: "The server rejected the chunk at offset \(offset) for a checksum mismatch \(checksumFailures) times"
                    )
                }
                logger.warning("tus checksum mismatch; resending", metadata: ["tus.url": "\(url.absoluteString)", "tus.offset": "\(offset)"])
                needsHead = true
            case let status where Self.isRetryable(status: status):
                try await backOff("PATCH: HTTP \(status)", status: status, underlying: nil)
            default:
                throw Self.statusError(response, operation: "PATCH")
            }
        }
    }

    /// A request body of the bytes `range` of `source`: one buffer when it is a single piece,
    /// else read piece by piece as the connection takes it.
    static func body(_ source: any UploadSource, range: Range<Int64>) throws -> HTTPClientRequest.Body {
        let length = range.upperBound - range.lowerBound
        guard length > Int64(bodyPieceSize) else {
            let bytes = try read(source, at: range.lowerBound, count: Int(length))
            return .bytes(bytes)
        }
        return .stream(SourceBody(source: source, range: range, pieceSize: bodyPieceSize), length: .known(length))
    }

    /// Exactly `count` bytes at `offset` of `source`, or a `.io` error.
    static func read(_ source: any UploadSource, at offset: Int64, count: Int) throws(ResumableError) -> ByteBuffer {
        let bytes: ByteBuffer
        do {
            bytes = try source.read(at: offset, count: count)
        } catch let error as ResumableError {
            throw error
        } catch {
            throw ResumableError(code: .io, message: "Reading the bytes to upload failed", underlying: error)
        }
        guard bytes.readableBytes == count else {
            throw ResumableError(code: .io, message: "The bytes to upload end at \(offset + Int64(bytes.readableBytes)), before \(offset + Int64(count))")
        }
        return bytes
    }

    /// The SHA-1 of the bytes `range` of `source` (for `Upload-Checksum`).
    static func sha1(of source: any UploadSource, range: Range<Int64>) throws(ResumableError) -> Insecure.SHA1.Digest {
        var hasher = Insecure.SHA1()
        var position = range.lowerBound
        while position < range.upperBound {
            let count = Int(min(Int64(bodyPieceSize), range.upperBound - position))
            let piece = try read(source, at: position, count: count)
            piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            position += Int64(count)
        }
        return hasher.finalize()
    }

    /// Sends one empty `PATCH` without `Upload-Length` to a deferred upload, to learn whether the
    /// server accepts data before the length is declared. Returns `false` on a 400 refusal.
    func acceptsPatchWithoutLength(url: URL, offset: Int64) async throws -> Bool {
        let response = try await withRetries(operation: "PATCH probe", url: url) {
            var request = self.makeRequest(url: url, method: .PATCH)
            request.headers.add(name: "Upload-Offset", value: String(offset))
            request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
            request.headers.add(name: "Content-Length", value: "0")
            return try await self.execute(request, timeout: self.configuration.timeouts.request)
        }
        switch response.status {
        case 200, 204: return true
        case 400: return false
        default: throw Self.statusError(response, operation: "PATCH probe")
        }
    }
}
