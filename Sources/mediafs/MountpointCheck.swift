import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import CDispatch  // declares struct stat for Swift on Linux
import Glibc
#endif

/// Checks made before mounting, so that a mount never hides files or stacks on another one
/// unless asked (`--allow-non-empty`).
enum MountpointCheck {
    /// `path` made absolute and canonical without touching the last component (which may be a
    /// dead FUSE mount, where stat fails with ENOTCONN).
    static func canonical(_ path: String) -> String {
        let standardized = URL(fileURLWithPath: path).standardizedFileURL.path
        let parent = (standardized as NSString).deletingLastPathComponent
        let name = (standardized as NSString).lastPathComponent
        guard let resolved = realpath(parent, nil) else { return standardized }
        defer { free(resolved) }
        let canonicalParent = String(cString: resolved)
        return canonicalParent == "/" ? "/" + name : canonicalParent + "/" + name
    }

    /// Refuses a mount point that is already a FUSE mount (a live mediafs, a stale one whose
    /// process ended, or another FUSE filesystem), that is not a directory, or that holds files.
    static func verify(_ path: String, allowNonEmpty: Bool, table: MountTable = .current()) throws {
        let mountpoint = canonical(path)
        if !allowNonEmpty, let top = table.top(at: mountpoint), top.fileSystemType.hasPrefix("fuse") {
            throw CommandFailure(describeFUSEMount(top, at: mountpoint))
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandFailure("Mount point \(path) is not a directory; create it first (mkdir -p \(path)).")
        }
        guard !allowNonEmpty else { return }
        guard let directory = opendir(mountpoint) else {
            throw CommandFailure("Cannot list the mount point \(path): \(String(cString: strerror(errno))).")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory), names.count < 3 {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        if !names.isEmpty {
            throw CommandFailure(
                "Mount point \(path) is not empty (it holds \(names.map { "'\($0)'" }.joined(separator: ", "))\(names.count == 3 ? ", …" : "")); "
                    + "a mount would hide its files. Use an empty directory, or pass --allow-non-empty (-o nonempty) to mount over them.")
        }
    }

    /// What is mounted at `mountpoint`, and what to do about it.
    static func describeFUSEMount(_ entry: MountTable.Entry, at mountpoint: String) -> String {
        guard entry.fileSystemType == "fuse.mediafs" else {
            return "\(mountpoint) is already a mount point (\(entry.fileSystemType) from \(entry.source)); unmount it first "
                + "(fusermount3 -u \(mountpoint)), or pass --allow-non-empty to mount over it."
        }
        switch probe(mountpoint, timeout: .seconds(2)) {
        case .answers:
            return "\(mountpoint) is already a mediafs mount; unmount it first (umount \(mountpoint) or fusermount3 -u \(mountpoint)), "
                + "or pass --allow-non-empty to stack another one on it."
        case .disconnected:
            return "\(mountpoint) is a stale mediafs mount whose process has ended; unmount it first "
                + "(fusermount3 -u \(mountpoint), or umount -l \(mountpoint) as root)."
        case .silent:
            return "\(mountpoint) is a mediafs mount that does not answer; unmount it first (fusermount3 -uz \(mountpoint))."
        }
    }

    enum Probe { case answers, disconnected, silent }

    /// Whether a FUSE mount answers a stat; done on a thread of its own, since a mount whose
    /// process is stuck never answers.
    static func probe(_ mountpoint: String, timeout: DispatchTimeInterval) -> Probe {
        let result = ProbeResult()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var status = stat()
            let answer: Probe = stat(mountpoint, &status) == 0 ? .answers : (errno == ENOTCONN ? .disconnected : .answers)
            result.set(answer)
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else { return .silent }
        return result.get() ?? .silent
    }

    private final class ProbeResult: Sendable {
        private let value = Mutex<Probe?>(nil)
        func set(_ probe: Probe) { value.withLock { $0 = probe } }
        func get() -> Probe? { value.withLock { $0 } }
    }
}
