import Logging
import NIOCore

/// One side of a proxied connection: what its channel reads goes into ``outgoing`` (towards the
/// other side), what ``incoming`` delivers is written to its channel. A side reads only while
/// its outgoing pipe has room and the other side is writable (back-pressure); the client side
/// also applies cuts to what it reads.
final class GlueHandler {
    private let connection: ProxyConnection
    /// Whether this handler sits on the client side (its reads go upstream).
    private let isClientSide: Bool
    /// Carries this channel's reads to the other side.
    let outgoing: LinkPipe
    /// Carries the other side's reads to this channel.
    let incoming: LinkPipe
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Set once a cut has been decided: later reads are dropped.
    private var cutting = false

    private init(connection: ProxyConnection, isClientSide: Bool, outgoing: LinkPipe, incoming: LinkPipe) {
        self.connection = connection
        self.isClientSide = isClientSide
        self.outgoing = outgoing
        self.incoming = incoming
    }

    /// A client-side and a target-side handler joined by the connection's two pipes.
    static func matchedPair(connection: ProxyConnection) -> (client: GlueHandler, target: GlueHandler) {
        let client = GlueHandler(
            connection: connection, isClientSide: true, outgoing: connection.upstream, incoming: connection.downstream)
        let target = GlueHandler(
            connection: connection, isClientSide: false, outgoing: connection.downstream, incoming: connection.upstream)
        connection.upstream.source = client
        connection.upstream.destination = target
        connection.downstream.source = target
        connection.downstream.destination = client
        return (client, target)
    }

    // MARK: Used by the pipes

    /// Whether this channel takes more writes without buffering past its high-water mark.
    var isWritable: Bool {
        context?.channel.isWritable ?? false
    }

    func writeOutput(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(NIOAny(buffer), promise: promise)
    }

    /// Flushes, then runs `action` once the flushed bytes are written (or failed).
    func flushOutput(then action: (() -> Void)? = nil) {
        guard let context else {
            action?()
            return
        }
        if let action {
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { _ in action() }
            context.writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
        } else {
            context.flush()
        }
    }

    func closeOutput() {
        context?.close(mode: .output, promise: nil)
    }

    /// Reads again if a read was held back and the outgoing pipe has room now.
    func resumeReading() {
        if pendingRead, outgoing.canAccept {
            pendingRead = false
            context?.read()
        }
    }
}

extension GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard isClientSide else {
            outgoing.send(buffer)
            return
        }
        guard !cutting else { return }
        let (forward, cut) = connection.inspectUpstream(buffer)
        if forward > 0, let slice = buffer.readSlice(length: forward) {
            outgoing.send(slice)
        }
        if cut {
            let state = connection.state
            state.statistics.cuts += 1
            state.logger.debug("fault proxy cuts a connection", metadata: ["proxy.cut": "\(state.statistics.cuts)"])
            // Deliver what passed, then close both sides; ignore anything else this side sends.
            cutting = true
            outgoing.finish(.close)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        outgoing.flushDirectWrites()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.sideClosed(outgoing: outgoing, incoming: incoming)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            outgoing.finish(.halfClose)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.close()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            incoming.source?.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if outgoing.canAccept {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
