import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import CDispatch  // declares struct timespec for Swift on Linux
import Glibc
#endif

/// A file descriptor that log lines are written to, one `write` per line, in order.
final class LogSink: Sendable {
    private let fd: Mutex<Int32>
    private let ownsDescriptor: Bool

    init(fd: Int32, ownsDescriptor: Bool) {
        self.fd = Mutex(fd)
        self.ownsDescriptor = ownsDescriptor
    }

    func write(_ line: String) {
        let bytes = Array(line.utf8)
        fd.withLock { fd in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { buffer in
                    Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    deinit {
        if ownsDescriptor { fd.withLock { _ = close($0) } }
    }
}

/// One line per message: `2026-01-02T03:04:05.678Z info mediafs: message key=value` in a file, or
/// `<6>message key=value` for the journal (the priority prefix of sd-daemon(3)).
struct LineLogHandler: LogHandler {
    enum Format { case timestamped, journal }

    let label: String
    let sink: LogSink
    let format: Format
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, sink: LogSink, format: Format, logLevel: Logger.Level) {
        self.label = label
        self.sink = sink
        self.format = format
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = fields.isEmpty ? "\(event.message)" : "\(event.message) \(fields)"
        switch format {
        case .journal:
            sink.write("<\(SyslogLogHandler.priority(event.level))>\(text)\n")
        case .timestamped:
            sink.write("\(Self.timestamp()) \(event.level) \(label): \(text)\n")
        }
    }

    static func timestamp() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var seconds = time.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), time.tv_nsec / 1_000_000)
    }
}
