import Backoff
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

extension MediaManagerClient {
    /// File content: ranged GETs whose bodies stream, and HEAD. Timeouts default to the
    /// configuration's request timeout (until the response head) and idle timeout (between bytes).
    public var content: Content {
        Content(client: self, timeouts: .init(response: configuration.timeouts.request, idle: configuration.timeouts.idle))
    }

    /// Reads file content from a file's `url` or a signed download URL.
    ///
    /// ```swift
    /// // Stream bytes 0..<1_048_576 into a sink, resuming after a broken connection:
    /// try await client.content.download(url: file.url, range: 0..<1_048_576) { chunk in
    ///     try sink.write(chunk)
    /// }
    /// // Or iterate one response:
    /// let response = try await client.content.get(url: file.url, range: 100..<200)
    /// for try await chunk in response.body { … }
    /// ```
    ///
    /// Content URLs are sent no API key (they are public or carry their own token), and logs
    /// never show a URL's query (where a download token lives). A `Range` request succeeds with
    /// 206 carrying exactly the range asked for, or 200 when the range is the whole file; any
    /// other answer throws a ``MediaManagerError`` with the status (404 `notFound`, 403
    /// `permissionDenied`, 416 `unexpectedStatus`, …). Connection failures, 429 and 5xx are
    /// retried with the client's backoff; ``download(url:range:into:)`` and
    /// ``fetch(url:range:chunk:)`` also resume a body cut short from where it stopped.
    public struct Content: Sendable {
        /// How long a content request may wait.
        public struct Timeouts: Sendable, Hashable {
            /// Until the response head arrives.
            public var response: Duration
            /// The longest time a body may go without a byte while its reader waits for one (a
            /// reader that applies backpressure does not count against it).
            public var idle: Duration

            public init(response: Duration, idle: Duration) {
                self.response = response
                self.idle = idle
            }
        }

        let client: MediaManagerClient
        /// The timeouts of every request made through this value.
        public var timeouts: Timeouts

        /// The same client with other timeouts.
        public func with(timeouts: Timeouts) -> Content {
            var copy = self
            copy.timeouts = timeouts
            return copy
        }

        /// `HEAD url`: the content's type, length and ETag.
        public func head(url: String) async throws -> ContentInfo {
            let label = Self.label("HEAD", url)
            return try await withRetries(label: label) {
                let (transfer, _) = try ContentTransfer.start(
                    client.httpClient, url: url, method: .HEAD, range: nil, timeouts: timeouts, label: label, mode: .discard)
                let head = try await transfer.response()
                return ContentInfo(head: head)
            }
        }

        /// `GET url` with `Range: bytes=…` (none for `nil`: the whole file). Returns once the
        /// response head is checked; iterate ``ContentResponse/body`` for the bytes, or drop it to
        /// cancel the transfer. The body holds at most a few chunks before the connection waits
        /// for its reader.
        public func get(url: String, range: Range<Int64>? = nil) async throws -> ContentResponse {
            let label = Self.label("GET", url)
            if let range, range.isEmpty {
                throw MediaManagerError(code: .invalidArgument, message: "\(label): the range \(range) is empty")
            }
            return try await withRetries(label: label) {
                let (transfer, body) = try ContentTransfer.start(
                    client.httpClient, url: url, method: .GET, range: range, timeouts: timeouts, label: label, mode: .stream)
                let head = try await transfer.response()
                let served: Range<Int64>
                do {
                    served = try Self.servedRange(head, asked: range, label: label)
                } catch {
                    transfer.cancel()
                    throw error
                }
                return ContentResponse(head: head, range: served, body: body!)
            }
        }

