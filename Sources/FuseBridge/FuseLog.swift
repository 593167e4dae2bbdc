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
    /// One mount attempt at a time: libfuse's log function is process-wide.
    private static let attempt = Mutex(())

    /// Runs `body` (a session's creation and mount) with libfuse's messages held back; returns
    /// its result and the messages.
    static func capturing<T>(_ body: () throws -> T) rethrows -> (T, [String]) {
        try attempt.withLock { _ in
            beginCapture()
            do {
                let result = try body()
                return (result, endCapture())
            } catch {
                _ = endCapture()
                throw error
            }
        }
    }

    /// Sends libfuse's messages to `logger` from now on.
    static func install(_ logger: Logger) {
        state.withLock { $0.logger = logger }
        fuse_set_log_func(forward)
    }

    /// Holds messages back (for ``endCapture()``) instead of logging them.
    private static func beginCapture() {
        state.withLock { state in
            state.capturing = true
            state.captured = []
        }
    }

    /// The messages held back since ``beginCapture()``.
    private static func endCapture() -> [String] {
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
