import Backoff
import AsyncHTTPClient
import FaultInjection
import Foundation
import FuseBridge
import Logging
import MediaFS
import MediaManager
import MediaServer
import MediaServerTesting
import NIOCore
import Resumable

/// A real FUSE mount whose parts a bridge test reaches: the session (its notifier, its
/// unmount), the filesystem, and the task running the loop; the client's retries and the TTLs
/// are the test's, and the mount can sit behind a ``FaultProxy``. Always unmounted.
struct BridgeMount {
    let server: TestMediaServer
    let client: MediaManagerClient
    let filesystem: MediaFilesystem
    let session: FuseSession
    let loop: Task<Void, any Error>
    let mountpoint: String
    /// The proxy between the mount and the server, when asked for.
    let proxy: FaultProxy?

    static func with<T>(
        behindProxy: Bool = false,
        retry: RetryPolicy = RetryPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(20)),
        drainTimeout: Duration = .seconds(30),
        configure: (inout FilesystemConfiguration) -> Void = { _ in },
        _ body: (BridgeMount) async throws -> T
    ) async throws -> T {
        guard behindProxy else {
            return try await TestMediaServer.with { server in
                try await mounted(server: server, proxy: nil, retry: retry, drainTimeout: drainTimeout, configure: configure, body)
            }
        }
        // The server listens on a port chosen here and hands out the proxy's URLs.
        let port = try Programs.freePort()
        var logger = Logger(label: "test.proxy")
        logger.logLevel = .critical
        let proxy = try await FaultProxy.start(targetPort: port, logger: logger)
        do {
            let result = try await TestMediaServer.with(configure: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }) { server in
                try await mounted(server: server, proxy: proxy, retry: retry, drainTimeout: drainTimeout, configure: configure, body)
            }
            try await proxy.stop()
            return result
        } catch {
            try? await proxy.stop()
            throw error
        }
    }

    private static func mounted<T>(
        server: TestMediaServer,
        proxy: FaultProxy?,
        retry: RetryPolicy,
        drainTimeout: Duration,
        configure: (inout FilesystemConfiguration) -> Void,
        _ body: (BridgeMount) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "test.bridge")
        logger.logLevel = ProcessInfo.processInfo.environment["MEDIAFS_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let baseURL = proxy.map { "http://127.0.0.1:\($0.port)" } ?? server.baseURL
        let client = MediaManagerClient(
            configuration: .init(baseURL: baseURL, apiKey: TestMediaServer.apiKey, siteID: nil, retry: retry),
            httpClient: HTTPClient.shared, logger: logger)
        let filesystem = try MountFixture.makeFilesystem(server: server, client: client, configure: configure, logger: logger)
        let mountpoint = server.directory.path + "/mnt"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let session = try FuseSession(mountpoint: mountpoint, filesystem: filesystem, drainTimeout: drainTimeout, logger: logger)
        return try await MountFixture.run(session, filesystem) { loop in
            try await body(
                BridgeMount(
                    server: server, client: client, filesystem: filesystem, session: session, loop: loop, mountpoint: mountpoint,
                    proxy: proxy))
        }
    }

    /// Runs a shell command in `directory` (the mount by default), off the concurrency pool.
    @discardableResult
    func sh(_ command: String, in directory: String? = nil, expect status: Int32? = 0) async throws -> Shell.Result {
        let result = try await Shell.run(command, directory: directory ?? mountpoint)
        if let status, result.status != status {
            throw ShellError(message: "`\(command)` exited \(result.status), expected \(status):\n\(result.output)")
        }
        return result
    }

    @discardableResult
    func upload(_ name: String, _ data: Data) async throws -> MediaManager.FileDescriptor {
        let url = try await client.files.generateFileUploadUrl(mimeType: MIMETypes.guess(fileName: name), options: UploadOptions(fileName: name))
        return try await client.uploads.upload(to: url.uploadUrl, fileName: name, bytes: ByteBuffer(bytes: data))
    }

    /// The inode number the kernel shows for `name` in the mount.
    func inode(_ name: String) async throws -> InodeNumber {
        let output = try await sh("stat -c %i '\(name)'").output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let inode = InodeNumber(output) else { throw ShellError(message: "no inode for \(name): \(output)") }
        return inode
    }
}
