import CFuse3
import Foundation
import Logging
import Synchronization

/// libfuse's own messages, which it would print to stderr, go to the session's logger instead;
/// while a mount is attempted they are held back, so that a failure is told in one line that
/// includes them (``FuseError/mountFailed(_:messages:)``).
enum FuseLog {
    private struct State {
        var logger: Logger?
        var capturing = false
        var captured: [String] = []
    }

    private static let state = Mutex(State())

    /// Sends libfuse's messages to `logger` from now on.
    static func install(_ logger: Logger) {
        state.withLock { $0.logger = logger }
        fuse_set_log_func(forward)
    }

    /// Holds messages back (for ``endCapture()``) instead of logging them.
    static func beginCapture() {
        state.withLock { state in
            state.capturing = true
            state.captured = []
        }
    }

    /// The messages held back since ``beginCapture()``.
    static func endCapture() -> [String] {
        state.withLock { state in
            state.capturing = false
            defer { state.captured = [] }
            return state.captured
        }
    }

    /// libfuse's log function: formats the message and passes it on.
    private static let forward: fuse_log_func_t = { level, format, arguments in
        guard let format, let arguments else { return }
        var message = [UInt8](repeating: 0, count: 1024)
        let written = message.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { vsnprintf($0.baseAddress, $0.count, format, arguments) }
        }
        var text = String(decoding: message.prefix(max(0, min(Int(written), message.count - 1))), as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        log(Int(level.rawValue), text)
    }

    private static func log(_ level: Int, _ text: String) {
        let logger = state.withLock { state -> Logger? in
            if state.capturing {
                if state.captured.count < 16 { state.captured.append(text) }
                return nil
            }
            return state.logger
        }
        guard let logger else { return }
        switch level {
        case ...3: logger.error("libfuse: \(text)")
        case 4: logger.warning("libfuse: \(text)")
        case 5: logger.notice("libfuse: \(text)")
        case 6: logger.info("libfuse: \(text)")
        default: logger.debug("libfuse: \(text)")
        }
    }
}

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
