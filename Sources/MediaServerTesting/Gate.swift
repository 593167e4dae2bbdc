import Synchronization

/// Holds whatever passes it until opened (a journal checkpoint, a listing), and tells when
/// something reached it.
public final class Gate: Sendable {
    public init() {}

    private struct State {
        var open = false
        var held: [CheckedContinuation<Void, Never>] = []
        var arrivals = 0
        var watchers: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Waits here until the gate is open.
    public func pass() async {
        await withCheckedContinuation { continuation in
            let (watchers, go) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool) in
                state.arrivals += 1
                if !state.open { state.held.append(continuation) }
                defer { state.watchers = [] }
                return (state.watchers, state.open)
            }
            if go { continuation.resume() }
            watchers.forEach { $0.resume() }
        }
    }

    /// Waits until something reached the gate.
    public func reached() async {
        await withCheckedContinuation { continuation in
            let arrived = state.withLock { state -> Bool in
                if state.arrivals > 0 { return true }
                state.watchers.append(continuation)
                return false
            }
            if arrived { continuation.resume() }
        }
    }

    /// Lets everything held (and everything to come) go on.
    public func open() {
        let held = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.held = [] }
            return state.held
        }
        held.forEach { $0.resume() }
    }
}
