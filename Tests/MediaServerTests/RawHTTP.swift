import Foundation
import NIOCore
import NIOPosix

/// Requests over a plain socket, byte for byte as written: what no HTTP client library would
/// send (malformed, duplicated, non-UTF-8 or overflowing header values, bodies that break off).
enum RawHTTP {
    /// Sends a request head and part of a body over a plain socket, then closes the connection:
    /// an upload interrupted mid-body.
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
        // Every byte is flushed to the socket: the close (a FIN after them) ends the body early.
        try await channel.close()
        return sent
    }

    /// Sends a request head and part of a body and leaves the connection open: a PATCH still
    /// arriving. Close the returned channel to end it.
    static func startPartial(host: String, port: Int, head: String, body: Data) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: head)).get()
        var sent = 0
        while sent < body.count {
            let chunk = body[body.startIndex + sent..<body.startIndex + min(body.count, sent + 65536)]
            try await channel.writeAndFlush(ByteBuffer(bytes: chunk)).get()
            sent += chunk.count
        }
        return channel
    }

    /// A response as it came off the wire.
    struct Response: Sendable, CustomStringConvertible {
        let status: Int
        let headers: [(name: String, value: String)]
        let body: Data

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        }

        /// Whether the body is the API's error envelope (`{message, details}`).
        var isErrorEnvelope: Bool {
            json["message"] is String && json["details"] is [String: Any]
        }

        var description: String { "\(status) \(String(decoding: body.prefix(300), as: UTF8.self))" }
    }

    /// Sends `request` (a whole request, head and body), half-closes the connection so that a
    /// body shorter than its `Content-Length` ends there, and reads the first response.
    /// `nil` when the server closed the connection without answering.
    static func exchange(host: String = "127.0.0.1", port: Int, _ request: Data, timeout: Duration = .seconds(15)) async throws -> Response? {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        let isHead = request.starts(with: Data("HEAD ".utf8))
        return try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    do {
                        try await outbound.write(ByteBuffer(bytes: request))
                        outbound.finish()
                    } catch {
                        // The server may close before taking everything; its answer may still be there.
                    }
                    var received = ByteBuffer()
                    do {
                        for try await chunk in inbound {
                            received.writeImmutableBuffer(chunk)
                            if let response = parse(received, isHead: isHead, atEnd: false) { return response }
                        }
                    } catch {
                        // Reset by the server: judge what arrived.
                    }
                    return parse(received, isHead: isHead, atEnd: true)
                }
            }
            group.addTask {
                // The time limit of the answer, not a synchronisation.
                try await Task.sleep(for: timeout)
                throw RawHTTPError(message: "no answer within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    /// Parses one response from the start of `buffer`, or `nil` while it is incomplete.
    static func parse(_ buffer: ByteBuffer, isHead: Bool, atEnd: Bool) -> Response? {
        let bytes = Data(buffer.readableBytesView)
        guard let end = bytes.range(of: Data("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: bytes[bytes.startIndex..<end.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let rest = bytes[end.upperBound...]
        let noBody = isHead || status == 204 || status == 304 || (100..<200).contains(status)
        if noBody { return Response(status: status, headers: headers, body: Data()) }
        if let length = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap({ Int($0.value) }) {
            guard rest.count >= length else { return atEnd ? Response(status: status, headers: headers, body: Data(rest)) : nil }
            return Response(status: status, headers: headers, body: Data(rest.prefix(length)))
        }
        if headers.contains(where: { $0.name.lowercased() == "transfer-encoding" }) {
            guard let body = dechunk(Data(rest)) else { return atEnd ? Response(status: status, headers: headers, body: Data(rest)) : nil }
            return Response(status: status, headers: headers, body: body)
        }
        return atEnd ? Response(status: status, headers: headers, body: Data(rest)) : nil
    }

    /// The body of a complete chunked encoding, or `nil` while it is incomplete.
    static func dechunk(_ data: Data) -> Data? {
        var body = Data()
        var index = data.startIndex
        while true {
            guard let lineEnd = data[index...].range(of: Data("\r\n".utf8)) else { return nil }
            let sizeText = String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            let start = lineEnd.upperBound
            if size == 0 { return body }
            guard data.endIndex - start >= size + 2 else { return nil }
            body.append(data[start..<start + size])
            index = start + size + 2
        }
    }

    /// A request with `head` lines (request line and headers, without the blank line) and
    /// `body`; `Content-Length` is added unless `contentLength` is `false` or one is in `head`.
    static func request(_ head: [String], body: Data = Data(), contentLength: Bool = true) -> Data {
        request(bytes: head.map { Data($0.utf8) }, body: body, contentLength: contentLength)
    }

    /// `request(_:body:contentLength:)` with head lines as raw bytes (which may not be UTF-8).
    static func request(bytes head: [Data], body: Data = Data(), contentLength: Bool = true) -> Data {
        var lines = head
        let hasLength = head.contains { String(decoding: $0, as: UTF8.self).lowercased().hasPrefix("content-length:") }
        let method = head.first.map { String(decoding: $0.prefix { $0 != 0x20 }, as: UTF8.self) } ?? ""
        if contentLength && !hasLength && (!body.isEmpty || ["POST", "PUT", "PATCH"].contains(method)) {
            lines.append(Data("Content-Length: \(body.count)".utf8))
        }
        var data = Data()
        for line in lines { data += line + Data("\r\n".utf8) }
        return data + Data("\r\n".utf8) + body
    }
}

struct RawHTTPError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
