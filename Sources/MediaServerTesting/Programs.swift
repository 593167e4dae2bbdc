import Dispatch
import Foundation
import NIOHTTP1
import Synchronization

/// Runs the built `mediafs` binary and other programs, for tests that need a separate process.
///
/// Blocking waits happen on a dispatch queue: a test that blocked the concurrency pool could
/// starve the in-process servers and mounts that its programs talk to.
public enum Programs {
    /// The `mediafs` executable next to the test bundle (SwiftPM builds it for this target).
    public static var mediafs: String {
        get throws {
            var candidates: [URL] = []
            if let env = ProcessInfo.processInfo.environment["MEDIAFS_BIN"] { candidates.append(URL(fileURLWithPath: env)) }
            var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            for _ in 0..<6 {
                candidates.append(directory.appendingPathComponent("mediafs"))
                directory = directory.deletingLastPathComponent()
            }
            let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            candidates.append(cwd.appendingPathComponent(".build/debug/mediafs"))
            guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
                throw ProgramError(message: "mediafs binary not found; build it with `swift build` or set MEDIAFS_BIN")
            }
            return found.path
        }
    }

    /// Starts a program with its output going to `log`.
    public static func start(_ path: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws -> Process {
        let process = makeProcess(path, arguments, environment: environment, directory: nil)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// Runs a program to completion and returns its exit status and output (stdout and stderr
    /// together). The blocking wait happens on a dispatch queue, never on the concurrency pool,
    /// which the servers and mounts of the test process need.
    public static func run(
        _ path: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        directory: String? = nil
    ) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let process = makeProcess(path, arguments, environment: environment, directory: directory)
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    process.standardError = pipe
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: (process.terminationStatus, String(decoding: data, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// A process for `path` with the test's environment plus `environment`.
    private static func makeProcess(_ path: String, _ arguments: [String], environment: [String: String], directory: String?) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        return process
    }

    /// Waits for a process to exit, off the concurrency pool.
    public static func wait(_ process: Process) async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume()
            }
        }
    }

    /// A free loopback port for a server a test starts later (checked by a bind, then released).
    ///
    /// Ports come from below the kernel's ephemeral range, and the process hands each out once.
    /// A port the kernel picked (bind to port 0) is one of the ephemeral ports it also gives to
    /// outgoing connections: with dozens of tests connecting at once, one of those could take
    /// the port between this check and the server's bind ("Address already in use").
    public static func freePort() throws -> Int {
        let ephemeralLow = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        let candidates = 10_000..<max(ephemeralLow, 10_001)
        for _ in 0..<1_000 {
            let port = Int.random(in: candidates)
            guard PortLedger.claim(port) else { continue }
            if canBind(port) { return port }
        }
        throw ProgramError(message: "no free port below \(ephemeralLow) after 1,000 tries")
    }

    /// Whether `port` on 127.0.0.1 can be bound now (no listener, no connection in TIME_WAIT).
    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Waits until `check` succeeds or `timeout` passes.
    public static func waitFor(_ what: String, timeout: Duration = .seconds(20), _ check: () async -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if await check() { return }
            try await Task.sleep(for: .milliseconds(100))  // the poll interval
        }
        throw ProgramError(message: "timed out waiting for \(what)")
    }

    /// An executable found on PATH.
    public static func which(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// A program could not be found or run.
public struct ProgramError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

/// The ports this process has handed out, so two tests never get the same one.
private enum PortLedger {
    private static let claimed = Mutex<Set<Int>>([])

    static func claim(_ port: Int) -> Bool {
        claimed.withLock { $0.insert(port).inserted }
    }
}
