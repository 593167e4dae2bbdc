import NIOCore

/// One direction of the emulated link, shared by every connection through the proxy.
///
/// Connections with bytes waiting queue for the link; it takes a slice of at most ``quantum``
/// bytes from each in turn, at most at the direction's cap (a serialisation clock: a slice of
/// `n` bytes occupies the link for `n / rate`), and stamps each slice with the time it reaches
/// the other side: when the link has finished sending it, plus the delay. Only touched on the
/// proxy's event loop.
final class LinkScheduler {
    /// The largest slice one connection sends in one turn.
    static let quantum = 16 * 1024
    /// How far ahead of the clock the link may release bytes (its burst).
    static let horizon = TimeAmount.milliseconds(2)
    /// How much link time a late wake-up may make up for while the link is backlogged (the
    /// event loop can be descheduled on a busy machine; a real link would have kept sending).
    static let catchUp = TimeAmount.milliseconds(50)

    private let loop: any EventLoop
    /// Delay and cap (changed by ``FaultProxy/setLink(_:)``; applies to bytes not yet sent).
    var direction: LinkProfile.Direction
    /// When the link has finished sending every slice released so far.
    private var linkFreeAt = NIODeadline.uptimeNanoseconds(0)
    private var waiting = CircularBuffer<LinkPipe>()
    private var wakeUp: Scheduled<Void>?
    /// Whether bytes were waiting for the link the last time it was busy (no idle time since).
    private var backlogged = false

    init(loop: any EventLoop, direction: LinkProfile.Direction) {
        self.loop = loop
        self.direction = direction
    }

    /// Gives `pipe`, which has bytes waiting, a turn on the link.
    func enqueue(_ pipe: LinkPipe) {
        guard !pipe.isQueuedForLink else { return }
        pipe.isQueuedForLink = true
        waiting.append(pipe)
        if wakeUp == nil {
            pump()
        }
    }

    /// Releases slices while the link has room, then sleeps until it has room again.
    private func pump() {
        wakeUp = nil
        let now = NIODeadline.now()
        let delay = TimeAmount.nanoseconds(direction.delay.nanoseconds)
        let rate = direction.bytesPerSecond
        // A backlogged link sends without gaps: a late wake-up releases what it would have sent.
        let earliestStart = backlogged ? now - Self.catchUp : now
        while let pipe = waiting.first {
            if rate != nil, linkFreeAt > now + Self.horizon {
                // The link is busy: come back when it has drained to half the horizon.
                let at = linkFreeAt - TimeAmount.nanoseconds(Self.horizon.nanoseconds / 2)
                wakeUp = loop.assumeIsolated().scheduleTask(deadline: at) { self.pump() }
                backlogged = true
                return
            }
            waiting.removeFirst()
            guard let slice = pipe.takeWaiting(upTo: Self.quantum) else {
                pipe.isQueuedForLink = false
                continue
            }
            let arrival: NIODeadline
            if let rate {
                let start = max(earliestStart, linkFreeAt)
                linkFreeAt = start + .nanoseconds(Int64((Double(slice.readableBytes) / rate * 1e9).rounded(.up)))
                arrival = linkFreeAt + delay
            } else {
                arrival = now + delay
            }
            if pipe.hasWaitingBytes {
                waiting.append(pipe)
            } else {
                pipe.isQueuedForLink = false
            }
            pipe.transmit(slice, arrivingAt: arrival)
        }
        // Nothing waits: the link goes idle.
        backlogged = false
    }

    /// Forgets every queued pipe and timer (the proxy stops).
    func reset() {
        wakeUp?.cancel()
        wakeUp = nil
        for pipe in waiting { pipe.isQueuedForLink = false }
        waiting.removeAll()
    }
}
