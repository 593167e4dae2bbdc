import Foundation
import NIOCore
import NIOPosix

/// Sends a request head and part of a body over a plain socket, then closes the connection:
/// an upload interrupted mid-body.
enum RawHTTP {
    static func sendPartial(host: String, port: Int, head: String, body: Data) async throws -> Int {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: head)).get()
        var sent = 0
        while sent < body.count {
            let chunk = body[body.startIndex + sent..<body.startIndex + min(body.count, sent + 65536)]
            try await channel.writeAndFlush(ByteBuffer(bytes: chunk)).get()
            sent += chunk.count
        }
        try await Task.sleep(for: .milliseconds(200))
        try await channel.close()
        return sent
    }
}
