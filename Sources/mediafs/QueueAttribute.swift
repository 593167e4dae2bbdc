import Foundation
import Journal

#if canImport(Glibc)
import Glibc
#endif

/// Reads the upload queue of a mount through its root's extended attributes: `user.mediafs.queue`
/// (the queue now, as JSON) and `user.mediafs.sync` (answered once every closed file is in the
/// Media Manager). No socket, no daemon to find: any user who may see the mount may ask.
enum QueueAttribute {
    /// The mediafs mounts this process sees.
    static func mounts() -> [String] {
        MountTable.current().entries.filter { $0.fileSystemType == "fuse.mediafs" }.map(\.mountPoint)
    }

    /// The queue of the mount at `mountpoint`.
    static func status(of mountpoint: String) throws -> QueueStatus {
        try decode(try read("user.mediafs.queue", at: mountpoint), mountpoint)
    }

    /// Waits until every closed file of the mount is in the Media Manager; returns the queue then.
    static func sync(_ mountpoint: String) throws -> QueueStatus {
        try decode(try read("user.mediafs.sync", at: mountpoint), mountpoint)
    }

    private static func decode(_ data: Data, _ mountpoint: String) throws -> QueueStatus {
        do {
            return try JSONDecoder().decode(QueueStatus.self, from: data)
        } catch {
            throw CommandFailure("\(mountpoint) answered an upload queue this mediafs cannot read (\(error)); is it a mount of another version?")
        }
    }

    private static func read(_ name: String, at mountpoint: String) throws -> Data {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = getxattr(mountpoint, name, &buffer, buffer.count)
            if count >= 0 { return Data(buffer.prefix(count)) }
            switch errno {
            case EINTR: continue
            case ENODATA, ENOTSUP:
                throw CommandFailure("\(mountpoint) is not a mediafs mount (it has no \(name)); `mediafs status` lists the mounts")
            default:
                throw CommandFailure("Reading \(name) of \(mountpoint) failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// glibc's `ssize_t getxattr(const char *path, const char *name, void *value, size_t size)`
/// (<sys/xattr.h>, which the Glibc module does not import).
@_silgen_name("getxattr")
private func getxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>, _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int
