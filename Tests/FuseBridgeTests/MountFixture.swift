import AsyncHTTPClient
import Dispatch
import Foundation
import FuseBridge
import Logging
import MediaFS
import MediaManager
import MediaServerTesting
import NIOCore

/// A real FUSE mount of a fresh embedded server under a temporary directory. It is always
/// unmounted, whatever the test does.
struct MountFixture {
    let server: TestMediaServer
    let client: MediaManagerClient
    let mountpoint: String

    static func with<T>(
        configure: (inout FilesystemConfiguration) -> Void = { _ in },
        _ body: (MountFixture) async throws -> T
    ) async throws -> T {
        try await TestMediaServer.with { server in
            try await TemporaryDirectory.with(prefix: "mediafs-mount") { directory in
                var logger = Logger(label: "test.mount")
                logger.logLevel = ProcessInfo.processInfo.environment["MEDIAFS_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
                let client = MediaManagerClient(
                    configuration: .init(baseURL: server.baseURL, apiKey: TestMediaServer.apiKey, siteID: nil),
                    httpClient: HTTPClient.shared, logger: logger)
                var configuration = FilesystemConfiguration(
                    entryTTL: .milliseconds(300), attributeTTL: .milliseconds(300), directoryTTL: .milliseconds(300))
                configure(&configuration)
                let filesystem = MediaFilesystem(client: client, http: HTTPClient.shared, configuration: configuration, logger: logger)
                let mountpoint = directory.path + "/mnt"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                let session = try FuseSession(mountpoint: mountpoint, filesystem: filesystem, logger: logger)
                let loop = Task { try await session.run() }
                let fixture = MountFixture(server: server, client: client, mountpoint: mountpoint)
                do {
                    let result = try await body(fixture)
                    session.unmount()
                    try await loop.value
                    return result
                } catch {
                    session.unmount()
                    _ = try? await loop.value
                    throw error
                }
            }
        }
    }

    /// Runs a shell command with the mount as working directory, off the concurrency pool (a
    /// blocked cooperative thread could starve the tasks that answer FUSE).
    @discardableResult
    func sh(_ command: String, expect status: Int32? = 0) async throws -> Shell.Result {
        let result = try await Shell.run(command, directory: mountpoint)
        if let status, result.status != status {
            throw ShellError(message: "`\(command)` exited \(result.status), expected \(status):\n\(result.output)")
        }
        return result
    }

    @discardableResult
    func upload(_ name: String, _ data: Data, folder: String? = nil) async throws -> MediaManager.FileDescriptor {
        let url = try await client.files.generateFileUploadUrl(
            mimeType: MIMETypes.guess(fileName: name), options: UploadOptions(fileName: name, parentFolderId: folder))
        return try await client.uploads.upload(to: url.uploadUrl, fileName: name, bytes: ByteBuffer(bytes: data))
    }
}

enum Shell {
    struct Result: Sendable {
        let status: Int32
        let output: String
        var lines: [String] { output.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    }

    static func run(_ command: String, directory: String) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: "/bin/sh")
                    process.arguments = ["-c", command]
                    process.currentDirectoryURL = URL(fileURLWithPath: directory)
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    process.standardError = pipe
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

struct ShellError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension Data {
    static func random(_ count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        var data = Data(count: count)
        data.withUnsafeMutableBytes { buffer in
            for index in stride(from: 0, to: count - count % 8, by: 8) {
                buffer.storeBytes(of: generator.next(), toByteOffset: index, as: UInt64.self)
            }
            for index in (count - count % 8)..<count { buffer[index] = UInt8.random(in: 0...255, using: &generator) }
        }
        return data
    }
}
