import Crypto
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Content files under `<data>/blobs/`, named by server-made ids only.
///
/// Blocking file calls run on the NIO thread pool, never on an event loop.
struct BlobStore: Sendable {
    let directory: String
    let threadPool: NIOThreadPool

    init(directory: String, threadPool: NIOThreadPool = .singleton) throws {
        self.directory = directory
        self.threadPool = threadPool
        try DataDirectory.createPrivateDirectory(directory)
    }

    func path(_ blobId: String) -> String {
        precondition(!blobId.contains("/") && !blobId.hasPrefix("."), "blob ids are server-made")
        return directory + "/" + blobId
    }

    /// Opens (creating it if needed) a blob for writing at its end, first truncating it to
    /// `length`: bytes past the last acknowledged offset are never kept.
    func openForAppend(_ blobId: String, truncatingTo length: Int64) async throws -> BlobWriter {
        let path = self.path(blobId)
        let fd = try await threadPool.runIfActive { () throws -> Int32 in
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BlobError.system("open \(path)", errno) }
            guard ftruncate(fd, off_t(length)) == 0 else {
                let code = errno
                close(fd)
                throw BlobError.system("truncate \(path)", code)
            }
            return fd
        }
        return BlobWriter(fd: fd, offset: length, threadPool: threadPool)
    }

    func size(_ blobId: String) async throws -> Int64? {
        let path = self.path(blobId)
        return try await threadPool.runIfActive {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            return Int64(info.st_size)
        }
    }

    func remove(_ blobIds: [String]) async {
        let paths = blobIds.map(path)
        _ = try? await threadPool.runIfActive {
            for path in paths { unlink(path) }
        }
    }

    /// Every blob on disk (for sweeping orphans after a crash).
    func allBlobIds() async throws -> [String] {
        let directory = self.directory
        return try await threadPool.runIfActive {
            try FileManager.default.contentsOfDirectory(atPath: directory)
        }
    }

    /// MD5 of the first `length` bytes, to rebuild a hasher lost in a restart.
    func md5(_ blobId: String, length: Int64) async throws -> Insecure.MD5 {
        let path = self.path(blobId)
        return try await threadPool.runIfActive {
            var hasher = Insecure.MD5()
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                if length == 0 { return hasher }
                throw BlobError.system("open \(path)", errno)
            }
            defer { close(fd) }
            var remaining = length
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while remaining > 0 {
                let want = Int(min(Int64(buffer.count), remaining))
                let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
                guard got > 0 else { throw BlobError.system("read \(path)", got == 0 ? EIO : errno) }
                buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
                remaining -= Int64(got)
            }
            return hasher
        }
    }
}

/// An open blob being appended to. Not shared: one writer per upload at a time.
final class BlobWriter: @unchecked Sendable {
    private let fd: Int32
    private let threadPool: NIOThreadPool
    /// Bytes in the file (written, not necessarily synced).
    private(set) var offset: Int64
    private var closed = false

    init(fd: Int32, offset: Int64, threadPool: NIOThreadPool) {
        self.fd = fd
        self.offset = offset
        self.threadPool = threadPool
    }

    func write(_ buffer: ByteBuffer) async throws {
        let fd = self.fd
        let start = offset
        let count = buffer.readableBytes
        try await threadPool.runIfActive {
            try buffer.withUnsafeReadableBytes { bytes in
                var done = 0
                while done < bytes.count {
                    let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(start) + off_t(done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw BlobError.system("write", errno)
                    }
                    done += n
                }
            }
        }
        offset += Int64(count)
    }

    /// Writes `buffers` one after the other at the end of the blob and hands each to `hashes`
    /// once it is written, all in one job on the thread pool (one hop for many buffers). The
    /// offset advances by what was written, even when a later buffer fails.
    ///
    /// One call at a time per writer: the caller awaits each before starting the next.
    /// Returns the new offset.
    @discardableResult
    func write(_ buffers: [ByteBuffer], hashing hashes: IngestHashes) async throws -> Int64 {
        let fd = self.fd
        let start = offset
        let written = Counter()
        do {
            try await threadPool.runIfActive {
                var position = off_t(start)
                for buffer in buffers {
                    try buffer.withUnsafeReadableBytes { bytes in
                        var done = 0
                        while done < bytes.count {
                            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, position + off_t(done))
                            if n < 0 {
                                if errno == EINTR { continue }
                                throw BlobError.system("write", errno)
                            }
                            done += n
                        }
                        hashes.update(bytes)
                    }
                    position += off_t(buffer.readableBytes)
                    written.value = Int64(position) - start
                }
            }
        } catch {
            offset += written.value
            throw error
        }
        offset += written.value
        return offset
    }

    /// Flushes written bytes to stable storage (fdatasync).
    func sync() async throws {
        let fd = self.fd
        try await threadPool.runIfActive {
            guard fdatasync(fd) == 0 else { throw BlobError.system("fdatasync", errno) }
        }
    }

    /// Drops bytes past `length` (a rejected chunk).
    func truncate(to length: Int64) async throws {
        let fd = self.fd
        try await threadPool.runIfActive {
            guard ftruncate(fd, off_t(length)) == 0 else { throw BlobError.system("truncate", errno) }
        }
        offset = length
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    deinit { close() }
}

/// The hashes kept while an upload's bytes arrive: the MD5 of the whole upload (the file's
/// `hash`) and, when the client sent `Upload-Checksum`, the digest of this request's bytes.
///
/// Updated on the thread pool by `BlobWriter.write`, read by the request after awaiting it:
/// never touched by two threads at once.
final class IngestHashes: @unchecked Sendable {
    private(set) var md5: Insecure.MD5
    // One of these at most, updated in place (a copy would copy the digest context).
    private var sha1: Insecure.SHA1?
    private var sha256: SHA256?
    private var chunkMD5: Insecure.MD5?

    /// The algorithms of `Upload-Checksum`.
    enum Algorithm: String, Sendable { case sha1, sha256, md5 }

    init(md5: Insecure.MD5, checksum: Algorithm?) {
        self.md5 = md5
        switch checksum {
        case .sha1: sha1 = Insecure.SHA1()
        case .sha256: sha256 = SHA256()
        case .md5: chunkMD5 = Insecure.MD5()
        case nil: break
        }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        md5.update(bufferPointer: bytes)
        sha1?.update(bufferPointer: bytes)
        sha256?.update(bufferPointer: bytes)
        chunkMD5?.update(bufferPointer: bytes)
    }

    /// The digest of the request's bytes, if a checksum was asked for.
    func checksum() -> Data? {
        if let sha1 { return Data(sha1.finalize()) }
        if let sha256 { return Data(sha256.finalize()) }
        if let chunkMD5 { return Data(chunkMD5.finalize()) }
        return nil
    }
}

/// A count written by a thread-pool job and read after it.
private final class Counter: @unchecked Sendable {
    var value: Int64 = 0
}

/// A failed file-system call in the blob store.
struct BlobError: Error, CustomStringConvertible {
    let operation: String
    let code: Int32

    static func system(_ operation: String, _ code: Int32) -> BlobError { BlobError(operation: operation, code: code) }

    var description: String { "\(operation) failed: \(String(cString: strerror(code)))" }
}
