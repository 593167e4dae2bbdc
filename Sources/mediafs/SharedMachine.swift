import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Whether other people log in to this machine: then a key on a command line is theirs to read.
enum SharedMachine {
    /// Accounts other than the current user's that can log in: from `/etc/passwd`, those with a
    /// user id from 1000 (below 65534, nobody) and a shell that is not `nologin` or `false`.
    static func otherLoginAccounts(passwd: String? = nil, currentUser: UInt32 = UInt32(getuid())) -> [String] {
        let text = passwd ?? (try? String(contentsOfFile: "/etc/passwd", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, let uid = UInt32(fields[2]) else { return nil }
            let shell = fields[6]
            guard uid >= 1000, uid < 65534, uid != currentUser, !shell.hasSuffix("nologin"), !shell.hasSuffix("false") else {
                return nil
            }
            return String(fields[0])
        }
    }

    /// The warning for a key given with `--api-key` on a machine others log in to, or nil.
    static func commandLineKeyWarning(otherAccounts: [String]) -> String? {
        guard !otherAccounts.isEmpty else { return nil }
        let names = otherAccounts.prefix(3).joined(separator: ", ") + (otherAccounts.count > 3 ? ", …" : "")
        return "--api-key puts the key on the command line, where the \(otherAccounts.count) other user(s) of this machine "
            + "(\(names)) can read it with ps; write it to a file only you can read (chmod 600) and pass --api-key-file FILE."
    }
}
