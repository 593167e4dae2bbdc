import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Collects a response for ``TusClient``: its status, its headers and the first
/// ``TusClient/maximumErrorBody`` bytes of its body (a tus answer carries its news in headers; a
/// body is only ever read for an error message).
final class ResponseCollector: HTTPClientResponseDelegate, Sendable {
    typealias Response = RawResponse

    /// Only touched on the request's event loop, which calls the delegate's methods one at a time.
    private nonisolated(unsafe) var head: HTTPResponseHead?
    private nonisolated(unsafe) var body = ByteBuffer()

    func didReceiveHead(task: HTTPClient.Task<RawResponse>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.head = head
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<RawResponse>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let room = TusClient.maximumErrorBody - body.readableBytes
        if room > 0 {
            var part = buffer
            if let slice = part.readSlice(length: min(room, part.readableBytes)) {
                body.writeImmutableBuffer(slice)
            }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<RawResponse>) throws -> RawResponse {
        guard let head else { throw HTTPClientError.remoteConnectionClosed }
        return RawResponse(status: Int(head.status.code), headers: head.headers, body: String(buffer: body))
    }
}
