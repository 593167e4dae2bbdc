import Logging
import NIOCore
import NIOPosix

/// A loopback TCP proxy that injects network faults, for tests.
///
/// The proxy listens on `127.0.0.1` (a random port by default) and forwards every connection to a
/// target. Under test control it can:
/// - cut connections after a random number of bytes sent upstream (client → target), optionally
///   counted from a trigger such as `"PATCH "` so that cuts land inside request bodies
///   (``CutPolicy``); the positions come from a seeded generator, so a run is reproducible;
/// - simulate an outage (``beginOutage(_:dropExisting:)``): new connections are refused (the port
///   stops listening) or accepted and closed at once, and existing connections are dropped;
/// - emulate a slower, longer link (``LinkProfile``): a one-way delay and a bandwidth cap per
///   direction, shared by all connections, and a round trip for each new connection;
/// - report what it forwarded (``statistics()``).
///
/// Memory stays bounded: a side is read only while the bytes the proxy holds for that
/// direction of that connection stay under the profile's buffer limit and the other side is
/// writable.
///
/// All state lives on the proxy's own single-threaded event loop.
public final class FaultProxy: Sendable {
    /// How an outage treats new connections.
    public enum OutageMode: Sendable, Hashable {
        /// The proxy stops listening: connecting fails with "connection refused".
        case refuse
        /// Connections are accepted and closed immediately, before any byte is forwarded.
        case closeImmediately
    }

    /// Counters since the proxy started.
    public struct Statistics: Sendable, Hashable {
        /// Connections accepted and forwarded to the target.
        public var connectionsForwarded: Int = 0
        /// Connections closed at once because of an outage (refused ones never reach the proxy).
        public var connectionsRejected: Int = 0
        /// Connections cut by the ``CutPolicy``.
        public var cuts: Int = 0
        /// Connections dropped when an outage began.
        public var dropped: Int = 0
        /// Bytes forwarded from clients to the target.
        public var bytesUpstream: Int64 = 0
        /// Bytes forwarded from the target to clients.
        public var bytesDownstream: Int64 = 0
        /// Bytes the proxy holds now: read from one side, not yet written to the other's socket.
        public var bufferedBytes: Int = 0
        /// The most bytes the proxy has held at once.
        public var peakBufferedBytes: Int = 0
    }

    /// The port the proxy listens on.
    public let port: Int
    /// The address the proxy listens on.
    public let listenHost: String
    /// The target's host and port.
    public let targetHost: String
    public let targetPort: Int

    let group: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    let state: NIOLoopBound<ProxyState>
    let logger: Logger

    private init(
        port: Int,
        listenHost: String,
        targetHost: String,
        targetPort: Int,
        group: MultiThreadedEventLoopGroup,
        state: NIOLoopBound<ProxyState>,
        logger: Logger
    ) {
        self.port = port
        self.listenHost = listenHost
        self.targetHost = targetHost
        self.targetPort = targetPort
        self.group = group
        self.loop = group.next()
        self.state = state
        self.logger = logger
    }

