import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import CDispatch  // declares struct stat and timespec for Swift on Linux
import Glibc
#endif

/// Where log lines go: the terminal (today's format), journald (stderr connected to the journal,
/// each line with its priority), a file (`--log-file`), or syslog.
enum LogDestination: Equatable, CustomStringConvertible {
    case standardError
    case journal
    case file(String)
    case syslog

    /// The destination for a process: `--log-file` if given; else the journal when stderr is
    /// connected to it (`$JOURNAL_STREAM`); else syslog when detached, the terminal otherwise.
    static func choose(logFile: String?, detached: Bool) -> LogDestination {
        if let logFile { return .file(logFile) }
        if standardErrorIsJournal() { return .journal }
        return detached ? .syslog : .standardError
    }

    /// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM` holds its
    /// device and inode (systemd.exec(5)).
    static func standardErrorIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    var description: String {
        switch self {
        case .standardError: "stderr"
        case .journal: "the journal"
        case .file(let path): path
        case .syslog: "syslog"
        }
    }

    /// A log handler factory for `LoggingSystem.bootstrap`.
    func makeFactory(level: Logger.Level) throws -> @Sendable (String) -> any LogHandler {
        switch self {
        case .standardError:
            return { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .journal:
            let sink = LogSink(fd: STDERR_FILENO, ownsDescriptor: false)
            return { label in LineLogHandler(label: label, sink: sink, format: .journal, logLevel: level) }
        case .file(let path):
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else {
                throw CommandFailure("Cannot open the log file \(path): \(String(cString: strerror(errno)))")
            }
            let sink = LogSink(fd: fd, ownsDescriptor: true)
            return { label in LineLogHandler(label: label, sink: sink, format: .timestamped, logLevel: level) }
        case .syslog:
            SyslogLogHandler.open(identifier: "mediafs")
            return { label in SyslogLogHandler(label: label, logLevel: level) }
        }
    }
}

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

/// Messages to syslog(3) (which journald also collects), with the priority of their level.
struct SyslogLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    /// Names the messages (`mediafs[pid]`); openlog keeps the pointer, so the name is never freed.
    static func open(identifier: String) {
        openlog(strdup(identifier), LOG_PID | LOG_NDELAY, LOG_DAEMON)
    }

    static func priority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        case .critical: LOG_CRIT
        }
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
        withVaList([text]) { arguments in
            vsyslog(Self.priority(event.level), "%s", arguments)
        }
    }
}
