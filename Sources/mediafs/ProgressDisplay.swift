import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Upload progress on standard error: a bar with bytes, rate and ETA on a terminal, plain lines
/// (every 10 %) otherwise.
final class ProgressDisplay: Sendable {
    private struct State {
        var done: Int64 = 0
        var lastDraw: ContinuousClock.Instant?
        var lastDecile = -1
    }

    private let name: String
    private let total: Int64
    private let started = ContinuousClock.now
    private let interactive = isatty(STDERR_FILENO) == 1
    private let state = Mutex(State())

    init(name: String, total: Int64) {
        self.name = name
        self.total = total
    }

    func update(_ done: Int64) {
        let line: String? = state.withLock { state in
            state.done = done
            let now = ContinuousClock.now
            if interactive {
                if let last = state.lastDraw, now - last < .milliseconds(200), done < total { return nil }
                state.lastDraw = now
                return "\r" + bar(done: done, now: now)
            }
            let decile = total > 0 ? Int(done * 10 / total) : 10
            guard decile > state.lastDecile else { return nil }
            state.lastDecile = decile
            return "\(name): \(decile * 10)% (\(done) of \(total) bytes)\n"
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }

    func note(_ text: String) {
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + "\(name): \(text)\n").utf8))
    }

    func finish() {
        update(total)
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func bar(done: Int64, now: ContinuousClock.Instant) -> String {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = max(0.001, (now - started) / .seconds(1))
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return String(
            format: "%@ [%@] %3d%% %@ of %@  %@/s  ETA %@", name, bar, Int(fraction * 100), Self.bytes(Double(done)),
            Self.bytes(Double(total)), Self.bytes(rate), Self.duration(eta))
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = value
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: unit == 0 ? "%.0f %@" : "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return String(format: "%d:%02d", total / 60, total % 60)
    }
}
