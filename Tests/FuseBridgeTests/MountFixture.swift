import Backoff
import AsyncHTTPClient
import Crypto
import Dispatch
import Foundation
import FuseBridge
import Journal
import Logging
import MediaFS
import MediaManager
import MediaServer
import MediaServerTesting
import NIOCore
import NIOHTTP1
import Resumable

/// A real FUSE mount of a fresh embedded server under a temporary directory. It is always
/// unmounted, whatever the test does.
struct MountFixture {
    let server: TestMediaServer
    let client: MediaManagerClient
    let mountpoint: String
    /// The mounted filesystem and its journal, for tests that call them directly.
    let filesystem: MediaFilesystem
    let journal: Journal

    static func with<T>(
        configure: (inout FilesystemConfiguration) -> Void = { _ in },
        journal configureJournal: (inout Journal.Configuration) -> Void = { _ in },
        outageLimit: Duration = .seconds(300),
        apiURL: String? = nil,
        options: [String] = [],
        server configureServer: (inout MediaServerConfiguration) -> Void = { _ in },
        _ body: (MountFixture) async throws -> T
    ) async throws -> T {
        try await TestMediaServer.with(configure: configureServer) { server in
            try await mounted(
                server: server, configure: configure, journal: configureJournal, outageLimit: outageLimit, apiURL: apiURL, options: options,
                body)
        }
    }

    /// Mounts `server` (at `server.directory/mnt`), runs `body`, unmounts. `options` are FUSE
    /// mount options (`allow_other` lets other users in; the server's directory is then opened
    /// to them too, so that they reach the mount point).
    static func mounted<T>(
        server: TestMediaServer,
        configure: (inout FilesystemConfiguration) -> Void = { _ in },
        journal configureJournal: (inout Journal.Configuration) -> Void = { _ in },
        outageLimit: Duration = .seconds(300),
        apiURL: String? = nil,
        options: [String] = [],
        _ body: (MountFixture) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "test.mount")
        logger.logLevel = ProcessInfo.processInfo.environment["MEDIAFS_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let client = MediaManagerClient(
            configuration: .init(baseURL: apiURL ?? server.baseURL, apiKey: TestMediaServer.apiKey, siteID: nil),
            httpClient: HTTPClient.shared, logger: logger)
        let filesystem = try makeFilesystem(
            server: server, client: client, configure: configure, journal: configureJournal, outageLimit: outageLimit, logger: logger)
        let mountpoint = server.directory.path + "/mnt"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        if options.contains("allow_other") { chmod(server.directory.path, 0o755) }
        let session = try FuseSession(mountpoint: mountpoint, filesystem: filesystem, options: options, logger: logger)
        let fixture = MountFixture(server: server, client: client, mountpoint: mountpoint, filesystem: filesystem, journal: filesystem.journal)
        return try await run(session, filesystem) { _ in try await body(fixture) }
    }

    /// Runs `session` while `body` runs, then unmounts and shuts `filesystem` down, whatever
    /// `body` does (a failed body gets a short drain).
    static func run<T>(
        _ session: FuseSession, _ filesystem: MediaFilesystem, _ body: (Task<Void, any Error>) async throws -> T
    ) async throws -> T {
        let loop = Task { try await session.run() }
        do {
            let result = try await body(loop)
            session.unmount()
            try await loop.value
            await filesystem.shutdown(timeout: .seconds(30))
            return result
        } catch {
            session.unmount()
            _ = try? await loop.value
            await filesystem.shutdown(timeout: .seconds(1))
            throw error
        }
    }

    /// The filesystem of a test mount over `server`: short TTLs, quick retries, its journal and
    /// attribute store in the server's directory.
    static func makeFilesystem(
        server: TestMediaServer,
        client: MediaManagerClient,
        configure: (inout FilesystemConfiguration) -> Void = { _ in },
        journal configureJournal: (inout Journal.Configuration) -> Void = { _ in },
        outageLimit: Duration = .seconds(300),
        logger: Logger
    ) throws -> MediaFilesystem {
        var configuration = FilesystemConfiguration(
            entryTTL: .milliseconds(300), attributeTTL: .milliseconds(300), directoryTTL: .milliseconds(300))
        configure(&configuration)
        let retry = RetryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(500), outageLimit: outageLimit)
        let tus = TusClient(configuration: .init(retry: retry), httpClient: HTTPClient.shared, logger: logger)
        let attributes = try AttributeStore(path: server.directory.path + "/attributes.sqlite", scope: "test", logger: logger)
        var journalConfiguration = Journal.Configuration(
            directory: server.directory.path + "/cache/journal", scope: "test", outageLimit: outageLimit, retry: retry)
        configureJournal(&journalConfiguration)
        let journal = try Journal(configuration: journalConfiguration, client: client, tus: tus, attributes: attributes, logger: logger)
        return MediaFilesystem(
            client: client, http: HTTPClient.shared, journal: journal, attributes: attributes, configuration: configuration, logger: logger)
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

    /// Waits until every change made through the mount is in the Media Manager (files closed,
    /// renames recorded): `mediafs sync`'s attribute.
    func sync() async throws {
        try await sh("getfattr -n user.mediafs.sync . > /dev/null")
    }

    @discardableResult
    func upload(_ name: String, _ data: Data, folder: String? = nil) async throws -> MediaManager.FileDescriptor {
        let url = try await client.files.generateFileUploadUrl(
            mimeType: MIMETypes.guess(fileName: name), options: UploadOptions(fileName: name, parentFolderId: folder))
        return try await client.uploads.upload(to: url.uploadUrl, fileName: name, bytes: ByteBuffer(bytes: data))
    }

    /// MD5 of a file's bytes as the Media Manager serves them.
    func remoteMD5(_ file: MediaManager.FileDescriptor) async throws -> String {
        var request = HTTPClientRequest(url: file.url)
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .minutes(5))
        var hasher = Insecure.MD5()
        for try await chunk in response.body { chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The files of a folder path (`a/b`) through the API, by display name.
    func remoteFiles(_ path: String = "") async throws -> [String: MediaManager.FileDescriptor] {
        var folder = FolderID.mediaRoot
        for name in path.split(separator: "/") {
            let folders = try await client.folders.list(parentFolderId: folder, limit: 1000).folders
            guard let next = folders.first(where: { $0.displayName == name }) else { return [:] }
            folder = next.id
        }
        let files = try await client.files.list(parentFolderId: folder, limit: 1000).files
        return Dictionary(files.map { ($0.displayName, $0) }, uniquingKeysWith: { a, _ in a })
    }
}

enum Shell {
    struct Result: Sendable {
        let status: Int32
        let output: String
        var lines: [String] { output.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    }

    static func run(_ command: String, directory: String) async throws -> Result {
        let result = try await Programs.run("/bin/sh", ["-c", command], directory: directory)
        return Result(status: result.status, output: result.output)
    }
}

struct ShellError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
