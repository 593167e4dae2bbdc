import Backoff
import FaultInjection
import Foundation
import Logging
import MediaManager
import MediaServer
import NIOCore
import Synchronization
import Testing

/// `MediaManagerClient.content`: ranged GETs, HEAD, status mapping (against the embedded
/// server), and resuming, timeouts and retries (against a server that misbehaves on purpose).
@Suite("MediaManagerClient content")
struct ContentClientTests {
    static let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }

    func withServer(_ body: (MediaServer, MediaManagerClient) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "/mm-content-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = MediaServerConfiguration(dataDirectory: directory, apiKey: "manage-key")
        configuration.port = 0
        let server = try await MediaServer.start(configuration, logger: quietLogger())
        let client = MediaManagerClient(configuration: .init(baseURL: server.baseURL, apiKey: "manage-key"), logger: quietLogger())
        do {
            try await body(server, client)
        } catch {
            try? await client.shutdown()
            await server.stop()
            throw error
        }
        try await client.shutdown()
        await server.stop()
    }

    func upload(_ client: MediaManagerClient, _ name: String, _ bytes: [UInt8], type: String, private: Bool = false) async throws -> MediaManager.FileDescriptor {
        let target = try await client.files.generateFileUploadUrl(mimeType: type, options: UploadOptions(fileName: name, private: `private`))
        return try await client.uploads.upload(to: target.uploadUrl, fileName: name, contentType: type, bytes: ByteBuffer(bytes: bytes))
    }

    /// A client whose retries are quick, and a content client with short timeouts.
    func quickClient(attempts: Int = 4, timeout: Duration = .seconds(5)) -> (MediaManagerClient, MediaManagerClient.Content) {
        let client = MediaManagerClient(
            configuration: .init(
                baseURL: "http://127.0.0.1:1", retry: .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100), maximumAttempts: attempts)),
            logger: quietLogger())
        return (client, client.content.with(timeouts: .init(response: timeout, idle: timeout)))
    }

    static func collect(_ body: ContentBody) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in body { bytes += chunk.readableBytesView }
        return bytes
    }

    @Test("a ranged GET streams exactly the bytes asked for (206); the whole file comes with 200; HEAD tells type and length")
    func rangedGet() async throws {
        try await withServer { _, client in
            let file = try await upload(client, "pic.png", Self.bytes, type: "image/png")
            let part = try await client.content.get(url: file.url, range: 1000..<201_000)
            #expect(part.status == 206)
            #expect(part.range == 1000..<201_000)
            #expect(part.totalSize == Int64(Self.bytes.count))
            #expect(part.contentType == "image/png")
            #expect(try await Self.collect(part.body) == Array(Self.bytes[1000..<201_000]))

            let whole = try await client.content.get(url: file.url)
            #expect(whole.status == 200)
            #expect(whole.range == 0..<Int64(Self.bytes.count))
            #expect(try await Self.collect(whole.body) == Self.bytes)

            let info = try await client.content.head(url: file.url)
            #expect(info.contentType == "image/png")
            #expect(info.length == Int64(Self.bytes.count))
            #expect(info.etag == "\"\(file.hash)\"")

            // A private file through its signed download URL.
            let secret = try await upload(client, "secret.bin", Array(Self.bytes[0..<5000]), type: "application/octet-stream", private: true)
            let download = try await client.files.generateDownloadUrl(id: secret.id)
            var received: [UInt8] = []
            let count = try await client.content.download(url: download.downloadUrls[0].url, range: 10..<4010) { received += $0.readableBytesView }
            #expect(count == 4000)
            #expect(received == Array(Self.bytes[10..<4010]))
        }
    }

    @Test("404, 403 and 416 are MediaManagerErrors with their status, for GET, HEAD and fetch")
    func statuses() async throws {
        try await withServer { server, client in
            let file = try await upload(client, "a.bin", Array(Self.bytes[0..<1000]), type: "application/octet-stream")
            let secret = try await upload(client, "s.bin", [1, 2, 3], type: "application/octet-stream", private: true)
            await expectError(.notFound, status: 404) { _ = try await client.content.get(url: server.baseURL + "/media/no-such-file", range: 0..<10) }
            await expectError(.notFound, status: 404) { _ = try await client.content.head(url: server.baseURL + "/media/no-such-file") }
            // A private file has no public URL.
            await expectError(.permissionDenied, status: 403) { _ = try await client.content.get(url: secret.url) }
            await expectError(.unexpectedStatus, status: 416) { _ = try await client.content.get(url: file.url, range: 5000..<6000) }
            await expectError(.unexpectedStatus, status: 416) {
                try await client.content.fetch(url: file.url, range: 1000..<1001) { _ in }
            }
            await expectError(.invalidArgument) { _ = try await client.content.get(url: "not a url", range: 0..<1) }
        }
    }

    @Test("download resumes a body cut short from the first byte it did not hand over")
    func downloadResumes() async throws {
        try await RangeServer.with(bytes: Self.bytes, script: [.cutAfter(bytes: 1000), .cutAfter(bytes: 70_000)]) { server in
            let (client, content) = quickClient()
            var received: [UInt8] = []
            let count = try await content.download(url: server.url, range: 100..<250_100) { received += $0.readableBytesView }
            #expect(count == 250_000)
            #expect(received == Array(Self.bytes[100..<250_100]))
            #expect(server.requests.map(\.range) == ["bytes=100-250099", "bytes=1100-250099", "bytes=71100-250099"])
            try await client.shutdown()
        }
    }

    @Test("fetch hands every chunk over in order, resuming a cut body")
    func fetchResumes() async throws {
        try await RangeServer.with(bytes: Self.bytes, script: [.cutAfter(bytes: 12_345)]) { server in
            let (client, content) = quickClient()
            let received = Mutex<[UInt8]>([])
            try await content.fetch(url: server.url, range: 0..<300_000) { chunk in
                received.withLock { $0 += chunk.readableBytesView }
            }
            #expect(received.withLock { $0 } == Self.bytes)
            #expect(server.requests.map(\.range) == ["bytes=0-299999", "bytes=12345-299999"])
            try await client.shutdown()
        }
    }

    @Test("a body that stalls fails after the idle timeout; a server that never answers, after the response timeout")
    func timeouts() async throws {
        try await RangeServer.with(bytes: Self.bytes, script: [.stallAfter(bytes: 100), .silent]) { server in
            let (client, content) = quickClient(attempts: 1, timeout: .milliseconds(300))
            let started = ContinuousClock.now
            do {
                try await content.fetch(url: server.url, range: 0..<1000) { _ in }
                Issue.record("a stalled body must time out")
            } catch let error as MediaManagerError {
                #expect(error.code == .transport)
                #expect(error.message.contains("no bytes for"), "\(error)")
            }
            // It waited for the idle time, and no longer than a loaded machine explains.
            let stalled = ContinuousClock.now - started
            #expect(stalled >= .milliseconds(300) && stalled < .seconds(30), "\(stalled)")
            do {
                _ = try await content.get(url: server.url, range: 0..<1000)
                Issue.record("a silent server must time out")
            } catch let error as MediaManagerError {
                #expect(error.code == .transport)
                #expect(error.message.contains("no answer within"), "\(error)")
            }
            try await client.shutdown()
        }
    }

    @Test("a 200 for part of a file is refused; the token in a URL's query never reaches an error message")
    func ignoredRange() async throws {
        try await RangeServer.with(bytes: Self.bytes, script: [.ignoreRange]) { server in
            let (client, content) = quickClient()
            do {
                _ = try await content.get(url: server.url, range: 10..<20)
                Issue.record("a 200 for a range must be refused")
            } catch let error as MediaManagerError {
                #expect(error.code == .unexpectedStatus)
                #expect(error.status == 200)
                #expect(!"\(error)".contains("secret"), "\(error)")
            }
            try await client.shutdown()
        }
    }

    @Test("connections closed by an outage are retried until the server is back")
    func outage() async throws {
        try await RangeServer.with(bytes: Self.bytes) { server in
            let proxy = try await FaultProxy.start(targetPort: server.port, logger: quietLogger())
            let client = MediaManagerClient(
                configuration: .init(
                    baseURL: "http://127.0.0.1:1",
                    retry: .init(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200), jitter: 0, maximumAttempts: 50)),
                logger: quietLogger())
            try await proxy.beginOutage(.closeImmediately)
            let url = "http://127.0.0.1:\(proxy.port)/media/file.bin"
            async let bytes = client.content.download(url: url, range: 0..<300_000) { _ in }
            // The outage ends once the client was turned away at least once.
            let deadline = ContinuousClock.now + .seconds(10)
            while try await proxy.statistics().connectionsRejected == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(try await proxy.statistics().connectionsRejected > 0)
            try await proxy.endOutage()
            #expect(try await bytes == 300_000)
            try await proxy.stop()
            try await client.shutdown()
        }
    }

    @Test("cancelling the task that waits ends the request at once with a cancelled error")
    func cancellation() async throws {
        try await RangeServer.with(bytes: Self.bytes, script: [.silent]) { server in
            let (client, content) = quickClient(attempts: 1, timeout: .seconds(60))
            let task = Task { try await content.fetch(url: server.url, range: 0..<1000) { _ in } }
            let deadline = ContinuousClock.now + .seconds(10)
            while server.requests.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            let started = ContinuousClock.now
            task.cancel()
            do {
                try await task.value
                Issue.record("a cancelled fetch must throw")
            } catch let error as MediaManagerError {
                #expect(error.code == .cancelled, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            try await client.shutdown()
        }
    }
}