        /// Streams bytes `range` of `url` (the whole file for `nil`) into `sink`, in order, each
        /// byte once: a body cut short is resumed from the first byte not yet handed over, with
        /// the client's retry policy. The connection waits while `sink` works (backpressure). A
        /// range that runs past the end of the file stops at the end.
        ///
        /// - Returns: The number of bytes handed to `sink`.
        @discardableResult
        public func download(
            url: String,
            range: Range<Int64>? = nil,
            into sink: (ByteBuffer) async throws -> Void
        ) async throws -> Int64 {
            if let range, range.isEmpty { return 0 }
            let label = Self.label("GET", url)
            let start = range?.lowerBound ?? 0
            var position = start
            var end = range?.upperBound
            var failures = 0
            while end.map({ position < $0 }) ?? true {
                do {
                    let response = try await get(url: url, range: end.map { position..<$0 })
                    if let total = response.totalSize, response.range.upperBound == total {
                        end = min(end ?? total, total)
                    }
                    end = end ?? response.range.upperBound
                    for try await chunk in response.body {
                        position += Int64(chunk.readableBytes)
                        failures = 0
                        try await sink(chunk)
                    }
                    if let end, position < end {
                        throw MediaManagerError(code: .transport, message: "\(label): the body ended at byte \(position) of \(end)")
                    }
                } catch let error as MediaManagerError where error.isRetryable {
                    failures += 1
                    guard failures < client.configuration.retry.maximumAttempts else { throw error }
                    try await pause(attempt: failures, label: label, error: error)
                }
            }
            return position - start
        }

        /// Fetches exactly bytes `range` of `url`, handing each chunk to `chunk` as it arrives, on
        /// the connection's event loop (keep it short; it must not block). Nothing waits for the
        /// handler, so the range bounds what is buffered. A body cut short is resumed from the
        /// first byte not yet handed over; connection failures, 429 and 5xx are retried.
        public func fetch(url: String, range: Range<Int64>, chunk: @escaping @Sendable (ByteBuffer) -> Void) async throws {
            let label = Self.label("GET", url)
            let delivered = Atomic<Int64>(0)
            var failures = 0
            while true {
                let position = range.lowerBound + delivered.load(ordering: .acquiring)
                if position >= range.upperBound { return }
                if Task.isCancelled { throw MediaManagerError(code: .cancelled, message: "\(label) was cancelled") }
                let remaining = position..<range.upperBound
                do {
                    let (transfer, _) = try ContentTransfer.start(
                        client.httpClient, url: url, method: .GET, range: remaining, timeouts: timeouts, label: label,
                        mode: .handler(limit: Int64(remaining.count)) { buffer in
                            delivered.add(Int64(buffer.readableBytes), ordering: .releasing)
                            chunk(buffer)
                        })
                    let head = try await transfer.response()
                    do {
                        let served = try Self.servedRange(head, asked: remaining, label: label)
                        guard served == remaining else {
                            throw MediaManagerError(
                                code: .invalidResponse, status: Int(head.status.code),
                                message: "\(label): asked for bytes \(remaining), the server sent \(served)")
                        }
                    } catch {
                        transfer.cancel()
                        throw error
                    }
                    try await transfer.finished()
                    let got = range.lowerBound + delivered.load(ordering: .acquiring)
                    if got < range.upperBound {
                        throw MediaManagerError(code: .transport, message: "\(label): the body ended at byte \(got) of \(range.upperBound)")
                    }
                } catch let error as MediaManagerError where error.isRetryable {
                    // Cut short or refused for now: resume, unless it keeps failing without progress.
                    let progressed = range.lowerBound + delivered.load(ordering: .acquiring) > position
                    failures = progressed ? 1 : failures + 1
                    guard failures < client.configuration.retry.maximumAttempts else { throw error }
                    try await pause(attempt: failures, label: label, error: error)
                }
            }
        }

        // MARK: Internals

        /// Runs `attempt` until it returns, retrying connection failures, 429 and 5xx with backoff.
        private func withRetries<T>(label: String, _ attempt: () async throws -> T) async throws -> T {
            var attempts = 0
            while true {
                attempts += 1
                if Task.isCancelled { throw MediaManagerError(code: .cancelled, message: "\(label) was cancelled") }
                do {
                    return try await attempt()
                } catch let error as MediaManagerError where error.isRetryable {
                    guard attempts < client.configuration.retry.maximumAttempts else { throw error }
                    try await pause(attempt: attempts, label: label, error: error)
                }
            }
        }

        private func pause(attempt: Int, label: String, error: MediaManagerError) async throws {
            let delay = client.backoff(attempt: attempt)
            client.logger.warning(
                "content request failed; retrying",
                metadata: ["mm.call": "\(label)", "mm.error": "\(error)", "mm.attempt": "\(attempt)", "mm.delay": "\(delay)"])
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw MediaManagerError(code: .cancelled, message: "\(label) was cancelled", underlying: error)
            }
        }

