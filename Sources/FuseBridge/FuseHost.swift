import CFuse3
import Foundation
import Logging
import MediaFS

/// What every FUSE callback reaches through `fuse_req_userdata`: the filesystem and a logger.
final class FuseHost: Sendable {
    let filesystem: MediaFilesystem
    let logger: Logger

    init(filesystem: MediaFilesystem, logger: Logger) {
        self.filesystem = filesystem
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
    static func run(
        _ request: fuse_req_t?,
        _ operation: StaticString,
        _ body: @escaping @Sendable (MediaFilesystem, FuseReply) async throws -> Void
    ) {
        guard let request else { return }
        let host = from(request)
        let reply = FuseReply(request, operation, logger: host.logger)
        Task {
            do {
                try await body(host.filesystem, reply)
            } catch {
                reply.error(error)
            }
        }
    }

    /// Answers on the calling FUSE thread, for operations that need no I/O.
    static func now(_ request: fuse_req_t?, _ operation: StaticString, _ body: (MediaFilesystem, FuseReply) throws -> Void) {
        guard let request else { return }
        let host = from(request)
        let reply = FuseReply(request, operation, logger: host.logger)
        do {
            try body(host.filesystem, reply)
        } catch {
            reply.error(error)
        }
    }
}
