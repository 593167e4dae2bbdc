import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A temporary file under the cache directory holding a file being written in spool mode (or
/// staged because the server cannot take a stream of unknown length). Removed on close.
final class StagingFile: @unchecked Sendable {
    // Used by one FileWriter actor at a time.
    let path: String
    private var fd: Int32
    private(set) var size: Int64 = 0

    init(directory: String) throws(FilesystemError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FilesystemError(EIO, "Cannot create the cache directory \(directory): \(error.localizedDescription)")
        }
        var template = Array((directory + "/write-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FilesystemError(errno, "Cannot create a staging file in \(directory)") }
        self.fd = fd
        self.path = String(cString: template.map { UInt8(bitPattern: $0) })
    }

    deinit { close() }

    func write(_ bytes: ByteBuffer, at offset: Int64) throws(FilesystemError) {
        var done = 0
        let result: Int32 = bytes.withUnsafeReadableBytes { buffer in
            while done < buffer.count {
                let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                done += n
            }
            return 0
        }
        guard result == 0 else { throw FilesystemError(result, "Writing the staging file \(path) failed") }
        size = max(size, offset + Int64(bytes.readableBytes))
    }

    func read(at offset: Int64, count: Int) throws(FilesystemError) -> ByteBuffer {
        guard offset < size else { return ByteBuffer() }
        let wanted = Int(min(Int64(count), size - offset))
        var buffer = ByteBuffer()
        let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { pointer in
            max(0, pread(fd, pointer.baseAddress, wanted, off_t(offset)))
        }
        guard got == wanted else { throw FilesystemError(EIO, "Reading the staging file \(path) failed") }
        return buffer
    }

    func truncate(to length: Int64) throws(FilesystemError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw FilesystemError(errno, "Truncating the staging file failed") }
        size = length
    }

    func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        unlink(path)
        fd = -1
    }
}
