import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A local file of bytes to upload: written and read at offsets, made durable with `fdatasync`.
///
/// The project's one staging-file type: the write journal keeps each file being written in one,
/// a deferred-length ``TusUpload`` spools into one, and ``TusClient`` sends uploads straight
/// from one (``UploadSource``). Reads and writes at offsets (`pread`/`pwrite`) may come from
/// several threads at once; the descriptor is closed when the object goes away, so no call can
/// ever reach a closed or reused descriptor.
public final class DataFile: Sendable, UploadSource {
    /// Where the file is (it may have been removed since; the bytes stay readable until the
    /// object goes away).
    public let path: String
    private let descriptor: Int32
    private let removeWhenClosed: Bool

    /// Creates a new file (it must not exist) with mode 0600.
    ///
    /// - Parameter removeWhenClosed: Remove the file when this object goes away (a temporary file).
    public init(creating path: String, removeWhenClosed: Bool = false) throws(DataFileError) {
        let descriptor = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw DataFileError(errno, "create", path) }
        self.path = path
        self.descriptor = descriptor
        self.removeWhenClosed = removeWhenClosed
    }

    /// Opens an existing file for reading and writing.
    public init(opening path: String) throws(DataFileError) {
        let descriptor = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { throw DataFileError(errno, "open", path) }
        self.path = path
        self.descriptor = descriptor
        self.removeWhenClosed = false
    }

    /// A new temporary file in `directory` (created if missing), removed when the object goes away.
    public static func temporary(in directory: String, prefix: String = "mediafs") throws(DataFileError) -> DataFile {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw DataFileError(EIO, "create the directory", directory)
        }
        return try DataFile(creating: directory + "/\(prefix)-\(UUID().uuidString).tmp", removeWhenClosed: true)
    }

    deinit {
        Glibc.close(descriptor)
        if removeWhenClosed { Glibc.unlink(path) }
    }

    // MARK: Writing

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(DataFileError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, base + done, bytes.count - done, off_t(offset) + off_t(done))
            if written < 0 {
                if errno == EINTR { continue }
                throw DataFileError(errno, "write", path)
            }
            done += written
        }
    }

    /// Writes the readable bytes of `buffer` at `offset`.
    public func write(_ buffer: ByteBuffer, at offset: Int64) throws(DataFileError) {
        let result: DataFileError? = buffer.withUnsafeReadableBytes { bytes in
            do throws(DataFileError) {
                try write(bytes, at: offset)
                return nil
            } catch {
                return error
            }
        }
        if let result { throw result }
    }

    /// Sets the length: cut, or extended with zeros.
    public func truncate(to length: Int64) throws(DataFileError) {
        while ftruncate(descriptor, off_t(length)) != 0 {
            if errno != EINTR { throw DataFileError(errno, "truncate", path) }
        }
    }

    /// Makes the bytes written so far durable (`fdatasync`).
    public func synchronize() throws(DataFileError) {
        while fdatasync(descriptor) != 0 {
            if errno != EINTR { throw DataFileError(errno, "sync", path) }
        }
    }

    // MARK: Reading

    /// The file's current length.
    public func length() throws(DataFileError) -> Int64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw DataFileError(errno, "stat", path) }
        return Int64(status.st_size)
    }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file.
    public func read(at offset: Int64, count: Int) throws(DataFileError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        try read(at: offset, count: count, into: &buffer)
        return buffer
    }

    /// Appends up to `count` bytes at `offset` to `buffer`; fewer only at the end of the file.
    public func read(at offset: Int64, count: Int, into buffer: inout ByteBuffer) throws(DataFileError) {
        guard count > 0 else { return }
        var failure: Int32 = 0
        let descriptor = self.descriptor
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
            var done = 0
            while done < count {
                let got = pread(descriptor, target.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if got < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if got == 0 { break }
                done += got
            }
            return done
        }
        if failure != 0 { throw DataFileError(failure, "read", path) }
    }

    /// Removes the file from its directory (the bytes stay readable through this object).
    public func remove() {
        Glibc.unlink(path)
    }
}

/// A failure of a ``DataFile`` operation, with the `errno` it ended with (ENOSPC, EIO, …).
public struct DataFileError: Error, Sendable, CustomStringConvertible {
    /// The POSIX error number.
    public let errno: Int32
    /// What failed, e.g. "write /path: No space left on device".
    public let message: String

    public init(_ errno: Int32, _ operation: String, _ path: String) {
        self.errno = errno
        self.message = "Cannot \(operation) \(path): \(String(cString: strerror(errno)))"
    }

    public var description: String { message }
}

extension DataFile {
    /// A new descriptor of the same open file (`dup`), which the caller owns and closes; it reads
    /// the same bytes even after the file was removed from its directory.
    func duplicateDescriptor() throws(DataFileError) -> Int32 {
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw DataFileError(errno, "duplicate the descriptor of", path) }
        return copy
    }
}
