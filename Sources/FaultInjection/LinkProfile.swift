/// The network link a ``FaultProxy`` emulates between its clients and its target.
///
/// Each direction has a one-way delay and an optional bandwidth cap:
/// - the cap is a link cap, shared by every connection through the proxy (as an uplink is): bytes
///   leave in turn, at most at the cap, each connection getting a fair share;
/// - the delay is a delay line: a byte that leaves at `t` reaches the other side at `t + delay`,
///   in order, while later bytes follow it (a connection keeps the full bandwidth, not one
///   buffer per round trip).
///
/// A new connection costs one round trip (``Direction/delay`` up plus down) before its first byte
/// leaves, as a TCP handshake over that link would, when ``handshake`` is on.
public struct LinkProfile: Sendable, Hashable {
    /// One direction of the link.
    public struct Direction: Sendable, Hashable {
        /// How long a byte travels once it has left.
        public var delay: Duration
        /// The most bits per second the direction carries (all connections together), or `nil`
        /// for no cap.
        public var bitsPerSecond: Int64?

        /// Creates a direction; a cap must be positive.
        public init(delay: Duration = .zero, bitsPerSecond: Int64? = nil) {
            precondition(delay >= .zero, "a link delay cannot be negative")
            precondition(bitsPerSecond.map { $0 > 0 } ?? true, "a bandwidth cap must be positive")
            self.delay = delay
            self.bitsPerSecond = bitsPerSecond
        }

        /// No delay and no cap: bytes are forwarded as soon as they are read.
        public static let unlimited = Direction()

        /// A direction with `delay` and a cap of `megabits` Mbit/s (10⁶ bits per second).
        public static func megabits(_ megabits: Double, delay: Duration = .zero) -> Direction {
            Direction(delay: delay, bitsPerSecond: Int64((megabits * 1_000_000).rounded()))
        }

        /// The cap in bytes per second, if any.
        public var bytesPerSecond: Double? { bitsPerSecond.map { Double($0) / 8 } }

        var isPassthrough: Bool { delay == .zero && bitsPerSecond == nil }
    }

    /// Client → target.
    public var upstream: Direction
    /// Target → client.
    public var downstream: Direction
    /// Whether a new connection waits one round trip before its first byte leaves.
    public var handshake: Bool
    /// The most bytes one connection may hold in one direction (waiting for the link or in
    /// flight) before the proxy stops reading from its sender, or `nil` for a size derived from
    /// the link (twice the direction's bandwidth-delay product plus 256 KiB; 256 KiB without a
    /// delay, 4 MiB for a delay without a cap). One read burst (up to 256 KiB) may pass the limit;
    /// and when a sender closes its side, the proxy reads what its socket still holds (NIO reads
    /// to the end of the stream then).
    public var bufferLimit: Int?

    /// Creates a profile.
    public init(upstream: Direction, downstream: Direction, handshake: Bool = true, bufferLimit: Int? = nil) {
        precondition(bufferLimit.map { $0 > 0 } ?? true, "a buffer limit must be positive")
        self.upstream = upstream
        self.downstream = downstream
        self.handshake = handshake
        self.bufferLimit = bufferLimit
    }

    /// No delay, no cap, no handshake: the proxy forwards at once (the default).
    public static let unlimited = LinkProfile(upstream: .unlimited, downstream: .unlimited, handshake: false)

    /// A wide-area link: `roundTrip` split evenly between the directions, `upMegabits` Mbit/s
    /// from clients to the target and `downMegabits` back.
    public static func wideArea(roundTrip: Duration, upMegabits: Double?, downMegabits: Double?) -> LinkProfile {
        let oneWay = roundTrip / 2
        return LinkProfile(
            upstream: upMegabits.map { .megabits($0, delay: oneWay) } ?? Direction(delay: oneWay),
            downstream: downMegabits.map { .megabits($0, delay: oneWay) } ?? Direction(delay: oneWay)
        )
    }

    /// The time a new connection waits before its first byte leaves.
    public var handshakeTime: Duration { handshake ? upstream.delay + downstream.delay : .zero }

    var isPassthrough: Bool { upstream.isPassthrough && downstream.isPassthrough && handshakeTime == .zero }

    /// The buffer limit for one direction.
    func bufferLimit(for direction: Direction) -> Int {
        if let bufferLimit { return bufferLimit }
        let minimum = 256 * 1024
        guard let rate = direction.bytesPerSecond else {
            return direction.delay == .zero ? minimum : 4 * 1024 * 1024
        }
        let bandwidthDelay = rate * direction.delay.seconds
        return max(minimum, Int(bandwidthDelay * 2) + 256 * 1024)
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
