import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// Reads one open file with HTTP Range requests.
///
/// Sequential reads are served from a read-ahead window that starts at
/// `readAheadInitial` bytes and doubles with each part read in order, up to
/// `readAheadMaximum`; the next parts are fetched (two at a time, on parallel connections) while
/// the current one is read, so at most three windows (3 × the maximum) are held per open file. A read elsewhere (a seek) drops the
/// window and fetches exactly the range asked for; reads that then continue in order grow a new
/// window from there.
actor FileReader {
    /// Where the bytes are: the file's URL, or a signed download URL for a private file.
    typealias URLProvider = @Sendable () async throws -> String

    private struct Part {
        let start: Int64
        let length: Int
        let task: Task<ByteBuffer, any Error>
        var end: Int64 { start + Int64(length) }
    }

    private let http: HTTPClient
    private let urlProvider: URLProvider
    private let size: Int64
    private let initialWindow: Int
    private let maximumWindow: Int
    private let timeout: TimeAmount
    private let logger: Logger
    private let name: String

    /// The part being read, and the parts being fetched ahead of it (in order, on parallel
    /// connections, so that one connection's speed is not the limit).
    private var current: (start: Int64, bytes: ByteBuffer)?
    private var ahead: [Part] = []
    private let depth: Int
    private var window: Int
    /// Where the previous read ended, to tell sequential reads from seeks.
    private var lastEnd: Int64?

    init(
        http: HTTPClient, size: Int64, name: String, initialWindow: Int, maximumWindow: Int, depth: Int = 2, timeout: Duration,
        logger: Logger, url: @escaping URLProvider
    ) {
        self.depth = max(1, depth)
        self.http = http
        self.size = size
        self.name = name
        self.initialWindow = max(64 << 10, initialWindow)
        self.maximumWindow = max(self.initialWindow, maximumWindow)
        self.window = self.initialWindow
        self.timeout = .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        self.logger = logger
        self.urlProvider = url
    }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(offset: Int64, count: Int) async throws -> ByteBuffer {
        guard offset < size, count > 0 else { return ByteBuffer() }
        let wanted = Int(min(Int64(count), size - offset))
        let sequential = offset == lastEnd || offset == 0
        defer { lastEnd = offset + Int64(wanted) }
        // The common case: the whole read lies in the window at hand; hand out a slice of it
        // (no copy).
        if let current, offset >= current.start, offset + Int64(wanted) <= current.start + Int64(current.bytes.readableBytes) {
            return current.bytes.getSlice(at: current.bytes.readerIndex + Int(offset - current.start), length: wanted)!
        }

        var result = ByteBuffer()
        result.reserveCapacity(wanted)
        var position = offset
        while result.readableBytes < wanted {
            if let current, position >= current.start, position < current.start + Int64(current.bytes.readableBytes) {
                let skip = Int(position - current.start)
                let take = min(wanted - result.readableBytes, current.bytes.readableBytes - skip)
                var slice = current.bytes.getSlice(at: current.bytes.readerIndex + skip, length: take)!
                result.writeBuffer(&slice)
                position += Int64(take)
                continue
            }
            if let next = ahead.first, next.start == position {
                ahead.removeFirst()
                let bytes = try await next.task.value
                current = (next.start, bytes)
                prefetch()
                continue
            }
            guard sequential || position != offset else {
                // A seek: fetch exactly what was asked, and forget the window.
                dropWindow()
                return try await fetch(start: offset, length: wanted)
            }
            // Start (or restart) a window here.
            dropWindow()
            let length = Int(min(Int64(window), size - position))
            let bytes = try await fetch(start: position, length: length)
            current = (position, bytes)
            prefetch()
        }
        return result
    }

    /// Stops fetching ahead.
    func close() {
        dropWindow()
    }

    private func dropWindow() {
        for part in ahead { part.task.cancel() }
        ahead = []
        current = nil
        window = initialWindow
    }

    /// Keeps `depth` parts in flight after the current one, each twice as large as the one
    /// before, up to the maximum window.
    private func prefetch() {
        guard let current else { return }
        var start = ahead.last?.end ?? current.start + Int64(current.bytes.readableBytes)
        while ahead.count < depth, start < size {
            window = min(window * 2, maximumWindow)
            let length = Int(min(Int64(window), size - start))
            let partStart = start
            let task = Task { try await self.fetch(start: partStart, length: length) }
            ahead.append(Part(start: start, length: length, task: task))
            start += Int64(length)
        }
    }

    /// How often a range is asked for again after a connection failure or a 5xx/429 answer, and
    /// the first and longest pause between attempts (about 5 s in all: a short outage of the
    /// content host is ridden out, a longer one fails the read with EIO).
    static let retries = 7
    static let firstPause: Duration = .milliseconds(50)
    static let longestPause: Duration = .seconds(1)

    /// GET `bytes=start-(start+length-1)`, checked to be exactly that range; transient failures
    /// are retried with backoff, a bounded number of times.
    private func fetch(start: Int64, length: Int) async throws -> ByteBuffer {
        var pause = Self.firstPause
        for attempt in 0... {
            do {
                return try await fetchOnce(start: start, length: length)
            } catch let failure as TransientReadFailure {
                guard attempt < Self.retries else {
                    logger.error("\(failure.error)")
                    throw failure.error
                }
                logger.debug("\(failure.error); retrying in \(pause)")
                do {
                    try await Task.sleep(for: pause)
                } catch {
                    throw FilesystemError(EINTR, "Reading '\(name)' was interrupted")
                }
                pause = min(pause * 2, Self.longestPause)
            }
        }
        fatalError("unreachable")
    }

    /// A failure worth another attempt: the connection failed, or the server is overloaded or
    /// failing for now.
    private struct TransientReadFailure: Error {
        let error: FilesystemError
    }

    private func fetchOnce(start: Int64, length: Int) async throws -> ByteBuffer {
        let url = try await urlProvider()
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Range", value: "bytes=\(start)-\(start + Int64(length) - 1)")
        do {
            let response = try await http.execute(request, timeout: timeout)
            switch response.status.code {
            case 206:
                break
            case 200 where start == 0 && Int64(length) == size:
                break
            case 404:
                throw FilesystemError(ENOENT, "Reading '\(name)': the content is gone (404)")
            case 401, 403:
                throw FilesystemError(EACCES, "Reading '\(name)': access denied (\(response.status.code))")
            case 429, 500...599:
                throw TransientReadFailure(
                    error: FilesystemError(EIO, "Reading '\(name)': GET bytes \(start)-\(start + Int64(length) - 1) answered \(response.status.code)"))
            default:
                throw FilesystemError(EIO, "Reading '\(name)': GET bytes \(start)-\(start + Int64(length) - 1) answered \(response.status.code)")
            }
            var body = try await response.body.collect(upTo: length + 1)
            guard body.readableBytes == length else {
                throw FilesystemError(EIO, "Reading '\(name)': asked for \(length) bytes at \(start), got \(body.readableBytes)")
            }
            body.discardReadBytes()
            return body
        } catch let error as FilesystemError {
            logger.error("\(error)")
            throw error
        } catch let error as TransientReadFailure {
            throw error
        } catch is CancellationError {
            throw FilesystemError(EINTR, "Reading '\(name)' was interrupted")
        } catch {
            if Task.isCancelled { throw FilesystemError(EINTR, "Reading '\(name)' was interrupted") }
            let text = "\(error)"
            if text.contains("deadlineExceeded") || text.lowercased().contains("timeout") {
                // The read timeout is the bound: no second attempt.
                let failure = FilesystemError(ETIMEDOUT, "Reading '\(name)': GET bytes \(start)-\(start + Int64(length) - 1) failed: \(error)")
                logger.error("\(failure)")
                throw failure
            }
            throw TransientReadFailure(
                error: FilesystemError(EIO, "Reading '\(name)': GET bytes \(start)-\(start + Int64(length) - 1) failed: \(error)"))
        }
    }
}
