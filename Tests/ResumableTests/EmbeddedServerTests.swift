import Backoff
import FaultInjection
import Foundation
import MediaManager
import MediaServer
import MediaServerTesting
import NIOCore
import Resumable
import Testing

/// The documented resumable flow against the embedded Media Manager, through injected faults:
/// generate-resumable-upload-url → tus (metadata filename, contentType, token) → finalize PUT.
@Suite("tus client against the embedded Media Manager", .serialized)
struct EmbeddedServerTests {
    static let mebibyte = 1024 * 1024
    let logger = testLogger("EmbeddedServerTests")

    /// Starts a proxy on a free port and the server behind it, handing out URLs through the proxy.
    func withServerBehindProxy(
        _ body: (MediaServer, FaultProxy, MediaManagerClient) async throws -> Void
    ) async throws {
        let directory = try makeTemporaryDirectory(prefix: "mediaserver")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let serverPort = try Programs.freePort()
        let proxy = try await FaultProxy.start(targetPort: serverPort, seed: 42, logger: logger)
        var configuration = MediaServerConfiguration(dataDirectory: directory, apiKey: "test-key")
        configuration.host = "127.0.0.1"
        configuration.port = serverPort
        configuration.publicURL = "http://127.0.0.1:\(proxy.port)"
        let server = try await MediaServer.start(configuration, logger: logger)
        let client = MediaManagerClient(
            configuration: .init(baseURL: "http://127.0.0.1:\(proxy.port)", apiKey: "test-key"),
            logger: logger
        )
        do {
            try await body(server, proxy, client)
        } catch {
            try? await client.shutdown()
            await server.stop()
            try? await proxy.stop()
            throw error
        }
        try await client.shutdown()
        await server.stop()
        try await proxy.stop()
    }

    @Test(arguments: [false, true])
    func resumableFlowSurvivesCuts(deferred: Bool) async throws {
        try await withServerBehindProxy { _, proxy, media in
            let size = 5 * Self.mebibyte + 3
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: size, in: directory)
            let target = try await media.files.generateFileResumableUploadUrl(
                mimeType: "application/octet-stream",
                options: UploadOptions(fileName: "flow.bin", sizeInBytes: Int64(size))
            )
            #expect(target.uploadProtocol == .tus)

            try await proxy.setCutPolicy(.insidePatchBodies(bytes: 1_000...(Self.mebibyte), probability: 0.5, maximumCuts: 4))
            let tus = TusClient(configuration: .init(chunkSize: Self.mebibyte, retry: testRetryPolicy()), logger: logger)
            let capabilities = try await tus.discover(creationURL: target.uploadUrl)
            #expect(capabilities.supportsDeferredLength)
            #expect(capabilities.supportsSHA1Checksum)
            let upload = try await tus.createUpload(
                at: target.uploadUrl,
                length: deferred ? nil : Int64(size),
                metadata: ["filename": "flow.bin", "contentType": "application/octet-stream", "token": target.uploadToken],
                capabilities: capabilities
            )
            // Our server follows the spec: a deferred upload takes PATCHes before its length is known.
            #expect(await upload.isSpooling == false)
            let data = try Data(contentsOf: URL(fileURLWithPath: source.path))
            for start in stride(from: 0, to: size, by: 300_000) {
                try await upload.append(ByteBuffer(bytes: data[start..<min(size, start + 300_000)]))
            }
            #expect(try await upload.finish() == Int64(size))
            try await tus.shutdown()

            try await proxy.setCutPolicy(nil)
            let file = try await media.uploads.finalizeResumableUpload(
                uploadUrl: target.uploadUrl,
                uploadToken: target.uploadToken,
                fileName: "flow.bin"
            )
            #expect(file.sizeInBytes == Int64(size))
            #expect(file.displayName == "flow.bin")
            #expect(file.hash == source.md5)
            #expect(try await media.files.get(id: file.id).hash == source.md5)
            #expect(try await proxy.statistics().cuts >= 1)
        }
    }

    @Test func uploadPausesThroughAnOutageAndResumes() async throws {
        try await withServerBehindProxy { _, proxy, media in
            let size = 12 * Self.mebibyte
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: size, in: directory)
            let target = try await media.files.generateFileResumableUploadUrl(
                mimeType: "application/octet-stream",
                options: UploadOptions(fileName: "outage.bin")
            )
            let tus = TusClient(configuration: .init(chunkSize: Self.mebibyte, retry: testRetryPolicy()), logger: logger)
            let progress = ProgressRecorder()
            let result = try await withThrowingTaskGroup(of: TusUploadResult?.self) { group in
                group.addTask {
                    try await tus.upload(
                        file: source.path,
                        to: target.uploadUrl,
                        metadata: ["filename": "outage.bin", "token": target.uploadToken],
                        progress: progress.handler
                    )
                }
                group.addTask {
                    await progress.reach(Int64(4 * Self.mebibyte))
                    // The outage's length is the fault, not a synchronisation.
                    try await proxy.outage(for: .seconds(2))
                    return nil
                }
                var uploaded: TusUploadResult?
                for try await value in group where value != nil { uploaded = value }
                return uploaded!
            }
            try await tus.shutdown()
            #expect(result.length == Int64(size))
            let file = try await media.uploads.finalizeResumableUpload(
                uploadUrl: target.uploadUrl,
                uploadToken: target.uploadToken,
                fileName: "outage.bin"
            )
            #expect(file.hash == source.md5)
            let statistics = try await proxy.statistics()
            #expect(statistics.dropped >= 1)
        }
    }
}
