import Synchronization

/// An asynchronous lock per key: `withLock(key)` runs its body while no other body holds the
/// same key, in arrival order. It makes a check-then-act that spans an `await` atomic (say,
/// "is this file already being written? if not, start a writer").
final class KeyedLock<Key: Hashable & Sendable>: Sendable {
    private struct Waiting {
        var queue: [CheckedContinuation<Void, Never>] = []
    }

    private let held = Mutex<[Key: Waiting]>([:])

    func withLock<T: Sendable>(_ key: Key, _ body: () async throws -> T) async rethrows -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: Key) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = held.withLock { held -> Bool in
                if held[key] == nil {
                    held[key] = Waiting()
                    return true
                }
                held[key]!.queue.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    private func release(_ key: Key) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard var waiting = held[key] else { return nil }
            if waiting.queue.isEmpty {
                held[key] = nil
                return nil
            }
            let next = waiting.queue.removeFirst()
            held[key] = waiting
            return next
        }
        next?.resume()
    }
}
