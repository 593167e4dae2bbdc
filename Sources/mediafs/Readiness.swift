import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a detached mount tells the process that started it how mounting went: one line on an
/// inherited pipe (`--ready-fd`), `ready MESSAGE` or `error MESSAGE`, then the pipe is closed.
/// The starting process exits 0 on the first and non-zero with the message on the second (see
/// ``Daemon``).
enum Readiness {
    private struct State {
        var fd: Int32?
    }

    private static let state = Mutex(State())

    /// The descriptor named by `--ready-fd N` (or `--ready-fd=N`) in `arguments`, taken once.
    static func configure(arguments: [String]) {
        var descriptor: Int32?
        for (index, argument) in arguments.enumerated() {
            if argument == "--ready-fd", index + 1 < arguments.count {
                descriptor = Int32(arguments[index + 1])
            } else if argument.hasPrefix("--ready-fd=") {
                descriptor = Int32(argument.dropFirst("--ready-fd=".count))
            }
        }
        guard let descriptor, fcntl(descriptor, F_GETFD) >= 0 else { return }
        // Not passed on to programs this one starts.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        state.withLock { $0.fd = descriptor }
    }

    /// Whether a starting process waits for the outcome.
    static var isAwaited: Bool { state.withLock { $0.fd != nil } }

    /// The mount answers.
    static func ready(_ message: String) {
        report("ready", message)
    }

    /// Mounting failed.
    static func failed(_ message: String) {
        report("error", message)
    }

    /// Reports a failure found before the command ran (a bad argument), if a starting process waits.
    static func reportFailure(in arguments: [String], error: String) {
        if !isAwaited { configure(arguments: arguments) }
        failed(error)
    }

    private static func report(_ kind: String, _ message: String) {
        guard let fd = state.withLock({ state -> Int32? in
            defer { state.fd = nil }
            return state.fd
        }) else { return }
        let line = Array("\(kind) \(message.replacingOccurrences(of: "\n", with: " "))\n".utf8)
        var offset = 0
        while offset < line.count {
            let written = line.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { break }
            offset += written
        }
        close(fd)
    }
}
