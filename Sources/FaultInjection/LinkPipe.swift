import NIOCore

/// One direction of one proxied connection: the bytes its sender has sent that its receiver has
/// not been handed yet.
///
/// Bytes first wait for their turn on the link (``LinkScheduler``), then travel in a delay line
/// (in order, each slice delivered when it arrives). When the direction has neither delay nor
/// cap, bytes are written to the receiver at once. The pipe holds at most about its limit: the
/// sender's handler reads only while ``canAccept`` (the proxy's back-pressure). Only touched on
/// the proxy's event loop.
final class LinkPipe {
    /// What happens once every byte has been delivered.
    enum Ending {
        /// Close the receiver's output (the sender half-closed).
        case halfClose
        /// Close the whole connection (the sender went away, or a cut).
        case close
    }

    private struct InFlight {
        var arrival: NIODeadline
        var buffer: ByteBuffer
    }

    private unowned let connection: ProxyConnection
    private let scheduler: LinkScheduler
    private let loop: any EventLoop
    /// Whether this pipe carries bytes from the client to the target.
    let isUpstream: Bool
    /// The handler that reads what goes in (resumed when the pipe has room again).
    weak var source: GlueHandler?
    /// The handler that writes what comes out.
    weak var destination: GlueHandler?
    /// Whether the scheduler has this pipe in its queue.
    var isQueuedForLink = false

    private var waiting = CircularBuffer<ByteBuffer>()
    private var waitingBytes = 0
    private var inFlight = CircularBuffer<InFlight>()
    private var inFlightBytes = 0
    /// Delivered to the receiver's channel, not yet written to its socket.
    private var unwrittenBytes = 0
    /// Nothing leaves before this (the handshake of a new connection).
    private var notBefore: NIODeadline?
    private var startTimer: Scheduled<Void>?
    private var deliveryTimer: Scheduled<Void>?
    private var ending: Ending?
    private var ended = false
    private var closed = false
    /// Whether bytes were written directly since the last flush.
    private var unflushed = false

    init(connection: ProxyConnection, scheduler: LinkScheduler, isUpstream: Bool, notBefore: NIODeadline?) {
        self.connection = connection
        self.scheduler = scheduler
        self.loop = connection.inbound.eventLoop
        self.isUpstream = isUpstream
        self.notBefore = notBefore
    }

    private var state: ProxyState { connection.state }

    private var limit: Int { state.link.bufferLimit(for: scheduler.direction) }

    /// Whether the sender may be read from: the pipe (waiting, in flight, and handed to the
    /// receiver but not yet written) is below its limit and the receiver writable.
    var canAccept: Bool {
        guard !closed, let destination, destination.isWritable else { return false }
        return waitingBytes + inFlightBytes + unwrittenBytes < limit
    }

    var hasWaitingBytes: Bool { waitingBytes > 0 }

    private var isEmpty: Bool { waitingBytes == 0 && inFlightBytes == 0 }

    // MARK: Sender side

    /// Takes `buffer` from the sender.
    func send(_ buffer: ByteBuffer) {
        guard !closed, ending == nil, buffer.readableBytes > 0 else { return }
        state.noteBuffered(buffer.readableBytes)
        if isEmpty, notBefore == nil, scheduler.direction.isPassthrough {
            deliver(buffer)
            unflushed = true
            return
        }
        waiting.append(buffer)
        waitingBytes += buffer.readableBytes
        requestLink()
    }

    /// Flushes bytes written straight through (at the end of a read burst).
    func flushDirectWrites() {
        guard unflushed else { return }
        unflushed = false
        destination?.flushOutput()
    }

    /// Ends the pipe once everything in it has been delivered.
    func finish(_ ending: Ending) {
        guard !closed else { return }
        switch (self.ending, ending) {
        case (nil, _):
            self.ending = ending
        case (.halfClose, .close):
            // The sender went away after half-closing: close the connection once drained.
            self.ending = .close
            ended = false
        default:
            return
        }
        endIfDrained()
    }

    // MARK: Link side

    private func requestLink() {
        if let notBefore {
            if NIODeadline.now() < notBefore {
                if startTimer == nil {
                    startTimer = loop.assumeIsolated().scheduleTask(deadline: notBefore) {
                        self.startTimer = nil
                        self.requestLink()
                    }
                }
                return
            }
            self.notBefore = nil
        }
        if waitingBytes > 0 {
            scheduler.enqueue(self)
        }
    }

    /// Called by the scheduler: the next slice of at most `count` bytes, if any.
    func takeWaiting(upTo count: Int) -> ByteBuffer? {
        guard !closed, var head = waiting.first else { return nil }
        let slice: ByteBuffer
        if head.readableBytes <= count {
            slice = head
            waiting.removeFirst()
        } else {
            slice = head.readSlice(length: count)!
            waiting[waiting.startIndex] = head
        }
        waitingBytes -= slice.readableBytes
        return slice
    }

    /// Called by the scheduler: `slice` has left and reaches the receiver at `arrival`.
    func transmit(_ slice: ByteBuffer, arrivingAt arrival: NIODeadline) {
        guard !closed else { return }
        inFlight.append(InFlight(arrival: arrival, buffer: slice))
        inFlightBytes += slice.readableBytes
        if deliveryTimer == nil {
            armDelivery(at: arrival)
        }
    }

    private func armDelivery(at deadline: NIODeadline) {
        deliveryTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { self.deliverArrived() }
    }

    private func deliverArrived() {
        deliveryTimer = nil
        guard !closed else { return }
        // Timers fire a little late; take what is due within a fraction of a millisecond too.
        let now = NIODeadline.now() + .microseconds(250)
        var delivered = false
        while let head = inFlight.first, head.arrival <= now {
            inFlight.removeFirst()
            inFlightBytes -= head.buffer.readableBytes
            deliver(head.buffer)
            delivered = true
        }
        if delivered {
            destination?.flushOutput()
        }
        if let next = inFlight.first {
            armDelivery(at: next.arrival)
        }
        source?.resumeReading()
        endIfDrained()
    }

    // MARK: Receiver side

    private func deliver(_ buffer: ByteBuffer) {
        let count = buffer.readableBytes
        guard let destination else {
            state.noteBuffered(-count)
            return
        }
        if isUpstream {
            state.statistics.bytesUpstream += Int64(count)
        } else {
            state.statistics.bytesDownstream += Int64(count)
        }
        unwrittenBytes += count
        let state = self.state
        let written = loop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.unwrittenBytes -= count
            state.noteBuffered(-count)
            self.source?.resumeReading()
        }
        destination.writeOutput(buffer, promise: written)
    }

    private func endIfDrained() {
        guard let ending, !ended, isEmpty else { return }
        ended = true
        let connection = self.connection
        switch ending {
        case .halfClose:
            destination?.flushOutput()
            destination?.closeOutput()
        case .close:
            if let destination {
                destination.flushOutput { connection.close() }
            } else {
                connection.close()
            }
        }
    }

    /// Drops whatever the pipe holds and stops its timers (the connection closes).
    func close() {
        guard !closed else { return }
        closed = true
        startTimer?.cancel()
        deliveryTimer?.cancel()
        startTimer = nil
        deliveryTimer = nil
        state.noteBuffered(-(waitingBytes + inFlightBytes))
        waiting.removeAll()
        inFlight.removeAll()
        waitingBytes = 0
        inFlightBytes = 0
    }
}
