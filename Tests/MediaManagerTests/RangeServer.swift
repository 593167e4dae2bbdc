import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A loopback HTTP/1.1 server of one file's bytes with `Range` support, whose answers can be
/// scripted to misbehave (cut a body short, stall, never answer, ignore the range), and which
/// records each request's method and `Range` header. For content-client tests of what the
/// embedded server never does.
final class RangeServer: @unchecked Sendable {
    enum Behaviour: Sendable {
        /// 206 with the range (200 without one).
        case normal
        /// Announces the whole range, sends `bytes` of it, then closes the connection.
        case cutAfter(bytes: Int)
        /// Announces the whole range, sends `bytes` of it, then sends nothing more.
        case stallAfter(bytes: Int)
        /// Reads the request and never answers.
        case silent
        /// 200 with the whole file, whatever the range.
        case ignoreRange
    }

    struct Recorded: Sendable {
        var method: String
        var range: String?
    }

    let bytes: [UInt8]
    private let lock = NSLock()
    private var script: [Behaviour]
    private var recorded: [Recorded] = []
    private var channel: (any Channel)?

    var port: Int { lock.withLock { channel?.localAddress?.port ?? 0 } }
    var url: String { "http://127.0.0.1:\(port)/media/file.bin?token=secret" }
    var requests: [Recorded] { lock.withLock { recorded } }

    init(bytes: [UInt8], script: [Behaviour] = []) {
        self.bytes = bytes
        self.script = script
    }

    static func with<T>(bytes: [UInt8], script: [Behaviour] = [], _ body: (RangeServer) async throws -> T) async throws -> T {
        let server = RangeServer(bytes: bytes, script: script)
        try await server.start()
        do {
            let result = try await body(server)
            try await server.stop()
            return result
        } catch {
            try? await server.stop()
            throw error
        }
    }

    func start() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        lock.withLock { self.channel = channel }
    }

    func stop() async throws {
        try await lock.withLock { channel }?.close().get()
    }

    fileprivate func next(_ head: HTTPRequestHead) -> Behaviour {
        lock.withLock {
            recorded.append(Recorded(method: head.method.rawValue, range: head.headers.first(name: "Range")))
            return script.isEmpty ? .normal : script.removeFirst()
        }
    }

    /// `bytes=a-b` within the file.
    fileprivate func range(_ header: String?) -> Range<Int>? {
        guard let header, header.hasPrefix("bytes=") else { return nil }
        let parts = header.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let first = Int(parts[0]), let last = Int(parts[1]) else { return nil }
        return first..<min(bytes.count, last + 1)
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: RangeServer
        var head: HTTPRequestHead?

        init(server: RangeServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                respond(context: context, head: head)
            }
        }

        private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
            let behaviour = server.next(head)
            if case .silent = behaviour { return }
            let total = server.bytes.count
            let asked = server.range(head.headers.first(name: "Range"))
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/octet-stream")
            let status: HTTPResponseStatus
            let slice: Range<Int>
            if let asked, case .ignoreRange = behaviour {
                _ = asked
                status = .ok
                slice = 0..<total
            } else if let asked {
                guard asked.lowerBound < total else {
                    headers.add(name: "Content-Range", value: "bytes */\(total)")
                    headers.add(name: "Content-Length", value: "0")
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .rangeNotSatisfiable, headers: headers))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                status = .partialContent
                slice = asked
                headers.add(name: "Content-Range", value: "bytes \(asked.lowerBound)-\(asked.upperBound - 1)/\(total)")
            } else {
                status = .ok
                slice = 0..<total
            }
            headers.add(name: "Content-Length", value: String(slice.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            if head.method == .HEAD {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            switch behaviour {
            case .cutAfter(let count), .stallAfter(let count):
                let part = ByteBuffer(bytes: server.bytes[slice.lowerBound..<min(slice.upperBound, slice.lowerBound + count)])
                let written = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(part))))
                if case .cutAfter = behaviour {
                    written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                }
            default:
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: server.bytes[slice])))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
