import CFuse3
import Dispatch
import Foundation
import Logging
import MediaFS

#if canImport(Glibc)
import Glibc
#endif

/// Tells the kernel to drop cached names and inodes (``KernelNotifier`` over
/// `fuse_lowlevel_notify_inval_entry` / `_inode`).
///
/// Calls return at once: deliveries happen in order on a serial queue of their own, never on a
/// FUSE worker or inside the handling of a request (libfuse deadlocks when an invalidation
/// waits for a request that waits for it). Nothing is delivered once the session closes.
public final class FuseNotifier: KernelNotifier, @unchecked Sendable {
    // @unchecked: `session` is only used on `queue`, behind the gate.
    private let session: OpaquePointer
    private let gate: ReplyGate
    private let logger: Logger
    private let queue = DispatchQueue(label: "mediafs.fuse.notify")

    init(session: OpaquePointer, gate: ReplyGate, logger: Logger) {
        self.session = session
        self.gate = gate
        self.logger = logger
    }

    public func invalidateEntry(parent: InodeNumber, name: String) {
        queue.async { [self] in
            deliver("entry \(parent)/\(name)") {
                name.withCString { fuse_lowlevel_notify_inval_entry(session, parent, $0, strlen($0)) }
            }
        }
    }

    public func invalidateInode(_ inode: InodeNumber) {
        queue.async { [self] in
            // Offset 0, length 0: the attributes and every cached page.
            deliver("inode \(inode)") { fuse_lowlevel_notify_inval_inode(session, inode, 0, 0) }
        }
    }

    /// Returns once every invalidation asked for so far was delivered (or dropped).
    public func delivered() async {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume() }
        }
    }

    private func deliver(_ what: @autoclosure () -> String, _ call: () -> Int32) {
        guard gate.enter() else { return }
        let result = call()
        gate.leave()
        switch -result {
        case 0:
            logger.trace("Invalidated \(what()) in the kernel cache")
        case ENOENT:
            // The kernel held nothing for it.
            break
        case ENOSYS, ENODEV, EBADF:
            logger.debug("Kernel cache invalidation unavailable for \(what()): \(String(cString: strerror(-result)))")
        default:
            logger.warning("Could not invalidate \(what()) in the kernel cache: \(String(cString: strerror(-result)))")
        }
    }
}
