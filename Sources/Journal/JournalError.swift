#if canImport(Glibc)
import Glibc
#endif

/// A failure of the write journal: the errno a program sees, what failed (and what to do), and
/// the HTTP status when the Media Manager caused it.
public struct JournalError: Error, Sendable, CustomStringConvertible {
    /// The POSIX error number for the program (EIO, ENOSPC, EINTR, …).
    public let errno: Int32
    public let message: String
    /// The HTTP status of the answer that caused it, if one came.
    public let status: Int?

    public init(_ errno: Int32, _ message: String, status: Int? = nil) {
        self.errno = errno
        self.message = message
        self.status = status
    }

    public var description: String { message }

    /// The journal cannot be used (directory, database, lock).
    static func unusable(_ message: String) -> JournalError { JournalError(EIO, message) }

    /// The record does not exist (any more).
    static func unknown(_ id: String) -> JournalError { JournalError(EBADF, "No file \(id) is being written") }

    /// The waiting caller was interrupted; the upload goes on.
    static let interrupted = JournalError(EINTR, "Interrupted while waiting for the upload; it goes on in the background")
}
