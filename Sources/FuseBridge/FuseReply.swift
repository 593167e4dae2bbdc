import CFuse3
import Foundation
import Logging
import MediaFS
import NIOCore
import Synchronization

/// The answer to one FUSE request. Each request is answered exactly once: a second reply is
/// dropped (and logged), and a request dropped without a reply is answered with EIO, so no
/// calling process is ever left hanging in the kernel.
final class FuseReply: @unchecked Sendable {
    // `fuse_req_t` is an OpaquePointer (not Sendable); it is only used to reply, once.
    private let request: fuse_req_t
    private let operation: StaticString
    private let logger: Logger
    private let replied = Atomic<Bool>(false)

    init(_ request: fuse_req_t, _ operation: StaticString, logger: Logger) {
        self.request = request
        self.operation = operation
        self.logger = logger
    }

    deinit {
        if !replied.load(ordering: .acquiring) {
            logger.error("FUSE \(operation) finished without a reply; answering EIO")
            fuse_reply_err(request, EIO)
        }
    }

    /// Claims the single reply; false if it was already sent.
    private func claim() -> Bool {
        let (exchanged, _) = replied.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
        if !exchanged { logger.error("FUSE \(operation) replied twice; the second reply was dropped") }
        return exchanged
    }

    func error(_ code: Int32) {
        guard claim() else { return }
        fuse_reply_err(request, code)
    }

    /// Answers with the errno of `error` (EIO for anything that is not a FilesystemError).
    func error(_ error: any Error) {
        let failure = error as? FilesystemError ?? FilesystemError(EIO, "\(error)")
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
        fuse_reply_none(request)
    }

    func entry(_ reply: EntryReply) {
        guard claim() else { return }
        var parameters = FuseReply.entryParameters(reply)
        fuse_reply_entry(request, &parameters)
    }

    func created(_ reply: EntryReply, handle: UInt64, directIO: Bool = false) {
        guard claim() else { return }
        var parameters = FuseReply.entryParameters(reply)
        var info = fuse_file_info()
        info.fh = handle
        info.direct_io = directIO ? 1 : 0
        fuse_reply_create(request, &parameters, &info)
    }

    func attributes(_ attributes: NodeAttributes, ttl: Duration) {
        guard claim() else { return }
        var st = FuseReply.stat(attributes)
        fuse_reply_attr(request, &st, ttl.seconds)
    }

    func open(handle: UInt64, keepCache: Bool = false, directIO: Bool = false) {
        guard claim() else { return }
        var info = fuse_file_info()
        info.fh = handle
        info.keep_cache = keepCache ? 1 : 0
        info.direct_io = directIO ? 1 : 0
        fuse_reply_open(request, &info)
    }

    func buffer(_ buffer: ByteBuffer) {
        guard claim() else { return }
        buffer.withUnsafeReadableBytes { bytes in
            _ = fuse_reply_buf(request, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }

    func bytes(_ bytes: [UInt8]) {
        guard claim() else { return }
        bytes.withUnsafeBufferPointer { pointer in
            _ = pointer.withMemoryRebound(to: CChar.self) { fuse_reply_buf(request, $0.baseAddress, $0.count) }
        }
    }

    func written(_ count: Int) {
        guard claim() else { return }
        fuse_reply_write(request, count)
    }

    func xattrSize(_ size: Int) {
        guard claim() else { return }
        fuse_reply_xattr(request, size)
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
        fuse_reply_statfs(request, &st)
    }

    /// Sends a directory buffer that the caller filled with `fill`, which gets the request and
    /// the buffer and returns the bytes used.
    func directory(size: Int, fill: (fuse_req_t, UnsafeMutablePointer<CChar>, Int) -> Int) {
        guard claim() else { return }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buffer.deallocate() }
        let used = fill(request, buffer, size)
        fuse_reply_buf(request, buffer, used)
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
