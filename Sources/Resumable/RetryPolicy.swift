import Foundation

/// How the tus client waits between attempts and when it gives up.
///
/// Delays grow exponentially from ``initialDelay`` by ``multiplier`` up to ``maximumDelay``; each
/// delay is then randomised by ``jitter`` (a fraction: `0.5` waits between 50 % and 100 % of the
/// computed delay). An operation fails with ``ResumableError/Code/outage`` once no request has
/// succeeded for ``outageLimit``; every successful request (including a `HEAD`) resets that clock.
/// The limit is checked between attempts, so an attempt in progress (bounded by the connect and
/// idle timeouts of ``TusClient/Configuration/Timeouts``) can extend it.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay before the first retry.
    public var initialDelay: Duration
    /// The upper bound of a single delay.
    public var maximumDelay: Duration
    /// The growth factor between consecutive delays.
    public var multiplier: Double
    /// The random fraction taken off each delay, in `0...1`.
    public var jitter: Double
    /// How long the client keeps trying without any successful request before it fails.
    public var outageLimit: Duration
    /// How many times in a row a chunk may be rejected with `460 Checksum Mismatch` before failing.
    public var maximumChecksumFailures: Int

    /// Creates a retry policy.
    ///
    /// - Parameters:
    ///   - initialDelay: The delay before the first retry (default 250 ms).
    ///   - maximumDelay: The largest delay (default 10 s).
    ///   - multiplier: The exponential growth factor (default 2).
    ///   - jitter: The random fraction taken off each delay (default 0.5).
    ///   - outageLimit: How long to keep trying without success (default 5 minutes).
    ///   - maximumChecksumFailures: Consecutive `460` answers tolerated for one chunk (default 5).
    public init(
        initialDelay: Duration = .milliseconds(250),
        maximumDelay: Duration = .seconds(10),
        multiplier: Double = 2,
        jitter: Double = 0.5,
        outageLimit: Duration = .seconds(300),
        maximumChecksumFailures: Int = 5
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = max(1, multiplier)
        self.jitter = min(1, max(0, jitter))
        self.outageLimit = outageLimit
        self.maximumChecksumFailures = max(1, maximumChecksumFailures)
    }

    /// The delay before retry number `attempt` (0-based), jitter applied.
    public func delay(forAttempt attempt: Int) -> Duration {
        let base = seconds(initialDelay) * Foundation.pow(multiplier, Double(min(attempt, 60)))
        let capped = min(base, seconds(maximumDelay))
        let factor = 1 - jitter * Double.random(in: 0...1)
        return .nanoseconds(Int64(capped * factor * 1e9))
    }

    private func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
