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
