import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Keeps replies and notifications away from a session about to be destroyed.
///
/// Whoever talks to the session (a reply, a cache invalidation) does it between ``enter()`` and
/// ``leave()``; ``close(timeout:)`` turns new callers away and waits for those inside, after
/// which the session may be destroyed. Two atomics: no lock on the reply path.
final class ReplyGate: Sendable {
    private let inside = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)

    /// Whether the caller may use the session; if true, call ``leave()`` when done.
    func enter() -> Bool {
        // Sequentially consistent: `close` stores `closed` then reads `inside`; this adds to
        // `inside` then reads `closed`. One of the two always sees the other.
        inside.add(1, ordering: .sequentiallyConsistent)
        if closed.load(ordering: .sequentiallyConsistent) {
            inside.subtract(1, ordering: .sequentiallyConsistent)
            return false
        }
        return true
    }

    func leave() {
        inside.subtract(1, ordering: .sequentiallyConsistent)
    }

    var isClosed: Bool { closed.load(ordering: .sequentiallyConsistent) }

    /// Turns new callers away and waits up to `timeout` for those inside (a reply takes
    /// microseconds; a notification can wait on a kernel lock).
    ///
    /// - Returns: Whether nobody is inside any more (the session may be destroyed).
    func close(timeout: Duration) -> Bool {
        closed.store(true, ordering: .sequentiallyConsistent)
        let deadline = ContinuousClock.now + timeout
        while inside.load(ordering: .sequentiallyConsistent) > 0 {
            guard ContinuousClock.now < deadline else { return false }
            usleep(200)
        }
        return true
    }
}