    /// Starts a proxy in front of `targetHost:targetPort`.
    ///
    /// - Parameters:
    ///   - targetHost: Where connections go (default `127.0.0.1`).
    ///   - targetPort: The target's port.
    ///   - port: The port to listen on; 0 picks a free one.
    ///   - seed: Seeds the generator that picks cut positions.
    ///   - link: The link to emulate (default: none, bytes are forwarded at once).
    ///   - listenHost: The address to listen on (default `127.0.0.1`).
    ///   - logger: Where the proxy logs cuts and outages.
    public static func start(
        targetHost: String = "127.0.0.1",
        targetPort: Int,
        port: Int = 0,
        seed: UInt64 = 0x5EED,
        link: LinkProfile = .unlimited,
        listenHost: String = "127.0.0.1",
        logger: Logger
    ) async throws -> FaultProxy {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let state = try await loop.submit {
            NIOLoopBound(
                ProxyState(
                    seed: seed, link: link, loop: loop, targetHost: targetHost, targetPort: targetPort, logger: logger),
                eventLoop: loop)
        }.get()
        do {
            let channel = try await Self.bind(state: state, group: group, host: listenHost, port: port).get()
            let boundPort = channel.localAddress?.port ?? port
            try await loop.submit { state.value.listener = channel }.get()
            return FaultProxy(
                port: boundPort,
                listenHost: listenHost,
                targetHost: targetHost,
                targetPort: targetPort,
                group: group,
                state: state,
                logger: logger
            )
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening, closes every connection and shuts the event loop down.
    public func stop() async throws {
        try await loop.flatSubmit { () -> EventLoopFuture<Void> in
            let state = self.state.value
            state.policy = nil
            let listener = state.listener
            state.listener = nil
            state.stopped = true
            state.dropAll()
            return listener?.close() ?? self.loop.makeSucceededVoidFuture()
        }.get()
        try await group.shutdownGracefully()
    }

    // MARK: Faults

    /// Sets (or with `nil`, clears) the policy that cuts connections.
    public func setCutPolicy(_ policy: CutPolicy?) async throws {
        try await loop.submit { self.state.value.policy = policy }.get()
    }

    /// Changes the emulated link. Bytes already on their way keep their arrival time; a new
    /// handshake time applies to connections accepted from now on.
    public func setLink(_ link: LinkProfile) async throws {
        try await loop.submit { self.state.value.link = link }.get()
    }

    /// The emulated link.
    public func link() async throws -> LinkProfile {
        try await loop.submit { self.state.value.link }.get()
    }

    /// Starts an outage: new connections are refused or closed, and (by default) open ones dropped.
    public func beginOutage(_ mode: OutageMode = .refuse, dropExisting: Bool = true) async throws {
        try await loop.flatSubmit { () -> EventLoopFuture<Void> in
            let state = self.state.value
            state.outage = mode
            if dropExisting {
                state.statistics.dropped += state.connections.count
                state.dropAll()
            }
            self.logger.debug("fault proxy outage begins", metadata: ["proxy.mode": "\(mode)"])
            guard mode == .refuse, let listener = state.listener else { return self.loop.makeSucceededVoidFuture() }
            state.listener = nil
            return listener.close()
        }.get()
    }

    /// Ends an outage: the proxy listens (on the same port) and forwards again.
    public func endOutage() async throws {
        let needsBind = try await loop.submit { () -> Bool in
            let state = self.state.value
            state.outage = nil
            return state.listener == nil && !state.stopped
        }.get()
        guard needsBind else { return }
        var attempts = 0
        while true {
            do {
                let channel = try await Self.bind(state: state, group: group, host: listenHost, port: port).get()
                try await loop.submit { self.state.value.listener = channel }.get()
                break
            } catch {
                attempts += 1
                if attempts >= 50 { throw error }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        logger.debug("fault proxy outage ends")
    }

    /// Runs an outage for `duration`, then ends it.
    public func outage(for duration: Duration, mode: OutageMode = .refuse) async throws {
        try await beginOutage(mode)
        try await Task.sleep(for: duration)
        try await endOutage()
    }

    /// Closes every open connection now (without starting an outage).
    public func dropConnections() async throws {
        try await loop.submit {
            let state = self.state.value
            state.statistics.dropped += state.connections.count
            state.dropAll()
        }.get()
    }

    /// The counters so far.
    public func statistics() async throws -> Statistics {
        try await loop.submit { self.state.value.statistics }.get()
    }

    // MARK: Internals

    private static func bind(
        state: NIOLoopBound<ProxyState>,
        group: MultiThreadedEventLoopGroup,
        host: String,
        port: Int
    ) -> EventLoopFuture<any Channel> {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { inbound in
                state.value.accept(inbound)
            }
            .bind(host: host, port: port)
    }
}
