import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Starts a detached copy of this program and waits until it reports how mounting went.
///
/// A Swift process is multithreaded, so it never forks: it re-executes itself (`posix_spawn` of
/// `/proc/self/exe`) in the foreground mode with two inherited pipes. On descriptor 3 the child
/// reports one line (see ``Readiness``); on descriptor 4, if there is a key, it reads the API key,
/// which therefore never appears on its command line or in its environment. The child starts a
/// session of its own (`setsid`), its standard input is `/dev/null`, and its output goes to the log
/// file, the journal (when stderr is connected to it) or `/dev/null`.
enum Daemon {
    /// Where the child's stdout and stderr go.
    enum Output {
        case file(String)
        case inheritStandardError
        case discard
    }

    /// How mounting went.
    struct Outcome {
        let pid: pid_t
        let message: String
    }

    static let readyDescriptor: Int32 = 3
    static let keyDescriptor: Int32 = 4

    /// Spawns `arguments` (which must make the child report on ``readyDescriptor``), hands it
    /// `apiKey`, and waits up to `timeout` for its report.
    ///
    /// - Returns: The child's pid and its `ready` message.
    /// - Throws: ``CommandFailure`` with the child's `error` message, or saying that it exited or
    ///   did not answer in time (it is then stopped).
    static func start(arguments: [String], apiKey: String?, output: Output, timeout: Duration) async throws -> Outcome {
        let executable = try selfExecutable()
        let ready = try Pipe.make()
        let key = try apiKey.map { _ in try Pipe.make() }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        switch output {
        case .file(let path):
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, path, O_WRONLY | O_APPEND | O_CREAT, 0o640)
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        case .inheritStandardError:
            posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO)
        case .discard:
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        }
        // The pipe ends sit above 10 (Pipe.make), so dup2 always copies and clears close-on-exec.
        posix_spawn_file_actions_adddup2(&actions, ready.write, readyDescriptor)
        if let key { posix_spawn_file_actions_adddup2(&actions, key.read, keyDescriptor) }
        // Nothing else the parent holds (a caller's pipe, say) may keep it open.
        _ = spawnAddCloseFrom(&actions, keyDescriptor + 1)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var environment = ProcessInfo.processInfo.environment
        environment["MEDIAFS_API_KEY"] = nil
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(ready.write)
        if let key { close(key.read) }
        guard spawned == 0 else {
            close(ready.read)
            if let key { close(key.write) }
            throw CommandFailure("Cannot start the mount process \(executable): \(String(cString: strerror(spawned)))")
        }
        if let key, let apiKey {
            // A key is far smaller than a pipe's buffer: this never blocks.
            let bytes = Array(apiKey.utf8)
            _ = bytes.withUnsafeBytes { write(key.write, $0.baseAddress, $0.count) }
            close(key.write)
        }
        let report = await readReport(ready.read, timeout: timeout)
        close(ready.read)
        switch report {
        case .line(let line) where line.hasPrefix("ready "):
            return Outcome(pid: pid, message: String(line.dropFirst("ready ".count)))
        case .line(let line):
            _ = await waitForExit(pid, timeout: .seconds(10))
            throw CommandFailure(line.hasPrefix("error ") ? String(line.dropFirst("error ".count)) : line)
        case .endOfFile:
            let status = await waitForExit(pid, timeout: .seconds(10))
            throw CommandFailure("The mount process ended before mounting (\(status)); see its log\(logHint(output)).")
        case .timedOut:
            kill(pid, SIGTERM)
            _ = await waitForExit(pid, timeout: .seconds(10))
            throw CommandFailure("The mount did not answer within \(timeout); it was stopped. See its log\(logHint(output)).")
        }
    }

    private static func logHint(_ output: Output) -> String {
        switch output {
        case .file(let path): " (\(path))"
        case .inheritStandardError: " (the journal)"
        case .discard: " (syslog, or run it with --foreground)"
        }
    }

    /// `/proc/self/exe`: this program, however it was found.
    static func selfExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { throw CommandFailure("Cannot find this program (/proc/self/exe): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    enum Report: Equatable {
        case line(String)
        case endOfFile
        case timedOut
    }

    /// Reads one line from `fd` (the child's report), waiting at most `timeout`, off the
    /// concurrency pool.
    static func readReport(_ fd: Int32, timeout: Duration) async -> Report {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let deadline = ContinuousClock.now + timeout
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 1024)
                while true {
                    let remaining = deadline - ContinuousClock.now
                    guard remaining > .zero else { return continuation.resume(returning: .timedOut) }
                    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
                    let ready = poll(&poller, 1, milliseconds)
                    if ready < 0 && errno == EINTR { continue }
                    guard ready > 0 else { continue }
                    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    if count <= 0 {
                        return continuation.resume(returning: bytes.isEmpty ? .endOfFile : .line(String(decoding: bytes, as: UTF8.self)))
                    }
                    bytes += buffer[0..<count]
                    if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                        return continuation.resume(returning: .line(String(decoding: bytes[..<newline], as: UTF8.self)))
                    }
                    if bytes.count > 64 * 1024 {
                        return continuation.resume(returning: .line(String(decoding: bytes, as: UTF8.self)))
                    }
                }
            }
        }
    }

    /// Waits for `pid` to exit, at most `timeout`; describes how it ended.
    static func waitForExit(_ pid: pid_t, timeout: Duration) async -> String {
        do {
            return try await Blocking.run(timeout: timeout, what: "the mount process to exit") {
                var status: Int32 = 0
                var result: pid_t
                repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
                guard result == pid else { return "status unknown" }
                return status & 0x7f == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
            }
        } catch {
            return "still running"
        }
    }

    /// A pipe whose ends are close-on-exec and numbered 10 or above.
    struct Pipe {
        let read: Int32
        let write: Int32

        static func make() throws -> Pipe {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else {
                throw CommandFailure("Cannot create a pipe: \(String(cString: strerror(errno)))")
            }
            let read = fcntl(fds[0], F_DUPFD_CLOEXEC, 10)
            let write = fcntl(fds[1], F_DUPFD_CLOEXEC, 10)
            close(fds[0])
            close(fds[1])
            guard read >= 0, write >= 0 else { throw CommandFailure("Cannot create a pipe: \(String(cString: strerror(errno)))") }
            return Pipe(read: read, write: write)
        }
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), declared under `_GNU_SOURCE`, which
/// the Glibc module does not define.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func spawnAddCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32