        /// A log label without the URL's query (download tokens live there).
        static func label(_ method: String, _ url: String) -> String {
            let path = URLComponents(string: url).map { ($0.host ?? "") + $0.percentEncodedPath } ?? "content"
            return "\(method) \(path)"
        }

        /// The bytes a successful answer holds, checked against what was asked.
        static func servedRange(_ head: HTTPResponseHead, asked: Range<Int64>?, label: String) throws -> Range<Int64> {
            let length = head.headers.first(name: "Content-Length").flatMap { Int64($0) }
            switch head.status.code {
            case 206:
                guard let text = head.headers.first(name: "Content-Range"), let served = ContentInfo.parseContentRange(text) else {
                    throw MediaManagerError(code: .invalidResponse, status: 206, message: "\(label): 206 without a valid Content-Range")
                }
                if let asked, served.range.lowerBound != asked.lowerBound || served.range.upperBound > asked.upperBound {
                    throw MediaManagerError(
                        code: .invalidResponse, status: 206, message: "\(label): asked for bytes \(asked), the server sent \(served.range)")
                }
                return served.range
            case 200:
                guard let length else {
                    throw MediaManagerError(code: .invalidResponse, status: 200, message: "\(label): 200 without a Content-Length")
                }
                if let asked, asked.lowerBound != 0 || asked.upperBound != length {
                    throw MediaManagerError(
                        code: .unexpectedStatus, status: 200,
                        message: "\(label): asked for bytes \(asked), the server answered 200 with the whole file (\(length) bytes)")
                }
                return 0..<length
            default:
                throw MediaManagerError(
                    code: MediaManagerError.Code(status: Int(head.status.code)), status: Int(head.status.code),
                    message: "\(label) answered \(head.status.code)")
            }
        }
    }
}

/// What `HEAD` tells of a file's content.
public struct ContentInfo: Sendable, Hashable {
    /// The HTTP status (200).
    public var status: Int
    /// `Content-Type`, e.g. `image/png`.
    public var contentType: String?
    /// `Content-Length`: the file's size.
    public var length: Int64?
    /// `ETag`, with its quotes.
    public var etag: String?

    init(head: HTTPResponseHead) {
        status = Int(head.status.code)
        contentType = head.headers.first(name: "Content-Type")
        length = head.headers.first(name: "Content-Length").flatMap { Int64($0) }
        etag = head.headers.first(name: "ETag")
    }

    /// `bytes first-last/total` (total may be `*`).
    static func parseContentRange(_ text: String) -> (range: Range<Int64>, total: Int64?)? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes ") else { return nil }
        let parts = trimmed.dropFirst(6).split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let bounds = parts[0].split(separator: "-", maxSplits: 1)
        guard bounds.count == 2, let first = Int64(bounds[0]), let last = Int64(bounds[1]), first <= last else { return nil }
        return (first..<(last + 1), Int64(parts[1]))
    }
}

/// A successful content response: the bytes it holds and their stream.
public struct ContentResponse: Sendable {
    /// 206, or 200 for the whole file.
    public var status: Int
    /// The response headers.
    public var headers: HTTPHeaders
    /// `Content-Type`.
    public var contentType: String? { headers.first(name: "Content-Type") }
    /// The bytes of the file the body holds.
    public var range: Range<Int64>
    /// The file's size, when the answer tells it (`Content-Range` total, or a 200's length).
    public var totalSize: Int64?
    /// The body, chunk by chunk; it throws a ``MediaManagerError`` if the transfer fails or
    /// stalls beyond the idle timeout.
    public var body: ContentBody

    init(head: HTTPResponseHead, range: Range<Int64>, body: ContentBody) {
        self.status = Int(head.status.code)
        self.headers = head.headers
        self.range = range
        self.body = body
        if status == 200 {
            totalSize = range.upperBound
        } else {
            totalSize = head.headers.first(name: "Content-Range").flatMap(ContentInfo.parseContentRange)?.total
        }
    }
}

extension MediaManagerError {
    /// A content request worth repeating (or resuming): a connection failure or stall, 429, 5xx.
    var isRetryable: Bool {
        code == .transport || code == .rateLimited || code == .serverError
    }
}
