import Foundation
import Synchronization

/// The FUSE requests in flight: every request from its arrival until it is answered, and every
/// task that answers one until it ends. Interrupts reach a request's task through it, and an
/// unmount waits on it until all work is done.
final class RequestTracker: Sendable {
    private struct Entry {
        let reply: FuseReply
        var task: Task<Void, Never>?
        var interrupted = false
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 1
        /// Requests not answered yet.
        var unanswered = 0
        var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]

        var isIdle: Bool { entries.isEmpty && unanswered == 0 }

        mutating func takeIdleWaiters() -> [CheckedContinuation<Void, Never>] {
            guard isIdle, !idleWaiters.isEmpty else { return [] }
            defer { idleWaiters = [:] }
            return Array(idleWaiters.values)
        }
    }

    private let state = Mutex(State())

    /// Requests not answered, and tasks still running.
    var inFlight: (unanswered: Int, tasks: Int) {
        state.withLock { ($0.unanswered, $0.entries.count) }
    }

    // MARK: Requests

    /// A request arrived (its ``FuseReply`` was made).
    func arrived() {
        state.withLock { $0.unanswered += 1 }
    }

    /// A request was answered (or its answer dropped).
    func answered() {
        let waiters = state.withLock { state in
            state.unanswered -= 1
            return state.takeIdleWaiters()
        }
        waiters.forEach { $0.resume() }
    }

    // MARK: Tasks

    /// Registers the task about to answer `reply`; the id is what the interrupt callback gets.
    func register(_ reply: FuseReply) -> UInt64 {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.entries[id] = Entry(reply: reply)
            return id
        }
    }

    /// The task of request `id` started (it may already have ended).
    func attach(_ id: UInt64, _ task: Task<Void, Never>) {
        let cancel = state.withLock { state -> Bool in
            guard state.entries[id] != nil else { return false }
            state.entries[id]?.task = task
            return state.entries[id]?.interrupted == true
        }
        if cancel { task.cancel() }
    }

    /// The task of request `id` ended.
    func finished(_ id: UInt64) {
        let waiters = state.withLock { state in
            state.entries[id] = nil
            return state.takeIdleWaiters()
        }
        waiters.forEach { $0.resume() }
    }

    /// The kernel interrupted request `id`: its answer becomes EINTR (unless it succeeds first)
    /// and its task is cancelled.
    ///
    /// - Returns: Whether the request was still running.
    @discardableResult
    func interrupt(_ id: UInt64) -> Bool {
        let found = state.withLock { state -> (FuseReply, Task<Void, Never>?)? in
            guard let entry = state.entries[id] else { return nil }
            state.entries[id]?.interrupted = true
            return (entry.reply, entry.task)
        }
        guard let (reply, task) = found else { return false }
        reply.interrupted()
        task?.cancel()
        return true
    }

    // MARK: Draining

    /// Waits until every request was answered and every task ended, or `timeout` passed.
    ///
    /// - Returns: Whether everything finished.
    func drain(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.idle() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || state.withLock { $0.isIdle }
        }
    }

    /// Returns when nothing is in flight (or the calling task is cancelled).
    private func idle() async -> Bool {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.isIdle || Task.isCancelled { return true }
                    state.idleWaiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.idleWaiters.removeValue(forKey: id) }?.resume()
        }
        return state.withLock { $0.isIdle }
    }
}
