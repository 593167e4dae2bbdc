import Dispatch
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A descriptor lent to the channel that sends it with `sendfile`, closed once both of its
/// holders let go: the request (when it ends, whatever the outcome) and the body's write (when
/// the channel wrote the region or failed it; at the end of the request if it never started).
/// Closing any earlier could let the kernel read a descriptor that was closed, or reused for
/// another file.
final class OpenHandles: Sendable {
    private enum Write { case waiting, started, abandoned }

    private struct State {
        var holders = 2
        var write = Write.waiting
    }

    private let handle: NIOFileHandle
    private let state = Mutex(State())

    /// Takes ownership of `handle`.
    init(_ handle: NIOFileHandle) {
        self.handle = handle
    }

    /// The body's write begins; `false` when the request already ended (nothing to send).
    func startWrite() -> Bool {
        state.withLock { state in
            guard state.write == .waiting else { return false }
            state.write = .started
            return true
        }
    }

    /// The channel is done with the region.
    func writeEnded() {
        release { _ in 1 }
    }

    /// The request ended: its hold goes, and the write's too if the write never started.
    func requestEnded() {
        release { state in
            guard state.write == .waiting else { return 1 }
            state.write = .abandoned
            return 2
        }
    }

    /// The bytes `range` of the file, for the channel to send.
    func region(_ range: Range<Int64>) -> FileRegion {
        FileRegion(fileHandle: handle, readerIndex: Int(range.lowerBound), endIndex: Int(range.upperBound))
    }

    /// Drops the holds `count` says; the last one closes the descriptor.
    private func release(_ count: (inout State) -> Int) {
        let left = state.withLock { state -> Int in
            state.holders -= count(&state)
            return state.holders
        }
        if left == 0 { close() }
    }

    /// Closes the descriptor. NIO refuses (`EBUSY`) while a channel is inside a call on it: then
    /// it is closed as soon as that call returns. A handle left open would trap when released
    /// in a debug build, and leak its descriptor in a release build.
    private func close(attempt: Int = 0) {
        do {
            try handle.close()
        } catch let error as IOError where error.errnoCode == EBUSY && attempt < 10_000 {
            DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(200)) { self.close(attempt: attempt + 1) }
        } catch {
            // Closed already.
        }
    }
}
