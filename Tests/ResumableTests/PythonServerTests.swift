import Backoff
import Foundation
import NIOCore
import Resumable
import Testing

/// The tus client against an independent server: `resumable-upload` 0.3.0 from PyPI.
@Suite("tus client against resumable-upload", .serialized)
struct PythonServerTests {
    let logger = testLogger("ResumableTests")

    func makeClient(chunkSize: Int = 64 * 1024, checksums: Bool = true) -> TusClient {
        TusClient(
            configuration: .init(chunkSize: chunkSize, retry: testRetryPolicy(), checksums: checksums ? .always : .never),
            logger: logger
        )
    }

    @Test func discoversExtensionsAndChecksums() async throws {
        try await PythonTusServer.with { server in
            let client = makeClient()
            let capabilities = try await client.discover(creationURL: server.creationURL)
            try await client.shutdown()
            #expect(capabilities.versions.contains("1.0.0"))
            #expect(capabilities.supportsCreation)
            #expect(capabilities.supportsDeferredLength)
            #expect(capabilities.supportsTermination)
            #expect(capabilities.supportsSHA1Checksum)
        }
    }

    @Test(arguments: [false, true])
    func streamsKnownLengthInOddSlices(checksums: Bool) async throws {
        try await PythonTusServer.with { server in
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let size = 300_001
            let source = try makeRandomFile(size: size, in: directory)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source.path)))
            let client = makeClient(checksums: checksums)
            let progress = ProgressRecorder()
            let upload = try await client.createUpload(
                at: server.creationURL,
                length: Int64(size),
                metadata: ["filename": "ünïcode name.bin", "token": "secret"],
                progress: progress.handler
            )
            #expect(upload.url.hasPrefix("http://127.0.0.1:\(server.port)/files/"))  // relative Location resolved
            var position = 0
            var step = 1
            while position < size {
                let end = min(size, position + step)
                try await upload.append(Array(bytes[position..<end]))
                position = end
                step = step * 3 + 7
            }
            #expect(try await upload.finish() == Int64(size))
            #expect(try md5OfFile(server.storedFile(for: upload.url)) == source.md5)
            #expect(progress.last == Int64(size))
            #expect(progress.all == progress.all.sorted())
            let state = try await client.state(of: upload.url)
            #expect(state.offset == Int64(size))
            #expect(state.length == Int64(size))
            #expect(state.metadata["filename"] == "ünïcode name.bin")
            try await client.shutdown()
        }
    }

    @Test(arguments: [0, 1, 200_000])
    func deferredLengthSpoolsBecauseServerNeedsLengthOnEveryPatch(size: Int) async throws {
        try await PythonTusServer.with { server in
            let client = makeClient()
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let upload = try await client.createUpload(at: server.creationURL, length: nil)
            // resumable-upload 0.3.0 refuses PATCH without Upload-Length on a deferred upload.
            #expect(await upload.isSpooling)
            for start in stride(from: 0, to: size, by: 50_000) {
                try await upload.append(Array(bytes[start..<min(size, start + 50_000)]))
            }
            #expect(try await upload.finish() == Int64(size))
            #expect(await upload.isSpooling == false)
            let stored = try Data(contentsOf: URL(fileURLWithPath: server.storedFile(for: upload.url)))
            #expect(stored == Data(bytes))
            try await client.shutdown()
        }
    }

    @Test func wholeFileAndAsyncSequenceConveniences() async throws {
        try await PythonTusServer.with { server in
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: 1_000_000, in: directory)
            let client = makeClient(chunkSize: 256 * 1024)
            let result = try await client.upload(file: source.path, to: server.creationURL, metadata: ["filename": "a"])
            #expect(result.length == 1_000_000)
            #expect(try md5OfFile(server.storedFile(for: result.url)) == source.md5)

            let data = try Data(contentsOf: URL(fileURLWithPath: source.path))
            let stream = AsyncStream<ByteBuffer> { continuation in
                for start in stride(from: 0, to: data.count, by: 100_000) {
                    continuation.yield(ByteBuffer(bytes: data[start..<min(data.count, start + 100_000)]))
                }
                continuation.finish()
            }
            let streamed = try await client.upload(stream, length: nil, to: server.creationURL)
            #expect(streamed.length == 1_000_000)
            #expect(try md5OfFile(server.storedFile(for: streamed.url)) == source.md5)
            try await client.shutdown()
        }
    }

    @Test func resumesAnUploadAfterTheWriterWentAway() async throws {
        try await PythonTusServer.with { server in
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let size = 1_000_000
            let source = try makeRandomFile(size: size, in: directory)
            let client = makeClient(chunkSize: 100_000)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source.path)))

            // First run: send 450 000 bytes, then drop the upload object (as a crash would).
            var first: TusUpload? = try await client.createUpload(at: server.creationURL, length: Int64(size))
            let url = first!.url
            try await first!.append(Array(bytes[0..<450_000]))
            first = nil
            // Three chunks were acknowledged before append returned; the fourth, in flight when the
            // upload was dropped, may still land (in part) while the server notices: the offset
            // only grows from here, up to what was sent.
            let acknowledged = try await client.state(of: url).offset
            #expect(acknowledged >= 300_000 && acknowledged <= 450_000)

            // Second run: the file convenience resumes from the server's offset.
            let result = try await client.upload(file: source.path, to: server.creationURL, resumeURL: url)
            #expect(result.url == url)
            #expect(result.resumedFrom >= acknowledged && result.resumedFrom <= 450_000)
            #expect(try md5OfFile(server.storedFile(for: url)) == source.md5)
            try await client.shutdown()
        }
    }

    @Test func terminationDeletesTheUpload() async throws {
        try await PythonTusServer.with { server in
            let client = makeClient()
            let upload = try await client.createUpload(at: server.creationURL, length: 10)
            try await upload.append([1, 2, 3])
            try await upload.terminate()
            await #expect(throws: ResumableError.self) { try await upload.append([4]) }
            do {
                _ = try await client.state(of: upload.url)
                Issue.record("HEAD after DELETE should fail")
            } catch let error as ResumableError {
                #expect(error.code == .uploadNotFound)
                #expect(error.status == 404)
            }
            try await client.shutdown()
        }
    }

    @Test func misuseIsReportedWithTypedErrors() async throws {
        try await PythonTusServer.with { server in
            let client = makeClient()
            let upload = try await client.createUpload(at: server.creationURL, length: 4)
            do {
                try await upload.append([1, 2, 3, 4, 5])
                Issue.record("appending past the length should fail")
            } catch let error as ResumableError {
                #expect(error.code == .lengthMismatch)
            }
            try await upload.append([1, 2])
            do {
                try await upload.finish()
                Issue.record("finishing short should fail")
            } catch let error as ResumableError {
                #expect(error.code == .lengthMismatch)
            }
            do {
                _ = try await client.createUpload(at: server.creationURL, length: 1, metadata: ["bad key": "x"])
                Issue.record("a metadata key with a space should be refused")
            } catch let error as ResumableError {
                #expect(error.code == .invalidArgument)
            }
            do {
                _ = try await client.state(of: server.creationURL + "/00000000-0000-0000-0000-000000000000")
                Issue.record("unknown upload should fail")
            } catch let error as ResumableError {
                #expect(error.code == .uploadNotFound)
            }
            try await client.shutdown()
        }
    }

    @Test func oversizeCreationIsRefusedBeforeSending() async throws {
        try await PythonTusServer.with(extraArguments: ["--max-size", "1000"]) { server in
            let client = makeClient()
            do {
                _ = try await client.createUpload(at: server.creationURL, length: 1001)
                Issue.record("creation over Tus-Max-Size should fail")
            } catch let error as ResumableError {
                #expect(error.code == .unsupportedByServer)
            }
            try await client.shutdown()
        }
    }
}
