import Foundation
import NIOCore
import NIOPosix

/// A loopback HTTP/1.1 server that answers requests from a script, one response per request
/// (then closes the connection), and records what it received. For client retry tests.
final class ScriptedHTTPServer: @unchecked Sendable {
    struct Reply: Sendable {
        var status: Int
        var headers: [(String, String)] = []
        var body: String = ""
    }

    struct Recorded: Sendable {
        var requestLine: String
        var headers: [String: String]
        var body: String
        var time: ContinuousClock.Instant
    }

    private let lock = NSLock()
    private var script: [Reply]
    private var fallback: Reply
    private var recorded: [Recorded] = []
    private var channel: (any Channel)?

    var port: Int { channel?.localAddress?.port ?? 0 }
    var baseURL: String { "http://127.0.0.1:\(port)" }
    var requests: [Recorded] { lock.withLock { recorded } }

    init(script: [Reply], fallback: Reply) {
        self.script = script
        self.fallback = fallback
    }

    func start() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        lock.withLock { self.channel = channel }
    }

    func stop() async throws {
        try await channel?.close().get()
    }

    fileprivate func answer(requestLine: String, headers: [String: String], body: String) -> Reply {
        lock.withLock {
            recorded.append(Recorded(requestLine: requestLine, headers: headers, body: body, time: .now))
            return script.isEmpty ? fallback : script.removeFirst()
        }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let server: ScriptedHTTPServer
        var buffer = ByteBuffer()

        init(server: ScriptedHTTPServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var part = unwrapInboundIn(data)
            buffer.writeBuffer(&part)
            let text = String(buffer: buffer)
            guard let headEnd = text.range(of: "\r\n\r\n") else { return }
            let head = text[..<headEnd.lowerBound].components(separatedBy: "\r\n")
            var headers: [String: String] = [:]
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            let body = String(text[headEnd.upperBound...])
            guard body.utf8.count >= length else { return }
            let reply = server.answer(requestLine: head.first ?? "", headers: headers, body: body)
            var response = "HTTP/1.1 \(reply.status) Scripted\r\nContent-Length: \(reply.body.utf8.count)\r\nConnection: close\r\n"
            response += "Content-Type: application/json\r\n"
            for (name, value) in reply.headers { response += "\(name): \(value)\r\n" }
            response += "\r\n" + reply.body
            buffer.clear()
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}
