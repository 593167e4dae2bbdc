import Logging
import NIOCore
import NIOPosix

/// The proxy's mutable state; only touched on its event loop.
final class ProxyState {
    var policy: CutPolicy?
    var outage: FaultProxy.OutageMode?
    var listener: (any Channel)?
    var stopped = false
    var statistics = FaultProxy.Statistics()
    var connections: [ObjectIdentifier: ProxyConnection] = [:]
    var generator: SeededGenerator
    /// The emulated link (delay, caps, handshake, buffer limits).
    var link: LinkProfile {
        didSet {
            upstreamLink.direction = link.upstream
            downstreamLink.direction = link.downstream
        }
    }
    /// The link's two directions, shared by every connection.
    let upstreamLink: LinkScheduler
    let downstreamLink: LinkScheduler
    let targetHost: String
    let targetPort: Int
    let logger: Logger

    init(seed: UInt64, link: LinkProfile, loop: any EventLoop, targetHost: String, targetPort: Int, logger: Logger) {
        self.generator = SeededGenerator(seed: seed)
        self.link = link
        self.upstreamLink = LinkScheduler(loop: loop, direction: link.upstream)
        self.downstreamLink = LinkScheduler(loop: loop, direction: link.downstream)
        self.targetHost = targetHost
        self.targetPort = targetPort
        self.logger = logger
    }

    /// Counts bytes the proxy holds (taken from a sender, not yet written to a receiver's socket).
    func noteBuffered(_ delta: Int) {
        statistics.bufferedBytes += delta
        statistics.peakBufferedBytes = max(statistics.peakBufferedBytes, statistics.bufferedBytes)
    }

    /// Called for every accepted connection: connects to the target and glues the two together.
    func accept(_ inbound: any Channel) -> EventLoopFuture<Void> {
        if outage != nil || stopped {
            statistics.connectionsRejected += 1
            return inbound.close()
        }
        let connection = ProxyConnection(state: self, inbound: inbound)
        connections[ObjectIdentifier(connection)] = connection
        // Once glued, the handlers close the connection (after delivering what is in flight).
        inbound.closeFuture.assumeIsolated().whenComplete { _ in
            if !connection.isGlued { connection.close() }
        }
        return ClientBootstrap(group: inbound.eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(host: targetHost, port: targetPort)
            .assumeIsolated()
            .flatMap { outbound in
                connection.outbound = outbound
                outbound.closeFuture.assumeIsolated().whenComplete { _ in
                    if !connection.isGlued { connection.close() }
                }
                guard !connection.isClosed else {
                    connection.close()
                    return inbound.eventLoop.makeSucceededVoidFuture()
                }
                let (client, target) = GlueHandler.matchedPair(connection: connection)
                do {
                    try inbound.pipeline.syncOperations.addHandler(client)
                    try outbound.pipeline.syncOperations.addHandler(target)
                } catch {
                    return inbound.eventLoop.makeFailedFuture(error)
                }
                connection.isGlued = true
                self.statistics.connectionsForwarded += 1
                return inbound.setOption(.autoRead, value: true)
            }
            .flatMapError { error in
                self.logger.debug("fault proxy cannot reach the target", metadata: ["proxy.error": "\(error)"])
                connection.close()
                return inbound.eventLoop.makeSucceededVoidFuture()
            }
            .nonisolated()
    }

    func forget(_ connection: ProxyConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }

    func dropAll() {
        for connection in connections.values {
            connection.close()
        }
        if stopped {
            upstreamLink.reset()
            downstreamLink.reset()
        }
    }

    /// Decides, for a trigger just seen, how many more upstream bytes pass before the cut (`nil`: no cut).
    func drawCut() -> Int? {
        guard let policy else { return nil }
        if let maximum = policy.maximumCuts, statistics.cuts >= maximum { return nil }
        guard Double.random(in: 0..<1, using: &generator) < policy.probability else { return nil }
        return Int.random(in: policy.bytesAfterTrigger, using: &generator)
    }
}

/// One proxied connection: the client side, the target side, the two directions between them,
/// and the cut bookkeeping.
final class ProxyConnection {
    unowned let state: ProxyState
    let inbound: any Channel
    var outbound: (any Channel)?
    /// Client → target.
    private(set) var upstream: LinkPipe!
    /// Target → client.
    private(set) var downstream: LinkPipe!
    /// Whether the handlers are in place (from then on they decide when to close).
    var isGlued = false
    /// Upstream bytes left before the cut, once armed.
    var bytesUntilCut: Int?
    /// The last bytes seen upstream, to find a trigger split across reads.
    var tail: [UInt8] = []
    private var closed = false

    init(state: ProxyState, inbound: any Channel) {
        self.state = state
        self.inbound = inbound
        if state.policy?.trigger == nil {
            bytesUntilCut = state.drawCut()
        }
        let handshake = state.link.handshakeTime
        let notBefore = handshake > .zero ? NIODeadline.now() + .nanoseconds(handshake.nanoseconds) : nil
        upstream = LinkPipe(connection: self, scheduler: state.upstreamLink, isUpstream: true, notBefore: notBefore)
        downstream = LinkPipe(connection: self, scheduler: state.downstreamLink, isUpstream: false, notBefore: nil)
    }

    var isClosed: Bool { closed }

    /// One side's channel closed: deliver what it sent, then close; drop what was going to it.
    func sideClosed(outgoing: LinkPipe, incoming: LinkPipe) {
        incoming.close()
        outgoing.finish(.close)
    }

    /// Scans an upstream buffer; returns how many of its bytes may pass and whether to cut after them.
    func inspectUpstream(_ buffer: ByteBuffer) -> (forward: Int, cut: Bool) {
        let count = buffer.readableBytes
        if let remaining = bytesUntilCut {
            if remaining < count {
                return (remaining, true)
            }
            bytesUntilCut = remaining - count
            return (count, false)
        }
        guard let trigger = state.policy?.trigger else {
            return (count, false)
        }
        // Look for the trigger in tail + buffer.
        let bytes = tail + buffer.readableBytesView
        var searchFrom = 0
        while let end = Self.findEnd(of: trigger, in: bytes, from: searchFrom) {
            searchFrom = end
            if let cutAfter = state.drawCut() {
                // `end` indexes into tail+buffer; bytes of this buffer after the trigger:
                let afterTrigger = bytes.count - end
                if cutAfter < afterTrigger {
                    tail = []
                    return (count - (afterTrigger - cutAfter), true)
                }
                bytesUntilCut = cutAfter - afterTrigger
                tail = []
                return (count, false)
            }
        }
        tail = Array(bytes.suffix(trigger.count - 1))
        return (count, false)
    }

    private static func findEnd(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count - start else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0] && haystack[index..<index + needle.count].elementsEqual(needle) {
                return index + needle.count
            }
            index += 1
        }
        return nil
    }

    func close() {
        guard !closed else { return }
        closed = true
        state.forget(self)
        upstream.close()
        downstream.close()
        inbound.close(promise: nil)
        outbound?.close(promise: nil)
    }
}
