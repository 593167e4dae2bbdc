import Dispatch
import Synchronization

/// Runs blocking system calls off the concurrency pool, with a deadline.
enum Blocking {
    /// Runs `body` on a dispatch thread; throws if it has not returned within `timeout` (the
    /// thread is then left to finish on its own).
    static func run<T: Sendable>(timeout: Duration, what: String, _ body: @escaping @Sendable () -> T) async throws -> T {
        let once = Once<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            DispatchQueue.global().async { once.resume(with: .success(body())) }
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
                once.resume(with: .failure(CommandFailure("Timed out after \(timeout) waiting for \(what)")))
            }
        }
    }

    /// Resumes a continuation once, whichever of its resumers comes first.
    private final class Once<T: Sendable>: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, result: Result<T, any Error>?)>((nil, nil))

        func set(_ continuation: CheckedContinuation<T, any Error>) {
            let early = state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.continuation = continuation
                return nil
            }
            if let early { continuation.resume(with: early) }
        }

        func resume(with result: Result<T, any Error>) {
            let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
                guard state.result == nil else { return nil }
                state.result = result
                defer { state.continuation = nil }
                return state.continuation
            }
            continuation?.resume(with: result)
        }
    }
}
