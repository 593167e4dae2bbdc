/// When the ``FaultProxy`` cuts a connection.
///
/// Bytes sent upstream (client → target) are scanned for ``trigger``. Each time it appears, the
/// connection is chosen for a cut with probability ``probability``; a chosen connection is closed
/// (both sides) after a further number of upstream bytes drawn uniformly from ``bytesAfterTrigger``.
/// Bytes up to the cut point are forwarded, the rest are dropped. With a `nil` trigger, the count
/// starts when the connection opens.
public struct CutPolicy: Sendable, Hashable {
    /// The byte sequence that arms a cut (e.g. `"PATCH "`), or `nil` to arm at connection start.
    public var trigger: [UInt8]?
    /// How many upstream bytes after the trigger's end are forwarded before the cut.
    public var bytesAfterTrigger: ClosedRange<Int>
    /// The chance that one trigger leads to a cut, in `0...1`.
    public var probability: Double
    /// The most cuts this policy makes, or `nil` for no limit.
    public var maximumCuts: Int?

    /// Creates a policy.
    public init(trigger: [UInt8]?, bytesAfterTrigger: ClosedRange<Int>, probability: Double = 1, maximumCuts: Int? = nil) {
        self.trigger = trigger.flatMap { $0.isEmpty ? nil : $0 }
        self.bytesAfterTrigger = bytesAfterTrigger
        self.probability = min(1, max(0, probability))
        self.maximumCuts = maximumCuts
    }

    /// Cuts inside HTTP `PATCH` requests: after `bytes` upstream bytes counted from the `PATCH `
    /// request line (pick a lower bound above the header size to land inside the body).
    public static func insidePatchBodies(
        bytes: ClosedRange<Int>,
        probability: Double = 1,
        maximumCuts: Int? = nil
    ) -> CutPolicy {
        CutPolicy(trigger: Array("PATCH ".utf8), bytesAfterTrigger: bytes, probability: probability, maximumCuts: maximumCuts)
    }
}

/// A small seeded generator (SplitMix64), so that fault positions are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from `seed`.
    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
