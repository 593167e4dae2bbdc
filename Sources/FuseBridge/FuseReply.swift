import CFuse3
import Foundation
import Logging
import MediaFS
import NIOCore
import Synchronization

/// The answer to one FUSE request. Each request is answered exactly once: a second reply is
/// dropped (and logged), and a request dropped without a reply is answered with EIO, so no
/// calling process is ever left hanging in the kernel. Every answer passes the host's
/// ``ReplyGate``: none reaches a session being destroyed.
final class FuseReply: @unchecked Sendable {
    // `fuse_req_t` is an OpaquePointer (not Sendable); it is only used to reply, once.
    private let request: fuse_req_t
    private let operation: StaticString
    private let host: FuseHost
    private let replied = Atomic<Bool>(false)
    private let wasInterrupted = Atomic<Bool>(false)

    init(_ request: fuse_req_t, _ operation: StaticString, host: FuseHost) {
        self.request = request
        self.operation = operation
        self.host = host
        host.requests.arrived()
    }

    deinit {
        if !replied.load(ordering: .acquiring) {
            host.logger.error("FUSE \(operation) finished without a reply; answering EIO")
            replied.store(true, ordering: .releasing)
            send { fuse_reply_err(request, EIO) }
        }
    }

    private var logger: Logger { host.logger }

    /// The kernel interrupted the request: an error answer becomes EINTR.
    func interrupted() {
        wasInterrupted.store(true, ordering: .releasing)
    }

    /// Claims the single reply; false if it was already sent.
    private func claim() -> Bool {
        let (exchanged, _) = replied.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
        if !exchanged { logger.error("FUSE \(operation) replied twice; the second reply was dropped") }
        return exchanged
    }

    /// Sends the claimed reply through the gate, and counts the request answered.
    private func send(_ body: () -> Void) {
        if host.gate.enter() {
            body()
            host.gate.leave()
        } else {
            logger.debug("FUSE \(operation): the session is closed; the answer was dropped")
        }
        host.requests.answered()
    }

    func error(_ code: Int32) {
        guard claim() else { return }
        let code = code != 0 && wasInterrupted.load(ordering: .acquiring) ? EINTR : code
        send { fuse_reply_err(request, code) }
    }

    /// Answers with the errno of `error` (EIO for anything that is not a FilesystemError; EINTR
    /// once the kernel interrupted the request).
    func error(_ error: any Error) {
        var failure = error as? FilesystemError ?? FilesystemError(EIO, "\(error)")
        if wasInterrupted.load(ordering: .acquiring), failure.errno != EINTR {
            failure = FilesystemError(EINTR, "interrupted (\(failure))")
        }
        switch failure.errno {
        case ENOENT, EEXIST, ENOTEMPTY, ENODATA, ENOTSUP, ERANGE, EINTR:
            logger.debug("FUSE \(operation): \(failure)")
        case EROFS, EACCES, EPERM, EINVAL, EISDIR, ENOTDIR:
            logger.notice("FUSE \(operation): \(failure)")
        default:
            logger.error("FUSE \(operation): \(failure)")
        }
        self.error(failure.errno)
    }

    func ok() { error(Int32(0)) }

    func none() {
        guard claim() else { return }
        send { fuse_reply_none(request) }
    }

    func entry(_ reply: EntryReply) {
        guard claim() else { return }
        var parameters = FuseReply.entryParameters(reply)
        send { _ = fuse_reply_entry(request, &parameters) }
    }

    func created(_ reply: EntryReply, handle: UInt64, directIO: Bool = false) {
        guard claim() else { return }
        var parameters = FuseReply.entryParameters(reply)
        var info = fuse_file_info()
        info.fh = handle
        info.direct_io = directIO ? 1 : 0
        send { _ = fuse_reply_create(request, &parameters, &info) }
    }

    func attributes(_ attributes: NodeAttributes, ttl: Duration) {
        guard claim() else { return }
        var st = FuseReply.stat(attributes)
        send { _ = fuse_reply_attr(request, &st, ttl.seconds) }
    }

    func open(handle: UInt64, keepCache: Bool = false, directIO: Bool = false) {
        guard claim() else { return }
        var info = fuse_file_info()
        info.fh = handle
        info.keep_cache = keepCache ? 1 : 0
        info.direct_io = directIO ? 1 : 0
        send { _ = fuse_reply_open(request, &info) }
    }

