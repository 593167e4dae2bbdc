import Foundation

/// How every network call of the project waits between attempts and when it gives up: the REST
/// client, the tus client and the write journal's uploads share this one policy.
///
/// Delays grow exponentially from ``initialDelay`` by ``multiplier`` up to ``maximumDelay``; each
/// delay is then randomised by ``jitter`` (a fraction: `0.5` waits between 50 % and 100 % of the
/// computed delay). Two limits bound the retrying:
/// - ``maximumAttempts``: attempts of one request in total (REST calls), after which its last
///   error is thrown;
/// - ``outageLimit``: how long an operation that makes progress in steps (a tus upload) keeps
///   trying without any request succeeding; every success resets that clock.
/// A `Retry-After` answer is honoured up to ``maximumRetryAfter``.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay before the first retry.
    public var initialDelay: Duration
    /// The upper bound of a single delay.
    public var maximumDelay: Duration
    /// The growth factor between consecutive delays.
    public var multiplier: Double
    /// The random fraction taken off each delay, in `0...1`.
    public var jitter: Double
    /// Attempts of one request in total, the first included.
    public var maximumAttempts: Int
    /// How long an operation keeps trying without any successful request before it fails.
    public var outageLimit: Duration
    /// The longest `Retry-After` honoured; a longer one fails at once.
    public var maximumRetryAfter: Duration

    /// Creates a retry policy.
    ///
    /// - Parameters:
    ///   - initialDelay: The delay before the first retry (default 250 ms).
    ///   - maximumDelay: The largest delay (default 10 s).
    ///   - multiplier: The exponential growth factor (default 2).
    ///   - jitter: The random fraction taken off each delay (default 0.5).
    ///   - maximumAttempts: Attempts of one request in total (default 5).
    ///   - outageLimit: How long to keep trying without success (default 5 minutes).
    ///   - maximumRetryAfter: The longest `Retry-After` honoured (default 60 s).
    public init(
        initialDelay: Duration = .milliseconds(250),
        maximumDelay: Duration = .seconds(10),
        multiplier: Double = 2,
        jitter: Double = 0.5,
        maximumAttempts: Int = 5,
        outageLimit: Duration = .seconds(300),
        maximumRetryAfter: Duration = .seconds(60)
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = max(1, multiplier)
        self.jitter = min(1, max(0, jitter))
        self.maximumAttempts = max(1, maximumAttempts)
        self.outageLimit = outageLimit
        self.maximumRetryAfter = maximumRetryAfter
    }

    /// The delay before retry number `attempt` (0-based), jitter applied.
    public func delay(forAttempt attempt: Int) -> Duration {
        let base = Self.seconds(initialDelay) * Foundation.pow(multiplier, Double(min(max(attempt, 0), 60)))
        let capped = min(base, Self.seconds(maximumDelay))
        let factor = 1 - jitter * Double.random(in: 0...1)
        return .nanoseconds(Int64(capped * factor * 1e9))
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
