import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension TusClient {
    /// Whether a file's bytes can go to `url` straight from the file: the kernel copies them to
    /// the socket (`sendfile`), with no pass through this process's memory. Over TLS they must be
    /// encrypted here, so they are read into memory.
    static func sendsFromFile(to url: URL) -> Bool {
        url.scheme?.lowercased() == "http"
    }

    /// Runs `request` with the bytes `range` of `source` as its body.
    ///
    /// From a ``DataFile`` over plain HTTP the body is one file region the channel sends with
    /// `sendfile`, from a duplicate of the file's descriptor. The duplicate is closed once both
    /// the request ended and the channel finished with the region (wrote it or dropped it), so
    /// the kernel never reads a closed descriptor. The request may take any pooled connection:
    /// pinning it to an event loop opened a new connection whenever the idle one was on the other
    /// loop, a round trip more per small file on a wide-area link. Any other source is read into
    /// memory piece by piece as the connection takes it.
    func execute(
        _ request: HTTPClientRequest,
        bodyFrom source: any UploadSource,
        range: Range<Int64>,
        url: URL,
        timeout: Duration?
    ) async throws -> RawResponse {
        // A file shorter than the range goes the memory way, which fails with `.io`: `sendfile`
        // at the end of a file sends nothing, and the channel would try again and again.
        guard let file = source as? DataFile, Self.sendsFromFile(to: url), !range.isEmpty,
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
        let handles = OpenHandles(NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor))
        var headers = request.headers
        headers.remove(name: "Content-Length")
        let body = HTTPClient.Body.stream(contentLength: Int64(range.count)) { writer in
            guard handles.startWrite() else { return writer.write(.byteBuffer(ByteBuffer())) }
            let written = writer.write(.fileRegion(handles.region(range)))
            written.whenComplete { _ in handles.writeEnded() }
            return written
        }
        let legacy: HTTPClient.Request
        do {
            legacy = try HTTPClient.Request(url: request.url, method: request.method, headers: headers, body: body)
        } catch {
            handles.requestEnded()
            throw error
        }
        let task = httpClient.execute(
            request: legacy, delegate: ResponseCollector(), eventLoop: .indifferent,
            deadline: requestDeadline(timeout: timeout), logger: nil)
        task.futureResult.whenComplete { _ in handles.requestEnded() }
        return try await withTaskCancellationHandler {
            try await task.futureResult.get()
        } onCancel: {
            task.cancel()
        }
    }
}
