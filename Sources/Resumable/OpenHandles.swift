import NIOCore
import Synchronization

/// A descriptor lent to the channel that sends it with `sendfile`, closed once every holder let
/// go of it: the request (when it ends, whatever the outcome) and the body's write (when the
/// channel wrote the region or failed it). Closing any earlier could let the kernel read a
/// descriptor that was closed, or reused for another file.
final class OpenHandles: Sendable {
    private let handle: NIOFileHandle
    private let holders: Mutex<Int>

    /// Takes ownership of `handle`, held by `holders` (each calls ``release()`` once).
    init(_ handle: NIOFileHandle, holders: Int) {
        self.handle = handle
        self.holders = Mutex(holders)
    }

    /// One holder is done; the last one closes the descriptor.
    func release() {
        let left = holders.withLock { count -> Int in
            count -= 1
            return count
        }
        if left == 0 { try? handle.close() }
    }

    /// The bytes `range` of the file, for the channel to send.
    func region(_ range: Range<Int64>) -> FileRegion {
        FileRegion(fileHandle: handle, readerIndex: Int(range.lowerBound), endIndex: Int(range.upperBound))
    }
}
