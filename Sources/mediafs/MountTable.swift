import Foundation

#if canImport(Glibc)
import CDispatch  // declares struct stat and timespec for Swift on Linux
import Glibc
#endif

/// The mounts this process sees (`/proc/self/mountinfo`).
struct MountTable: Sendable {
    struct Entry: Equatable, Sendable {
        /// Where it is mounted, with mountinfo's octal escapes decoded.
        let mountPoint: String
        /// `fuse.mediafs`, `ext4`, …
        let fileSystemType: String
        /// The mount source (for FUSE, its `fsname`).
        let source: String
    }

    /// In mount order: a later entry at the same place is stacked on an earlier one.
    let entries: [Entry]

    static func current() -> MountTable {
        MountTable(mountinfo: (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
    }

    /// Parses mountinfo: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER`.
    init(mountinfo: String) {
        entries = mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count >= 10, let separator = fields.firstIndex(of: "-"), separator >= 6, separator + 2 < fields.count else {
                return nil
            }
            return Entry(
                mountPoint: Self.unescape(fields[4]),
                fileSystemType: Self.unescape(fields[separator + 1]),
                source: Self.unescape(fields[separator + 2]))
        }
    }

    /// The mount on top at `path` (an absolute, canonical path), if `path` is a mount point.
    func top(at path: String) -> Entry? {
        entries.last { $0.mountPoint == path }
    }

    /// mountinfo writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
