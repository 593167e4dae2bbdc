import Backoff
import Crypto
import Foundation
import Logging
import MediaServerTesting
import NIOCore
import NIOPosix
import Resumable

/// A `resumable-upload` (PyPI) tus server run as a subprocess on a free loopback port.
final class PythonTusServer: Sendable {
    let port: Int
    let directory: String
    let uploadDirectory: String
    private let process: Process

    var creationURL: String { "http://127.0.0.1:\(port)/files" }

    private init(port: Int, directory: String, process: Process) {
        self.port = port
        self.directory = directory
        self.uploadDirectory = directory + "/uploads"
        self.process = process
    }

    /// Starts a server, runs `body`, and always terminates the server and removes its files.
    static func with<T>(extraArguments: [String] = [], _ body: (PythonTusServer) async throws -> T) async throws -> T {
        let server = try await start(extraArguments: extraArguments)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    static func start(extraArguments: [String]) async throws -> PythonTusServer {
        let directory = try makeTemporaryDirectory(prefix: "ru")
        try FileManager.default.createDirectory(atPath: directory + "/uploads", withIntermediateDirectories: true)
        let port = try Programs.freePort()
        let process = Process()
        // Threads of the test process block most signals and a spawned child inherits that mask;
        // unblock them before exec so that SIGTERM stops the server.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", "-c",
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])",
                "resumable-upload", "serve", "--host", "127.0.0.1", "--port", String(port), "--base-path", "/files",
                "--upload-dir", directory + "/uploads", "--db-path", directory + "/uploads.db", "--log-level", "WARNING",
                "--lock-wait", "2",
            ] + extraArguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let server = PythonTusServer(port: port, directory: directory, process: process)
        // Wait until it accepts connections (the interpreter takes a moment to start, and longer
        // on a machine the whole suite keeps busy).
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if canConnect(port: port) { return server }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(100))  // poll interval of an external process's state
        }
        await server.stop()
        throw TestFailure("resumable-upload did not start on port \(port)")
    }

    /// Sends SIGTERM, waits (without blocking a thread) up to 3 s, then SIGKILL.
    func stop() async {
        if process.isRunning {
            process.terminate()
            let deadline = ContinuousClock.now + .seconds(3)
            while process.isRunning && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))  // poll interval of an external process's state
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                while process.isRunning {
                    try? await Task.sleep(for: .milliseconds(20))  // poll interval of an external process's state
                }
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The bytes the server stored for an upload URL (`<upload-dir>/<id>`).
    func storedFile(for uploadURL: String) -> String {
        uploadDirectory + "/" + (URL(string: uploadURL)?.lastPathComponent ?? "")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func makeTemporaryDirectory(prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func canConnect(port: Int) -> Bool {
    do {
        let channel = try ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).wait()
        try? channel.close().wait()
        return true
    } catch {
        return false
    }
}

/// Writes `size` random bytes to a new file; returns its path and MD5 (hex).
func makeRandomFile(size: Int, in directory: String) throws -> (path: String, md5: String) {
    let path = directory + "/source-\(size).bin"
    _ = FileManager.default.createFile(atPath: path, contents: nil)
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
    defer {
        try? output.close()
        try? input.close()
    }
    var md5 = Insecure.MD5()
    var remaining = size
    while remaining > 0 {
        let data = try input.read(upToCount: min(remaining, 1 << 20)) ?? Data()
        md5.update(data: data)
        try output.write(contentsOf: data)
        remaining -= data.count
    }
    return (path, hex(md5.finalize()))
}

func md5OfFile(_ path: String) throws -> String {
    let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? input.close() }
    var md5 = Insecure.MD5()
    while let data = try input.read(upToCount: 1 << 20), !data.isEmpty {
        md5.update(data: data)
    }
    return hex(md5.finalize())
}

func hex(_ digest: some Sequence<UInt8>) -> String {
    digest.map { String(format: "%02x", $0) }.joined()
}

func fileSize(_ path: String) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.int64Value ?? -1
}

/// Records progress callbacks.
final class ProgressRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int64] = []
    /// Tasks waiting for the progress to reach a value.
    private var waiters: [(threshold: Int64, continuation: CheckedContinuation<Void, Never>)] = []

    var handler: TusClient.ProgressHandler {
        { value in
            let ready = self.lock.withLock { () -> [CheckedContinuation<Void, Never>] in
                self.values.append(value)
                let ready = self.waiters.filter { value >= $0.threshold }.map(\.continuation)
                self.waiters.removeAll { value >= $0.threshold }
                return ready
            }
            ready.forEach { $0.resume() }
        }
    }

    var all: [Int64] { lock.withLock { values } }
    var last: Int64 { lock.withLock { values.last ?? 0 } }

    /// Returns once the progress has reached `threshold` (at once if it has).
    func reach(_ threshold: Int64) async {
        await withCheckedContinuation { continuation in
            let reached = lock.withLock { () -> Bool in
                if (values.last ?? 0) >= threshold { return true }
                waiters.append((threshold, continuation))
                return false
            }
            if reached { continuation.resume() }
        }
    }
}

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}

/// A fast retry policy for tests.
func testRetryPolicy(outageLimit: Duration = .seconds(30)) -> RetryPolicy {
    RetryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(500), outageLimit: outageLimit)
}
