import Foundation

/// A failure to set up or run the FUSE session; its description is one line: what failed and
/// what to do.
public struct FuseError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }

    /// The kernel mount failed; `messages` are libfuse's (or fusermount3's) words for why.
    static func mountFailed(_ mountpoint: String, messages: [String]) -> FuseError {
        let cause = messages.last.map { $0.hasPrefix("fuse: ") ? String($0.dropFirst(6)) : $0 }
        let text = messages.joined(separator: " ").lowercased()
        let advice: String
        if text.contains("/dev/fuse") && (text.contains("permission denied") || text.contains("operation not permitted")) {
            advice = "run as root, or give this user read and write access to /dev/fuse (its group, or chmod 0666 /dev/fuse)"
        } else if text.contains("device not found") || text.contains("no such device") {
            advice = "load the FUSE kernel module (modprobe fuse) or run where /dev/fuse exists"
        } else if text.contains("user_allow_other") {
            advice = "add user_allow_other to /etc/fuse.conf, or mount without -o allow_other"
        } else if text.contains("fusermount") && (text.contains("not found") || text.contains("no such file")) {
            advice = "install fuse3 (it provides fusermount3)"
        } else if text.contains("not empty") || text.contains("nonempty") {
            advice = "mount on an empty directory"
        } else if text.contains("transport endpoint") || text.contains("already mounted") {
            advice = "a previous mount is still there: unmount it first (fusermount3 -u \(mountpoint))"
        } else {
            advice = "check that \(mountpoint) is an empty directory you own, that /dev/fuse exists and is accessible, and that fuse3 is installed"
        }
        return FuseError("Cannot mount on \(mountpoint)\(cause.map { ": \($0)" } ?? ""); \(advice).")
    }
}
