import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Owner, group and permission bits given on the command line (`--uid`, `--gid`, `--umask`,
/// `--file-mode`, `--dir-mode`) for items that have no stored attributes.
struct Ownership: Equatable, Sendable {
    var uid: UInt32
    var gid: UInt32
    var fileMode: UInt32
    var directoryMode: UInt32

    init(uid: UInt32, gid: UInt32, fileMode: UInt32, directoryMode: UInt32) {
        self.uid = uid
        self.gid = gid
        self.fileMode = fileMode
        self.directoryMode = directoryMode
    }

    /// Resolves names and octal text; the defaults are the current user and group, 0644 and 0755.
    init(uid: String?, gid: String?, umask: String?, fileMode: String?, directoryMode: String?) throws {
        self.uid = try uid.map(Self.userID) ?? UInt32(getuid())
        self.gid = try gid.map(Self.groupID) ?? UInt32(getgid())
        let mask = try umask.map { try Self.octal($0, option: "--umask", maximum: 0o777) } ?? 0o022
        self.fileMode = try fileMode.map { try Self.octal($0, option: "--file-mode", maximum: 0o7777) } ?? (0o666 & ~mask)
        self.directoryMode = try directoryMode.map { try Self.octal($0, option: "--dir-mode", maximum: 0o7777) } ?? (0o777 & ~mask)
    }

    /// A user id, or the id of a user name.
    static func userID(_ text: String) throws -> UInt32 {
        if let id = UInt32(text) { return id }
        guard let entry = getpwnam(text) else {
            throw ValidationError("--uid: no user named '\(text)' (give a name from /etc/passwd or a number).")
        }
        return UInt32(entry.pointee.pw_uid)
    }

    /// A group id, or the id of a group name.
    static func groupID(_ text: String) throws -> UInt32 {
        if let id = UInt32(text) { return id }
        guard let entry = getgrnam(text) else {
            throw ValidationError("--gid: no group named '\(text)' (give a name from /etc/group or a number).")
        }
        return UInt32(entry.pointee.gr_gid)
    }

    /// Octal permission bits such as `022`, `0644` or `0o750`.
    static func octal(_ text: String, option: String, maximum: UInt32) throws -> UInt32 {
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard let value = UInt32(digits, radix: 8), value <= maximum else {
            throw ValidationError("\(option) takes octal permission bits such as 022 or 0640, not '\(text)'.")
        }
        return value
    }
}
