import Crypto
import FaultInjection
import NIOCore
import NIOPosix
import Synchronization

/// A loopback TCP server that the link-emulation tests reach through a ``FaultProxy``: it echoes,
/// swallows (and reports what it got, when) or produces bytes.
final class PeerServer: Sendable {
    /// The event loops of the test peers, apart from those of other suites running in parallel
    /// (a busy shared loop would add its queueing to every measured time).
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    enum Mode: Sendable {
        /// Writes back everything it reads, until the client closes.
        case echo
        /// Reads until the client half-closes or goes away, then reports (``reports``).
        case sink
        /// Reads `bytes`, then reports and closes (the client need not half-close).
        case sinkUntil(bytes: Int)
        /// After the first bytes arrive, sends `payload`; then waits for the client to close.
        case source(payload: ByteBuffer)
    }

    /// What a sink received on one connection.
    struct Report: Sendable {
        var bytes: Int
        var digest: [UInt8]
        var firstByte: ContinuousClock.Instant?
        var lastByte: ContinuousClock.Instant?
        /// Whether the connection ended with an error rather than an end of stream.
        var failed: Bool
    }

    let port: Int
    /// One report per connection a sink served, in the order they ended.
    let reports: AsyncStream<Report>
    private let channel: any Channel
    private let task: Task<Void, Never>

    private init(port: Int, reports: AsyncStream<Report>, channel: any Channel, task: Task<Void, Never>) {
        self.port = port
        self.reports = reports
        self.channel = channel
        self.task = task
    }

    static func start(_ mode: Mode) async throws -> PeerServer {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture {
                    let arrivals = Arrivals()
                    try child.pipeline.syncOperations.addHandler(ArrivalHandler(arrivals))
                    let channel = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: child,
                        configuration: .init(backPressureStrategy: inboundBuffering, isOutboundHalfClosureEnabled: true))
                    return (channel, arrivals)
                }
            }
        let (reports, continuation) = AsyncStream.makeStream(of: Report.self)
        let task = Task {
            try? await server.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await (connection, arrivals) in connections {
                            group.addTask { await serve(connection, arrivals: arrivals, mode: mode, reports: continuation) }
                        }
                    } catch {}
                }
            }
            continuation.finish()
        }
        return PeerServer(port: server.channel.localAddress!.port!, reports: reports, channel: server.channel, task: task)
    }

    /// Stops accepting; connections still open end when their clients close them.
    func stop() async {
        try? await channel.close()
        await task.value
    }

    /// How much a connection reads ahead of the task consuming it (in reads): enough that a
    /// late task (the cooperative pool is shared with every suite running in parallel) does not
    /// hold back the proxy, which would then measure the task rather than the link.
    static let inboundBuffering = NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark(lowWatermark: 256, highWatermark: 4096)

    private static func serve(
        _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
        arrivals: Arrivals,
        mode: Mode,
        reports: AsyncStream<Report>.Continuation
    ) async {
        switch mode {
        case .echo:
            try? await connection.executeThenClose { inbound, outbound in
                for try await buffer in inbound {
                    try await outbound.write(buffer)
                }
            }
        case .sink, .sinkUntil:
            var expected: Int?
            if case .sinkUntil(let bytes) = mode { expected = bytes }
            var report = Report(bytes: 0, digest: [], firstByte: nil, lastByte: nil, failed: false)
            var hasher = SHA256()
            do {
                try await connection.executeThenClose { inbound, _ in
                    for try await buffer in inbound {
                        report.bytes += buffer.readableBytes
                        buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                        if let expected, report.bytes >= expected { break }
                    }
                }
            } catch {
                report.failed = true
            }
            (report.firstByte, report.lastByte) = arrivals.range
            report.digest = Array(hasher.finalize())
            reports.yield(report)
        case .source(let payload):
            try? await connection.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                guard try await iterator.next() != nil else { return }
                var remaining = payload
                while let slice = remaining.readSlice(length: min(64 * 1024, remaining.readableBytes)), slice.readableBytes > 0 {
                    try await outbound.write(slice)
                }
                // The client closes once it has everything; closing first could drop unsent bytes.
                while try await iterator.next() != nil {}
            }
        }
    }
}

/// When bytes reached a peer connection: noted on its event loop as they are read, not when the
/// task consuming them gets to them.
final class Arrivals: Sendable {
    private let instants = Mutex<(first: ContinuousClock.Instant?, last: ContinuousClock.Instant?)>((nil, nil))

    func note(_ instant: ContinuousClock.Instant) {
        instants.withLock { instants in
            if instants.first == nil { instants.first = instant }
            instants.last = instant
        }
    }

    var range: (first: ContinuousClock.Instant?, last: ContinuousClock.Instant?) { instants.withLock { $0 } }
}

/// Notes each read's arrival, then passes it on.
private final class ArrivalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let arrivals: Arrivals

    init(_ arrivals: Arrivals) { self.arrivals = arrivals }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        arrivals.note(.now)
        context.fireChannelRead(data)
    }
}

/// A client connection for the link-emulation tests.
typealias PeerConnection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

/// Connects to `port` on loopback.
func connectPeer(port: Int) async throws -> PeerConnection {
    try await ClientBootstrap(group: PeerServer.group)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .connectTimeout(.seconds(5))
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try PeerConnection(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: true))
            }
        }
}

/// `count` reproducible pseudo-random bytes.
func randomPayload(count: Int, seed: UInt64) -> ByteBuffer {
    var generator = SeededGenerator(seed: seed)
    var words = [UInt64](repeating: 0, count: (count + 7) / 8)
    for index in words.indices { words[index] = generator.next() }
    return words.withUnsafeBytes { ByteBuffer(bytes: $0.prefix(count)) }
}

/// The SHA-256 of a buffer's readable bytes.
func sha256(_ buffer: ByteBuffer) -> [UInt8] {
    buffer.withUnsafeReadableBytes { Array(SHA256.hash(data: $0)) }
}
