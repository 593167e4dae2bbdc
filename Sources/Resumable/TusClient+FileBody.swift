import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

extension TusClient {
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

    /// Whether the bytes of `source` can go to `url` straight from the file: the kernel copies
    /// them to the socket (`sendfile`), with no pass through this process's memory. Over TLS
    /// they must be encrypted here, so they are read into memory.
    static func sendsFromFile(_ source: any UploadSource, to url: URL) -> Bool {
        source is DataFile && url.scheme?.lowercased() == "http"
    }

    /// Runs `request` with the bytes `range` of `source` as its body.
    ///
    /// From a ``DataFile`` over plain HTTP the body is one file region the channel sends with
    /// `sendfile`, from a duplicate of the file's descriptor. The request runs on one event loop
    /// with its channel, and the duplicate is closed on that loop once both the request ended and
    /// the channel finished with the region (wrote it or dropped it), so the kernel never reads a
    /// closed descriptor. Any other source is read into memory piece by piece as the connection
    /// takes it.
    func execute(
        _ request: HTTPClientRequest,
        bodyFrom source: any UploadSource,
        range: Range<Int64>,
        url: URL,
        timeout: Duration?
    ) async throws -> RawResponse {
        // A file shorter than the range goes the memory way, which fails with `.io`: `sendfile`
        // at the end of a file sends nothing, and the channel would try again and again.
        guard let file = source as? DataFile, Self.sendsFromFile(source, to: url), !range.isEmpty,
            (try? file.length()).map({ $0 >= range.upperBound }) == true
        else {
            var request = request
            request.body = try Self.body(source, range: range)
            return try await execute(request, timeout: timeout)
        }
        let descriptor: Int32
        do {
            descriptor = try file.duplicateDescriptor()
        } catch {
            throw ResumableError(code: .io, message: "Reading the bytes to upload failed", underlying: error)
        }
        // Two holders: the request, and the write of the region (released at once if it never starts).
        let handles = OpenHandles(NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor), holders: 2)
        let writeStarted = WriteStart(handles)
        var headers = request.headers
        headers.remove(name: "Content-Length")
        let body = HTTPClient.Body.stream(contentLength: Int64(range.count)) { writer in
            guard writeStarted.claim() else {
                return writer.write(.byteBuffer(ByteBuffer()))
            }
            let written = writer.write(.fileRegion(handles.region(range)))
            written.whenComplete { _ in handles.release() }
            return written
        }
        let legacy: HTTPClient.Request
        do {
            legacy = try HTTPClient.Request(url: request.url, method: request.method, headers: headers, body: body)
        } catch {
            writeStarted.abandon()
            handles.release()
            throw error
        }
        let loop = httpClient.eventLoopGroup.next()
        let task = httpClient.execute(
            request: legacy, delegate: ResponseCollector(), eventLoop: .delegateAndChannel(on: loop),
            deadline: requestDeadline(timeout: timeout), logger: nil)
        task.futureResult.whenComplete { _ in
            // A body whose write never started holds nothing.
            writeStarted.abandon()
            handles.release()
        }
        return try await withTaskCancellationHandler {
            try await task.futureResult.get()
        } onCancel: {
            task.cancel()
        }
    }
}

/// Whether the body's write of a region started, so that exactly one of the write and the end of
/// the request gives up the write's hold on the descriptor.
private final class WriteStart: Sendable {
    private let handles: OpenHandles
    private let state = Mutex<State>(.waiting)

    enum State { case waiting, started, abandoned }

    init(_ handles: OpenHandles) { self.handles = handles }

    /// The write begins; false when the request already ended.
    func claim() -> Bool {
        state.withLock { state in
            guard state == .waiting else { return false }
            state = .started
            return true
        }
    }

    /// The request ended: if the write never began, give up its hold now.
    func abandon() {
        let release = state.withLock { state -> Bool in
            guard state == .waiting else { return false }
            state = .abandoned
            return true
        }
        if release { handles.release() }
    }
}
