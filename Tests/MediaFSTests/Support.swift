import Backoff
import AsyncHTTPClient
import Foundation
import Journal
import Logging
import MediaFS
import MediaManager
import MediaServerTesting
import NIOCore
import Resumable

/// A filesystem over a fresh embedded server, and the client to change things behind its back.
struct FilesystemFixture {
    let server: TestMediaServer
    let client: MediaManagerClient
    let filesystem: MediaFilesystem

    static func with<T>(
        configure: (inout FilesystemConfiguration) -> Void = { _ in },
        key: String = TestMediaServer.apiKey,
        outageLimit: Duration = .seconds(300),
        writeBack: Bool = false,
        _ body: (FilesystemFixture) async throws -> T
    ) async throws -> T {
        try await TestMediaServer.with { server in
            var logger = Logger(label: "test.fs")
            logger.logLevel = .error
            let client = MediaManagerClient(
                configuration: .init(baseURL: server.baseURL, apiKey: key, siteID: nil), httpClient: HTTPClient.shared, logger: logger)
            var configuration = FilesystemConfiguration(
                entryTTL: .milliseconds(200), attributeTTL: .milliseconds(200), directoryTTL: .milliseconds(200))
            configure(&configuration)
            let attributesPath = server.directory.path + "/attributes.sqlite"
            let tus = TusClient(configuration: .init(retry: RetryPolicy(outageLimit: outageLimit)), httpClient: HTTPClient.shared, logger: logger)
            let attributes = try AttributeStore(path: attributesPath, scope: server.baseURL, logger: logger)
            let journal = try Journal(
                configuration: .init(
                    directory: server.directory.path + "/cache/journal", scope: server.baseURL, writeBack: writeBack, outageLimit: outageLimit),
                client: client, tus: tus, attributes: attributes, logger: logger)
            let filesystem = MediaFilesystem(
                client: client, http: HTTPClient.shared, journal: journal, attributes: attributes, configuration: configuration, logger: logger)
            defer { Task { await filesystem.shutdown(timeout: .zero) } }
            return try await body(FilesystemFixture(server: server, client: client, filesystem: filesystem))
        }
    }

    /// Uploads bytes as a file through the simple upload URL.
    @discardableResult
    func upload(_ name: String, _ data: Data, folder: String? = nil, mimeType: String = "application/octet-stream") async throws -> MediaManager.FileDescriptor {
        let url = try await client.files.generateFileUploadUrl(
            mimeType: mimeType, options: UploadOptions(fileName: name, parentFolderId: folder))
        return try await client.uploads.upload(to: url.uploadUrl, fileName: name, contentType: mimeType, bytes: ByteBuffer(bytes: data))
    }

    /// Names in a directory, without `.` and `..`.
    func names(_ inode: InodeNumber) async throws -> [String] {
        let handle = try await filesystem.opendir(inode)
        defer { filesystem.releasedir(handle: handle) }
        // Batch after batch, as the kernel asks.
        var entries: [DirectoryEntry] = []
        var offset = 0
        while true {
            let batch = try filesystem.readdir(handle: handle, offset: offset)
            guard let last = batch.last else { break }
            entries += batch
            offset = last.nextOffset
        }
        return entries.filter { !$0.isSelfOrParent }.map(\.name)
    }

    /// Reads a whole file through the filesystem in `chunk`-sized reads.
    func readAll(_ inode: InodeNumber, chunk: Int = 128 << 10) async throws -> Data {
        let handle = try await filesystem.open(inode, flags: O_RDONLY)
        var data = Data()
        while true {
            let buffer = try await filesystem.read(handle: handle, offset: Int64(data.count), size: chunk)
            if buffer.readableBytes == 0 { break }
            data.append(contentsOf: buffer.readableBytesView)
        }
        await filesystem.release(handle: handle)
        return data
    }
}
