import Backoff
import FaultInjection
import Foundation
import Logging
import Resumable
import Testing

/// The tus client through a proxy that cuts connections inside PATCH bodies and goes down for a while.
@Suite("tus uploads through injected network faults", .serialized)
struct FaultInjectionTests {
    static let mebibyte = 1024 * 1024
    let logger = testLogger("FaultInjectionTests")

    func withServerAndProxy(
        seed: UInt64,
        _ body: (PythonTusServer, FaultProxy, String) async throws -> Void
    ) async throws {
        try await PythonTusServer.with { server in
            let proxy = try await FaultProxy.start(targetPort: server.port, seed: seed, logger: logger)
            do {
                try await body(server, proxy, "http://127.0.0.1:\(proxy.port)/files")
                try await proxy.stop()
            } catch {
                try? await proxy.stop()
                throw error
            }
        }
    }

    @Test(arguments: [0, 1, 8 * mebibyte - 1, 8 * mebibyte + 1])
    func uploadCompletesThroughCutsInsidePatchBodies(size: Int) async throws {
        try await withServerAndProxy(seed: UInt64(size) &+ 17) { server, proxy, creationURL in
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: size, in: directory)
            // Every one of the first three PATCHes is cut somewhere between its request line and the end of its body.
            try await proxy.setCutPolicy(
                .insidePatchBodies(bytes: 1...(min(size, 8 * Self.mebibyte) + 300), probability: 1, maximumCuts: 3)
            )
            // Every byte in PATCH bodies (none with the creation), where the cuts fall; with a
            // checksum on each, so the server discards every cut body whole.
            let client = TusClient(
                configuration: .init(retry: testRetryPolicy(), checksums: .always, creationWithUpload: false), logger: logger)
            let progress = ProgressRecorder()
            let result: TusUploadResult
            if size == 0 {
                // A zero-length upload needs no PATCH with a known length; a deferred one needs one.
                result = try await client.upload(AsyncStream { $0.finish() }, length: nil, to: creationURL)
            } else {
                result = try await client.upload(file: source.path, to: creationURL, progress: progress.handler)
                #expect(progress.last == Int64(size))
            }
            try await client.shutdown()
            #expect(result.length == Int64(size))
            #expect(fileSize(server.storedFile(for: result.url)) == Int64(size))
            #expect(try md5OfFile(server.storedFile(for: result.url)) == source.md5)
            let statistics = try await proxy.statistics()
            #expect(statistics.cuts == 3 || size < 2)
            #expect(statistics.cuts >= 1)
        }
    }

    @Test func hundredMebibytesSurviveCutsAndOutages() async throws {
        try await withServerAndProxy(seed: 100) { server, proxy, creationURL in
            let size = 100 * Self.mebibyte
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: size, in: directory)
            try await proxy.setCutPolicy(
                .insidePatchBodies(bytes: 1...(8 * Self.mebibyte), probability: 0.35, maximumCuts: 8)
            )
            let client = TusClient(configuration: .init(retry: testRetryPolicy()), logger: logger)
            let progress = ProgressRecorder()
            let started = ContinuousClock.now
            let result = try await withThrowingTaskGroup(of: TusUploadResult?.self) { group in
                group.addTask {
                    try await client.upload(file: source.path, to: creationURL, progress: progress.handler)
                }
                group.addTask {
                    // Two outages while the upload runs: one refusing connections, one resetting them.
                    for (threshold, mode) in [(30, FaultProxy.OutageMode.refuse), (65, .closeImmediately)] {
                        await progress.reach(Int64(threshold * Self.mebibyte))
                        try await proxy.outage(for: .milliseconds(1500), mode: mode)
                    }
                    return nil
                }
                var uploaded: TusUploadResult?
                for try await value in group where value != nil { uploaded = value }
                return uploaded!
            }
            try await client.shutdown()
            #expect(result.length == Int64(size))
            #expect(try md5OfFile(server.storedFile(for: result.url)) == source.md5)
            let statistics = try await proxy.statistics()
            #expect(statistics.cuts >= 1)
            #expect(statistics.dropped + statistics.connectionsRejected >= 1)
            #expect(progress.all == progress.all.sorted())
            logger.info("100 MiB through faults", metadata: ["elapsed": "\(ContinuousClock.now - started)", "cuts": "\(statistics.cuts)"])
        }
    }

    @Test func partialBodiesStoredWithoutChecksumsAreNotResent() async throws {
        // Without checksums resumable-upload keeps the bytes of a cut PATCH; the client must continue
        // from the server's offset (inside its in-flight chunk) rather than resend the whole chunk.
        try await withServerAndProxy(seed: 7) { server, proxy, creationURL in
            let size = 3 * Self.mebibyte
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: size, in: directory)
            try await proxy.setCutPolicy(.insidePatchBodies(bytes: 100_000...900_000, probability: 1, maximumCuts: 4))
            let client = TusClient(
                configuration: .init(chunkSize: Self.mebibyte, retry: testRetryPolicy(), checksums: .never),
                logger: logger
            )
            let progress = ProgressRecorder()
            let result = try await client.upload(file: source.path, to: creationURL, progress: progress.handler)
            try await client.shutdown()
            #expect(try md5OfFile(server.storedFile(for: result.url)) == source.md5)
            // Some acknowledged offsets fall inside a chunk: the server's offset after a cut.
            #expect(progress.all.contains { $0 % Int64(Self.mebibyte) != 0 && $0 != Int64(size) })
        }
    }

    /// What the policy decides is what goes on the wire: resumable-upload keeps the bytes of a cut
    /// body that carried no checksum (acknowledged offsets inside a chunk) and discards the whole
    /// body of one that did (offsets only at chunk ends).
    @Test(arguments: [TusClient.ChecksumPolicy.automatic, .always])
    func cutBodiesKeepPartialBytesOnlyWithoutChecksums(policy: TusClient.ChecksumPolicy) async throws {
        try await withServerAndProxy(seed: 11) { server, proxy, creationURL in
            let size = 3 * Self.mebibyte
            let directory = try makeTemporaryDirectory(prefix: "src")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let source = try makeRandomFile(size: size, in: directory)
            try await proxy.setCutPolicy(.insidePatchBodies(bytes: 100_000...900_000, probability: 1, maximumCuts: 3))
            let client = TusClient(
                configuration: .init(chunkSize: Self.mebibyte, retry: testRetryPolicy(), checksums: policy, creationWithUpload: false),
                logger: logger
            )
            let progress = ProgressRecorder()
            let result = try await client.upload(file: source.path, to: creationURL, progress: progress.handler)
            try await client.shutdown()
            #expect(try md5OfFile(server.storedFile(for: result.url)) == source.md5)
            // Every body is cut while cuts are left, unless it is shorter than the cut point (a
            // resend from inside a chunk, without a checksum).
            let cuts = try await proxy.statistics().cuts
            #expect(policy == .always ? cuts == 3 : cuts >= 1, "\(cuts) cuts")
            let insideChunks = progress.all.filter { $0 % Int64(Self.mebibyte) != 0 }
            if policy == .always {
                #expect(insideChunks.isEmpty, "\(progress.all)")
            } else {
                // To 127.0.0.1 the automatic policy sends no checksum.
                #expect(!insideChunks.isEmpty, "\(progress.all)")
            }
        }
    }

    @Test func appendWaitsWhileTheNetworkIsDownAndResumesAfterwards() async throws {
        try await withServerAndProxy(seed: 3) { server, proxy, creationURL in
            let chunk = 64 * 1024
            let client = TusClient(configuration: .init(chunkSize: chunk, retry: testRetryPolicy()), logger: logger)
            let bytes = (0..<(10 * chunk)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
            let upload = try await client.createUpload(at: creationURL, length: Int64(bytes.count))
            try await proxy.beginOutage(.refuse)
            let appended = ProgressRecorder()
            let writer = Task {
                for index in 0..<10 {
                    try await upload.append(Array(bytes[(index * chunk)..<((index + 1) * chunk)]))
                    appended.handler(Int64(index + 1))
                }
                return try await upload.finish()
            }
            // What is measured: for a whole second of outage the writer gets no further (a sleep
            // that is the thing under test, not a synchronisation).
            try await Task.sleep(for: .seconds(1))
            // One chunk in flight (stuck), one filled and waiting: the writer is held back.
            #expect(appended.last <= 2)
            try await proxy.endOutage()
            #expect(try await writer.value == Int64(bytes.count))
            let stored = try Data(contentsOf: URL(fileURLWithPath: server.storedFile(for: upload.url)))
            #expect(stored == Data(bytes))
            try await client.shutdown()
        }
    }

    @Test func anOutageLongerThanTheLimitFailsWithATypedError() async throws {
        try await withServerAndProxy(seed: 5) { _, proxy, creationURL in
            let chunk = 64 * 1024
            let client = TusClient(
                configuration: .init(
                    chunkSize: chunk,
                    retry: testRetryPolicy(outageLimit: .seconds(1)),
                    // The limit is checked between attempts; a refused connect lasts up to the connect timeout.
                    timeouts: .init(connect: .milliseconds(500))
                ),
                logger: logger
            )
            let upload = try await client.createUpload(at: creationURL, length: Int64(4 * chunk))
            try await upload.append([UInt8](repeating: 1, count: chunk))
            try await proxy.beginOutage(.refuse)
            let started = ContinuousClock.now
            do {
                try await upload.append([UInt8](repeating: 2, count: 3 * chunk))
                try await upload.finish()
                Issue.record("the upload should fail once the outage outlasts the limit")
            } catch let error as ResumableError {
                #expect(error.code == .outage)
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            // The failure sticks: later calls report it too.
            await #expect(throws: ResumableError.self) { try await upload.finish() }
            try await proxy.endOutage()

            // Creation against a server that stays down fails the same way.
            try await proxy.beginOutage(.closeImmediately)
            do {
                _ = try await client.createUpload(at: creationURL, length: 1)
                Issue.record("creation should fail during a long outage")
            } catch let error as ResumableError {
                #expect(error.code == .outage)
            }
            try await client.shutdown()
        }
    }
}
