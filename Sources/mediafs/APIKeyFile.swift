import Foundation

#if canImport(Glibc)
import CDispatch  // declares struct stat and timespec for Swift on Linux
import Glibc
#endif

/// Reads an API key from a file (`--api-key-file`, `api_key_file=` in fstab) or from an inherited
/// descriptor (how a detached mount receives it), refusing files that others may read.
enum APIKeyFile {
    /// The largest key file read.
    static let maximumSize = 16 * 1024

    /// The key in `path`: its content without surrounding whitespace.
    ///
    /// The file must be a regular file owned by the user running mediafs (or root) with no
    /// permission for group or others (mode 0600 or 0400), as ssh requires of private keys.
    static func read(path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            throw CommandFailure("Cannot read the API key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw CommandFailure("Cannot read the API key file \(path): \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw CommandFailure("The API key file \(path) is not a regular file.")
        }
        let mode = status.st_mode & 0o7777
        if mode & 0o077 != 0 {
            let who = mode & 0o007 != 0 ? "other users" : "its group"
            throw CommandFailure(
                "The API key file \(path) can be read by \(who) (mode \(String(format: "%04o", mode))); "
                    + "make it private to its owner: chmod 600 \(path)")
        }
        if status.st_uid != geteuid() && status.st_uid != 0 {
            throw CommandFailure(
                "The API key file \(path) belongs to user \(status.st_uid), not to the user running mediafs (\(geteuid())) or root; "
                    + "chown it to that user.")
        }
        return try key(from: readAll(fd, what: "the API key file \(path)"), source: path)
    }

    /// The key written to an inherited descriptor, read to its end; the descriptor is closed.
    static func read(descriptor fd: Int32) throws -> String {
        defer { close(fd) }
        return try key(from: readAll(fd, what: "the API key descriptor \(fd)"), source: "descriptor \(fd)")
    }

    private static func key(from data: [UInt8], source: String) throws -> String {
        let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { throw CommandFailure("The API key file \(source) is empty.") }
        guard !key.contains(where: \.isNewline) else {
            throw CommandFailure("The API key file \(source) holds more than one line; it must hold the key alone.")
        }
        return key
    }

    private static func readAll(_ fd: Int32, what: String) throws -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw CommandFailure("Cannot read \(what): \(String(cString: strerror(errno)))") }
            if count == 0 { return data }
            data += buffer[0..<count]
            guard data.count <= maximumSize else { throw CommandFailure("\(what) is larger than an API key (\(maximumSize) bytes).") }
        }
    }
}