    /// Answers a read with `buffers`, in order, straight from where they are (one `writev`).
    func buffers(_ buffers: [ByteBuffer]) {
        guard claim() else { return }
        send {
            switch buffers.count {
            case 0:
                _ = fuse_reply_buf(request, nil, 0)
            case 1...Self.maximumVectors:
                _ = withUnsafeTemporaryAllocation(of: iovec.self, capacity: buffers.count) { vectors in
                    Self.pinning(buffers, from: 0, into: vectors) {
                        fuse_reply_iov(request, vectors.baseAddress, Int32(buffers.count))
                    }
                }
            default:
                // Many small pieces (rare): one copy rather than an overlong vector.
                var joined = ByteBuffer()
                joined.reserveCapacity(buffers.reduce(0) { $0 + $1.readableBytes })
                for var buffer in buffers { joined.writeBuffer(&buffer) }
                joined.withUnsafeReadableBytes { bytes in
                    _ = fuse_reply_buf(request, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
                }
            }
        }
    }

    /// The most pieces one reply sends as a vector (writev takes at most 1024, header included).
    static let maximumVectors = 256

    /// Fills `vectors` with the readable bytes of `buffers[index...]`, each pinned while `body` runs.
    private static func pinning<R>(
        _ buffers: [ByteBuffer], from index: Int, into vectors: UnsafeMutableBufferPointer<iovec>, _ body: () -> R
    ) -> R {
        guard index < buffers.count else { return body() }
        return buffers[index].withUnsafeReadableBytes { bytes in
            vectors[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
            return pinning(buffers, from: index + 1, into: vectors, body)
        }
    }

    func bytes(_ bytes: [UInt8]) {
        guard claim() else { return }
        send {
            bytes.withUnsafeBufferPointer { pointer in
                _ = pointer.withMemoryRebound(to: CChar.self) { fuse_reply_buf(request, $0.baseAddress, $0.count) }
            }
        }
    }

    func written(_ count: Int) {
        guard claim() else { return }
        send { _ = fuse_reply_write(request, count) }
    }

    func xattrSize(_ size: Int) {
        guard claim() else { return }
        send { _ = fuse_reply_xattr(request, size) }
    }

    func statfs(_ statistics: FilesystemStatistics) {
        guard claim() else { return }
        var st = statvfs()
        st.f_bsize = UInt(statistics.blockSize)
        st.f_frsize = UInt(statistics.blockSize)
        st.f_blocks = fsblkcnt_t(statistics.blocks)
        st.f_bfree = fsblkcnt_t(statistics.freeBlocks)
        st.f_bavail = fsblkcnt_t(statistics.freeBlocks)
        st.f_files = fsfilcnt_t(statistics.files)
        st.f_ffree = fsfilcnt_t(statistics.freeFiles)
        st.f_favail = fsfilcnt_t(statistics.freeFiles)
        st.f_namemax = UInt(statistics.nameMax)
        send { _ = fuse_reply_statfs(request, &st) }
    }

    /// Sends a directory buffer that the caller filled with `fill`, which gets the request and
    /// the buffer and returns the bytes used.
    func directory(size: Int, fill: (fuse_req_t, UnsafeMutablePointer<CChar>, Int) -> Int) {
        guard claim() else { return }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buffer.deallocate() }
        let used = fill(request, buffer, size)
        send { _ = fuse_reply_buf(request, buffer, used) }
    }

    // MARK: Conversions

    static func stat(_ attributes: NodeAttributes) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = UInt(attributes.inode)
        st.st_mode = (attributes.kind == .directory ? S_IFDIR : S_IFREG) | attributes.permissions
        st.st_nlink = UInt(attributes.links)
        st.st_uid = attributes.uid
        st.st_gid = attributes.gid
        st.st_size = Int(attributes.size)
        st.st_blksize = Int(attributes.blockSize)
        st.st_blocks = Int((attributes.size + 511) / 512)
        st.st_mtim = timespec(attributes.modified)
        st.st_ctim = timespec(attributes.changed)
        st.st_atim = timespec(attributes.accessed)
        return st
    }

    static func timespec(_ date: Date) -> Glibc.timespec {
        let interval = date.timeIntervalSince1970
        let seconds = interval.rounded(.down)
        return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int((interval - seconds) * 1_000_000_000))
    }

    static func entryParameters(_ reply: EntryReply) -> fuse_entry_param {
        var parameters = fuse_entry_param()
        parameters.ino = reply.attributes.inode
        parameters.generation = 1
        parameters.attr = stat(reply.attributes)
        parameters.attr_timeout = reply.attributeTTL.seconds
        parameters.entry_timeout = reply.entryTTL.seconds
        return parameters
    }
}

extension Duration {
    /// The duration in seconds, as libfuse's timeouts take it.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
