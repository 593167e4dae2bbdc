import AsyncHTTPClient
import Backoff
import Crypto
import Foundation
import Logging
import MediaManager
import MediaServerTesting
import NIOCore
import Resumable
import Synchronization
import Testing

@testable import Journal

/// What a new journal does with records a process left behind, in each state a crash can leave
/// them in: the file is saved exactly once.
@Suite("The journal resumes what a crashed process left")
struct RecoveryTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.journal")
        logger.logLevel = .critical
        return logger
    }()

    struct Fixture {
        let server: TestMediaServer
        let client: MediaManagerClient
        let tus: TusClient
        let directory: String

        /// A record as a process that died would have left it, with its bytes.
        func leave(_ record: JournalRecord, bytes: Data) throws {
            try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
            try bytes.write(to: URL(fileURLWithPath: directory + "/data/\(record.id).data"))
            let store = try JournalStore(directory: directory)
            try store.saveNow(record)
            store.unlock()
        }

        /// A journal over the directory, started; stopped after `body`.
        func resume<T>(configure: (inout Journal.Configuration) -> Void = { _ in }, _ body: (Journal) async throws -> T) async throws -> T {
            let attributes = try AttributeStore(path: nil, scope: "test", logger: RecoveryTests.logger)
            var configuration = Journal.Configuration(directory: directory, scope: "test", writeBack: true)
            configure(&configuration)
            let journal = try Journal(
                configuration: configuration,
                client: client, tus: tus, attributes: attributes, logger: RecoveryTests.logger)
            journal.start()
            do {
                let result = try await body(journal)
                await journal.stop()
                return result
            } catch {
                await journal.stop()
                throw error
            }
        }

        /// An upload whose bytes are all on the server: token, tus upload, bytes.
        func uploaded(_ name: String, _ bytes: Data) async throws -> (GenerateResumableUploadUrlResponse, String) {
            let token = try await client.files.generateFileResumableUploadUrl(
                mimeType: "image/jpeg", options: UploadOptions(fileName: name, parentFolderId: FolderID.mediaRoot))
            let capabilities = try await tus.discover(creationURL: token.uploadUrl)
            let created = try await tus.create(
                at: token.uploadUrl, length: Int64(bytes.count),
                metadata: ["filename": name, "contentType": "image/jpeg", "token": token.uploadToken], capabilities: capabilities,
                sending: BufferSource(ByteBuffer(bytes: bytes), start: 0), range: 0..<Int64(bytes.count))
            #expect(created.offset == Int64(bytes.count))
            return (token, created.url)
        }

        func record(_ name: String, _ bytes: Data, token: GenerateResumableUploadUrlResponse, location: String, state: JournalRecord.State)
            -> JournalRecord
        {
            var record = JournalRecord(scope: "test", parentFolderId: FolderID.mediaRoot, displayName: name, mimeType: "image/jpeg")
            record.state = state
            record.size = Int64(bytes.count)
            record.sealed = Date().timeIntervalSince1970
            record.uploadURL = token.uploadUrl
            record.uploadToken = token.uploadToken
            record.tokenFolderId = FolderID.mediaRoot
            record.expectedFileId = token.announcedFileId
            record.tusLocation = location
            record.tusLengthDeclared = true
            record.acknowledged = Int64(bytes.count)
            return record
        }

        func files() async throws -> [MediaManager.FileDescriptor] {
            try await client.files.list(parentFolderId: FolderID.mediaRoot, limit: 100).files
        }
    }

    static func with(_ body: (Fixture) async throws -> Void) async throws {
        try await TestMediaServer.with { server in
            let client = MediaManagerClient(
                configuration: .init(baseURL: server.baseURL, apiKey: TestMediaServer.apiKey), httpClient: HTTPClient.shared, logger: logger)
            let tus = TusClient(
                configuration: .init(retry: RetryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))),
                httpClient: HTTPClient.shared, logger: logger)
            try await body(Fixture(server: server, client: client, tus: tus, directory: server.directory.path + "/journal"))
        }
    }

    static func md5(_ data: Data) -> String {
        Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    @Test("finalizing, and the finalize had gone through: the file is found by the id its token announced, not saved again")
    func finalizedBeforeTheCrash() async throws {
        try await Self.with { fixture in
            let bytes = Data.random(100_000)
            let (token, location) = try await fixture.uploaded("a.jpg", bytes)
            let saved = try await fixture.client.uploads.finalizeResumableUpload(
                uploadUrl: token.uploadUrl, uploadToken: token.uploadToken, fileName: "a.jpg")
            #expect(saved.id == token.announcedFileId)
            try fixture.leave(fixture.record("a.jpg", bytes, token: token, location: location, state: .finalizing), bytes: bytes)
            let status = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            #expect(status.pending == 0 && status.failed == 0)
            let files = try await fixture.files()
            #expect(files.map(\.id) == [saved.id])
        }
    }

    @Test("finalizing, but the finalize never went out: it is sent once")
    func crashBeforeTheFinalize() async throws {
        try await Self.with { fixture in
            let bytes = Data.random(100_000)
            let (token, location) = try await fixture.uploaded("b.jpg", bytes)
            try fixture.leave(fixture.record("b.jpg", bytes, token: token, location: location, state: .finalizing), bytes: bytes)
            _ = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            let files = try await fixture.files()
            #expect(files.count == 1)
            #expect(files.first?.id == token.announcedFileId)
            #expect(files.first?.hash == Self.md5(bytes))
        }
    }

    @Test("a token that announces no id: a finalize that went through is recognised by the MD5, never by name and size")
    func recognisedByContent() async throws {
        try await Self.with { fixture in
            let bytes = Data.random(50_000)
            // Another file of the same name and size is in the folder: it must not be taken.
            let decoy = Data.random(50_000)
            let simple = try await fixture.client.files.generateFileUploadUrl(mimeType: "image/jpeg", options: UploadOptions(fileName: "c.jpg"))
            let other = try await fixture.client.uploads.upload(to: simple.uploadUrl, fileName: "c.jpg", bytes: ByteBuffer(bytes: decoy))
            let (token, location) = try await fixture.uploaded("c.jpg", bytes)
            let saved = try await fixture.client.uploads.finalizeResumableUpload(
                uploadUrl: token.uploadUrl, uploadToken: token.uploadToken, fileName: "c.jpg")
            var record = fixture.record("c.jpg", bytes, token: token, location: location, state: .finalizing)
            record.expectedFileId = nil
            record.replacing = [other.id]
            try fixture.leave(record, bytes: bytes)
            _ = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            // The saved file was recognised (not finalized again), and the file it replaces is in the trash.
            #expect(try await fixture.files().map(\.id) == [saved.id])
            #expect(try await fixture.client.files.listDeleted().files.map(\.id) == [other.id])
        }
    }

    @Test("overwriting, crashed before the finalize: the old file of the same name and size is not taken for the new one")
    func oldFileIsNotTheNewOne() async throws {
        try await Self.with { fixture in
            let old = Data.random(40_000)
            let new = Data.random(40_000)
            let simple = try await fixture.client.files.generateFileUploadUrl(mimeType: "image/jpeg", options: UploadOptions(fileName: "f.jpg"))
            let previous = try await fixture.client.uploads.upload(to: simple.uploadUrl, fileName: "f.jpg", bytes: ByteBuffer(bytes: old))
            let (token, location) = try await fixture.uploaded("f.jpg", new)
            var record = fixture.record("f.jpg", new, token: token, location: location, state: .finalizing)
            record.expectedFileId = nil
            record.replacing = [previous.id]
            try fixture.leave(record, bytes: new)
            _ = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            // The new file is saved, and only then the old one goes to the trash.
            let files = try await fixture.files()
            #expect(files.count == 1)
            #expect(files.first?.hash == Self.md5(new))
            #expect(try await fixture.client.files.listDeleted().files.map(\.id) == [previous.id])
        }
    }

    @Test("a rename of a saved file that returned before the crash is sent by the next process, and what it replaced is trashed")
    func renameSurvivesTheCrash() async throws {
        try await Self.with { fixture in
            func upload(_ name: String) async throws -> MediaManager.FileDescriptor {
                let url = try await fixture.client.files.generateFileUploadUrl(mimeType: "image/jpeg", options: UploadOptions(fileName: name))
                return try await fixture.client.uploads.upload(to: url.uploadUrl, fileName: name, bytes: ByteBuffer(bytes: Data.random(1000)))
            }
            let temporary = try await upload(".g.jpg.A1b2C3")
            let old = try await upload("g.jpg")
            try FileManager.default.createDirectory(atPath: fixture.directory, withIntermediateDirectories: true)
            let store = try JournalStore(directory: fixture.directory)
            try await store.save(
                SavedRename(fileId: temporary.id, scope: "test", folderId: FolderID.mediaRoot, displayName: "g.jpg", replacing: [old.id]))
            store.unlock()
            let status = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            #expect(status.renaming == 0)
            let files = try await fixture.files()
            #expect(files.map(\.id) == [temporary.id])
            #expect(files.first?.displayName == "g.jpg")
            #expect(try await fixture.client.files.listDeleted().files.map(\.id) == [old.id])
        }
    }

    @Test("sealed with part of its bytes on the server: the upload continues from the server's offset")
    func resumesFromTheServersOffset() async throws {
        try await Self.with { fixture in
            let bytes = Data.random(3 << 20)
            let token = try await fixture.client.files.generateFileResumableUploadUrl(
                mimeType: "image/jpeg", options: UploadOptions(fileName: "d.jpg"))
            let capabilities = try await fixture.tus.discover(creationURL: token.uploadUrl)
            let created = try await fixture.tus.create(
                at: token.uploadUrl, length: Int64(bytes.count),
                metadata: ["filename": "d.jpg", "contentType": "image/jpeg", "token": token.uploadToken], capabilities: capabilities)
            let half = Int64(bytes.count / 2)
            _ = try await fixture.tus.send(
                BufferSource(ByteBuffer(bytes: bytes), start: 0), range: 0..<half, to: created.url, capabilities: capabilities)
            var record = fixture.record("d.jpg", bytes, token: token, location: created.url, state: .sealed)
            record.acknowledged = 0  // a stale hint: the server's offset is the truth
            try fixture.leave(record, bytes: bytes)
            _ = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            let files = try await fixture.files()
            #expect(files.count == 1)
            #expect(files.first?.hash == Self.md5(bytes))
        }
    }

    @Test("a record a program was still writing is given up: its upload is terminated, nothing is saved, its bytes go")
    func openRecordsAreGivenUp() async throws {
        try await Self.with { fixture in
            let bytes = Data.random(200_000)
            let (token, location) = try await fixture.uploaded("e.jpg", bytes)
            try fixture.leave(fixture.record("e.jpg", bytes, token: token, location: location, state: .open), bytes: bytes)
            let status = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            #expect(status.pending == 0)
            #expect(try await fixture.files().isEmpty)
            await #expect(throws: ResumableError.self) { _ = try await fixture.tus.state(of: location) }
            let left = try FileManager.default.contentsOfDirectory(atPath: fixture.directory + "/data")
            #expect(left.isEmpty, "\(left)")
        }
    }

    @Test("written behind what it had streamed, closed, and the process stops before the new upload: the next one sends the bytes written, not the old upload's")
    func restartOutlivesTheProcess() async throws {
        try await Self.with { fixture in
            let before = Data.random(256 << 10)
            let header = Data.random(64 << 10)
            let first = try Journal(
                configuration: .init(directory: fixture.directory, scope: "test", writeBack: true, streamChunk: 64 << 10),
                client: fixture.client, tus: fixture.tus, attributes: try AttributeStore(path: nil, scope: "test", logger: Self.logger),
                logger: Self.logger)
            let streamed = Gate()
            let sending = Gate()
            first.hold([.streamed: streamed, .sending: sending])
            first.start()
            let id = try await first.create(.init(parentFolderId: FolderID.mediaRoot, displayName: "movie.mp4", mimeType: "video/mp4"))
            #expect(try await first.write(id, at: 0, buffer: ByteBuffer(bytes: before)) == 0)
            // The server acknowledged what was streamed; then the program rewrites the header.
            await streamed.reached()
            #expect(try await first.write(id, at: 0, buffer: ByteBuffer(bytes: header)) == 0)
            try await first.detach(id)
            streamed.open()
            // The sealed file's upload is about to begin when the process stops.
            await sending.reached()
            let stopping = Task { await first.stop() }
            while !first.state.withLock({ $0.stopping }) { await Task.yield() }
            sending.open()
            await stopping.value

            let status = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            #expect(status.pending == 0 && status.failed == 0)
            let files = try await fixture.files()
            #expect(files.map(\.displayName) == ["movie.mp4"])
            #expect(files.first?.hash == Self.md5(header + before.dropFirst(header.count)))
        }
    }

    /// What a power loss can leave of a data file that was never synced.
    enum DataFileLoss: String, CaseIterable, Sendable {
        case zeroed, short, missing
    }

    @Test("a small file's bytes, committed with its seal, come back when its data file was lost (never synced): the file saved is the one written", arguments: DataFileLoss.allCases)
    func sealedBytesOutliveTheDataFile(loss: DataFileLoss) async throws {
        try await Self.with { fixture in
            let bytes = Data.random(40_000)
            // The first process reaches no Media Manager: the file is written, closed (sealed) and
            // queued when the process stops.
            let unreachable = MediaManagerClient(
                configuration: .init(baseURL: "http://127.0.0.1:1", apiKey: TestMediaServer.apiKey), httpClient: HTTPClient.shared,
                logger: Self.logger)
            let first = try Journal(
                configuration: .init(directory: fixture.directory, scope: "test", writeBack: true),
                client: unreachable, tus: fixture.tus, attributes: try AttributeStore(path: nil, scope: "test", logger: Self.logger),
                logger: Self.logger)
            first.start()
            let id = try await first.create(.init(parentFolderId: FolderID.mediaRoot, displayName: "small.jpg", mimeType: "image/jpeg"))
            #expect(try await first.write(id, at: 0, buffer: ByteBuffer(bytes: bytes)) == 0)
            try await first.detach(id)
            #expect(first.uploadState(id) != "done")
            // Stopping does not wait out the outage (the token fetch retries meanwhile).
            let stopping = ContinuousClock.now
            await first.stop()
            #expect(ContinuousClock.now - stopping < .seconds(30))

            let path = fixture.directory + "/data/\(id).data"
            switch loss {
            case .zeroed: try Data(count: bytes.count).write(to: URL(fileURLWithPath: path))
            case .short: try bytes.prefix(1000).write(to: URL(fileURLWithPath: path))
            case .missing: try FileManager.default.removeItem(atPath: path)
            }
            let status = try await fixture.resume { journal in await journal.drain(timeout: .seconds(30)) }
            #expect(status.pending == 0 && status.failed == 0)
            let files = try await fixture.files()
            #expect(files.map(\.displayName) == ["small.jpg"])
            #expect(files.first?.hash == Self.md5(bytes))
            // Saved: the record and the bytes it kept left the journal.
            let store = try JournalStore(directory: fixture.directory)
            defer { store.unlock() }
            #expect(try store.sealedBytes(id) == nil)
        }
    }
}
