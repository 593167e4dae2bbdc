import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// System calls on paths, each returning `0` or the errno it failed with, for tests that compare
/// what the mount answers with what a model or a local directory answers.
///
/// They block: call them inside ``Posix/offPool(_:)`` (the mount answers FUSE requests from the
/// concurrency pool, which a blocked pool thread could starve), or from a thread of the test's own.
enum Posix {
    /// Runs blocking calls on a thread of their own and returns their result.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// The name of an errno (`ENOENT`), or `OK` for 0.
    static func name(_ code: Int32) -> String {
        let names: [Int32: String] = [
            0: "OK", EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EACCES: "EACCES", EEXIST: "EEXIST",
            ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENOSPC: "ENOSPC", EROFS: "EROFS", ENAMETOOLONG: "ENAMETOOLONG",
            ENOTEMPTY: "ENOTEMPTY", ESTALE: "ESTALE", EXDEV: "EXDEV", ETIMEDOUT: "ETIMEDOUT", EINTR: "EINTR", EAGAIN: "EAGAIN",
            EBUSY: "EBUSY", ENODATA: "ENODATA", ENOTSUP: "ENOTSUP",
        ]
        return names[code] ?? "errno \(code)"
    }

    /// Writes all of `bytes` at `offset` (or at the end, for `O_APPEND`).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int?) -> Int32 {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                let base = buffer.baseAddress! + done
                if let offset { return pwrite(fd, base, bytes.count - done, off_t(offset + done)) }
                return Glibc.write(fd, base, bytes.count - done)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += written
        }
        return 0
    }

    /// Opens `path` with `flags`, writes `bytes` (at `offset`, or where the flags put them), and
    /// closes: the first failure, close's included (a close may report the upload's).
    static func openWriteClose(_ path: String, flags: Int32, mode: mode_t = 0o644, _ bytes: [UInt8], at offset: Int? = nil) -> Int32 {
        let fd = open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { return errno }
        let wrote = bytes.isEmpty ? 0 : writeAll(fd, bytes, at: offset)
        let closed = close(fd) == 0 ? 0 : errno
        return wrote != 0 ? wrote : closed
    }

    /// The whole content of a file, or the errno of the open or a read.
    static func readAll(_ path: String) -> Result<[UInt8], Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(errno)) }
        defer { close(fd) }
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(errno))
            }
            if count == 0 { return .success(content) }
            content += buffer[0..<count]
        }
    }

    /// Opens and closes at once.
    static func openClose(_ path: String, _ flags: Int32, mode: mode_t = 0o644) -> Int32 {
        let fd = open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { return errno }
        return close(fd) == 0 ? 0 : errno
    }

    static func mkdir(_ path: String, mode: mode_t = 0o755) -> Int32 { Glibc.mkdir(path, mode) == 0 ? 0 : errno }
    static func rmdir(_ path: String) -> Int32 { Glibc.rmdir(path) == 0 ? 0 : errno }
    static func unlink(_ path: String) -> Int32 { Glibc.unlink(path) == 0 ? 0 : errno }
    static func rename(_ from: String, _ to: String) -> Int32 { Glibc.rename(from, to) == 0 ? 0 : errno }
    static func truncate(_ path: String, _ size: Int) -> Int32 { Glibc.truncate(path, off_t(size)) == 0 ? 0 : errno }
    static func chmod(_ path: String, _ mode: mode_t) -> Int32 { Glibc.chmod(path, mode) == 0 ? 0 : errno }

    /// The names in a directory (without `.` and `..`), sorted.
    static func list(_ path: String) -> Result<[String], Errno> {
        guard let directory = opendir(path) else { return .failure(Errno(errno)) }
        defer { closedir(directory) }
        var names: [String] = []
        errno = 0
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        if errno != 0 { return .failure(Errno(errno)) }
        return .success(names.sorted())
    }

    /// `lstat`.
    static func status(_ path: String) -> Result<stat, Errno> {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .failure(Errno(errno)) }
        return .success(st)
    }

    /// The value of an extended attribute (`getxattr`, which may block: `user.mediafs.sync`).
    static func xattr(_ path: String, _ name: String) -> Result<String, Errno> {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = buffer.withUnsafeMutableBytes { systemGetxattr(path, name, $0.baseAddress, $0.count) }
        guard count >= 0 else { return .failure(Errno(errno)) }
        return .success(String(decoding: buffer[0..<count], as: UTF8.self))
    }

    /// The process's umask, from /proc (umask(2) cannot read it without changing it).
    static var umask: mode_t {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("Umask:") {
            return mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) ?? 0o022
        }
        return 0o022
    }

    /// The resident set size of this process, in bytes (VmRSS).
    static var residentBytes: Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first.flatMap { Int($0) }
            return (kilobytes ?? 0) * 1024
        }
        return 0
    }
}

/// glibc's `ssize_t getxattr(const char *path, const char *name, void *value, size_t size)`
/// (sys/xattr.h is not part of the Glibc module).
@_silgen_name("getxattr")
private func systemGetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>, _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int

/// An errno as an error.
struct Errno: Error, Equatable, CustomStringConvertible {
    let code: Int32
    init(_ code: Int32) { self.code = code }
    var description: String { Posix.name(code) }
}
