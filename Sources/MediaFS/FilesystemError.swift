import Foundation
import MediaManager

#if canImport(Glibc)
import Glibc
#endif

/// An error of a filesystem operation: the errno FUSE answers with, and what failed.
public struct FilesystemError: Error, CustomStringConvertible, Sendable {
    /// The POSIX error number returned to the calling program.
    public let errno: Int32
    /// What failed and, where it helps, what to do.
    public let message: String

    public init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }

    public var description: String { "\(message) (\(String(cString: strerror(errno))))" }

    public static func notFound(_ what: String) -> FilesystemError { .init(ENOENT, "\(what) does not exist") }
    public static func exists(_ name: String) -> FilesystemError { .init(EEXIST, "'\(name)' already exists") }

    /// Maps a failure of a remote call to the errno that fits, keeping the API's status and
    /// message for the log.
    public static func remote(_ error: any Error, _ operation: String) -> FilesystemError {
        if let error = error as? FilesystemError { return error }
        guard let error = error as? MediaManagerError else {
            if error is CancellationError { return .init(EINTR, "\(operation) was interrupted") }
            return .init(EIO, "\(operation) failed: \(error)")
        }
        let detail = "\(operation) failed: \(error)"
        switch error.code {
        case .notFound: return .init(ENOENT, detail)
        case .unauthenticated, .permissionDenied: return .init(EACCES, detail + "; check the API key and its permissions")
        case .conflict: return .init(EEXIST, detail)
        case .badRequest, .invalidArgument: return .init(EINVAL, detail)
        case .cancelled: return .init(EINTR, detail)
        case .transport:
            let text = "\(error)".lowercased()
            if text.contains("timeout") || text.contains("timed out") { return .init(ETIMEDOUT, detail) }
            return .init(EIO, detail + "; is the Media Manager reachable?")
        default: return .init(EIO, detail)
        }
    }
}
