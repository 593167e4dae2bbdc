import Logging
import NIOCore

/// Forwards bytes between the two channels of one proxied connection, with backpressure
/// (a side reads only while its partner is writable), and applies cuts to upstream bytes.
final class GlueHandler {
    private let connection: ProxyConnection
    /// Whether this handler sits on the client side (its reads go upstream).
    private let isClientSide: Bool
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    private init(connection: ProxyConnection, isClientSide: Bool) {
        self.connection = connection
        self.isClientSide = isClientSide
    }

    /// A client-side and a target-side handler that forward to each other.
    static func matchedPair(connection: ProxyConnection) -> (client: GlueHandler, target: GlueHandler) {
        let client = GlueHandler(connection: connection, isClientSide: true)
        let target = GlueHandler(connection: connection, isClientSide: false)
        client.partner = target
        target.partner = client
        return (client, target)
    }

    private func partnerWrite(_ buffer: ByteBuffer) {
        context?.write(NIOAny(buffer), promise: nil)
    }

    private func partnerFlush(then action: (() -> Void)? = nil) {
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

    private func partnerWriteEOF() {
        context?.close(mode: .output, promise: nil)
    }

    private var partnerWritable: Bool {
        context?.channel.isWritable ?? false
    }

    private func partnerBecameWritable() {
        if pendingRead {
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
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let state = connection.state
        guard isClientSide else {
            state.statistics.bytesDownstream += Int64(buffer.readableBytes)
            partner?.partnerWrite(buffer)
            return
        }
        let (forward, cut) = connection.inspectUpstream(buffer)
        if forward > 0, let slice = buffer.readSlice(length: forward) {
            state.statistics.bytesUpstream += Int64(forward)
            partner?.partnerWrite(slice)
        }
        if cut {
            state.statistics.cuts += 1
            state.logger.debug("fault proxy cuts a connection", metadata: ["proxy.cut": "\(state.statistics.cuts)"])
            let connection = self.connection
            partner?.partnerFlush { connection.close() }
            // Stop forwarding anything else this connection sends.
            self.partner = nil
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.close()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            partner?.partnerWriteEOF()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.close()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else if partner != nil {
            pendingRead = true
        }
    }
}
