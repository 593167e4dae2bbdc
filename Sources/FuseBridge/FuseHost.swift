import CFuse3
import Foundation
import Logging
import MediaFS

/// What every FUSE callback reaches through `fuse_req_userdata`: the filesystem, a logger, the
/// requests in flight and the gate that keeps answers from a destroyed session.
final class FuseHost: Sendable {
    let filesystem: MediaFilesystem
    let logger: Logger
    let requests = RequestTracker()
    let gate = ReplyGate()
    /// The kernel read-ahead to ask for, in bytes.
    let readAhead: Int

    init(filesystem: MediaFilesystem, readAhead: Int, logger: Logger) {
        self.filesystem = filesystem
        self.readAhead = readAhead
        self.logger = logger
    }

    static func from(_ request: fuse_req_t) -> FuseHost {
        Unmanaged<FuseHost>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
    }

    /// The caller of a request.
    static func context(_ request: fuse_req_t) -> RequestContext {
        let context = fuse_req_ctx(request)!.pointee
        return RequestContext(uid: context.uid, gid: context.gid, pid: context.pid, umask: context.umask)
    }

    /// Runs `body` in a task and answers from it. Arguments must already be copied: nothing
    /// the callback was handed is valid once it returns. A thrown error becomes its errno.
    ///
    /// The task is tracked until it ends (an unmount waits for it), and a FUSE interrupt of the
    /// request cancels it; the answer is then EINTR unless the work succeeded first.
    static func run(
        _ request: fuse_req_t?,
        _ operation: StaticString,
        _ body: @escaping @Sendable (MediaFilesystem, FuseReply) async throws -> Void
    ) {
        guard let request else { return }
        let host = from(request)
        let reply = FuseReply(request, operation, host: host)
        let id = host.requests.register(reply)
        // libfuse calls back at once if the interrupt already came. The callback gets the id,
        // not an object: it may run while the answer is being sent.
        fuse_req_interrupt_func(request, interruptCallback, UnsafeMutableRawPointer(bitPattern: UInt(id)))
        let filesystem = host.filesystem
        // Ahead of background work (uploads): a program waits on every request.
        let task = Task(priority: .userInitiated) {
            defer { host.requests.finished(id) }
            do {
                try await body(filesystem, reply)
            } catch {
                reply.error(error)
            }
        }
        host.requests.attach(id, task)
    }

    /// Answers on the calling FUSE thread, for operations that need no I/O.
    static func now(_ request: fuse_req_t?, _ operation: StaticString, _ body: (MediaFilesystem, FuseReply) throws -> Void) {
        guard let request else { return }
        let host = from(request)
        let reply = FuseReply(request, operation, host: host)
        do {
            try body(host.filesystem, reply)
        } catch {
            reply.error(error)
        }
    }

    /// libfuse's interrupt callback: `data` is the request's tracker id.
    private static let interruptCallback: fuse_interrupt_func_t = { request, data in
        guard let request else { return }
        let host = FuseHost.from(request)
        let id = UInt64(UInt(bitPattern: data))
        if host.requests.interrupt(id) {
            host.logger.debug("FUSE request interrupted; cancelling it", metadata: ["request": "\(id)"])
        }
    }
}
