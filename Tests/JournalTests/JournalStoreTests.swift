import Foundation
import GRDB
import MediaManager
import MediaServerTesting
import Testing

@testable import Journal

/// The record store's own SQL (a prepared UPSERT) against GRDB's encoding of the same record.
@Suite("Journal record store")
struct JournalStoreTests {
    @Test("a record saved, changed and saved again reads back column for column")
    func upsertKeepsEveryColumn() async throws {
        try await TemporaryDirectory.with(prefix: "mediafs-store") { directory in
            let store = try JournalStore(directory: directory.path)
            defer { store.unlock() }
            var record = JournalRecord(
                scope: "test", parentFolderId: "folder", displayName: "a.jpg", mimeType: "image/jpeg", replacing: ["old1", "old2"])
            try store.saveNow(record)
            // Every column set, to a value other than its default.
            record.state = .finalized
            record.labels = ["red", "blue"]
            record.size = 12345
            record.uploadURL = "http://upload.example/u"
            record.uploadToken = "token"
            record.tokenFolderId = "folder2"
            record.expectedFileId = "file-id"
            record.tusLocation = "http://upload.example/u/tus/1"
            record.acknowledged = 4096
            record.tusLengthDeclared = true
            record.file = try WireFormat.makeDecoder().decode(
                MediaManager.FileDescriptor.self,
                from: Data(
                    """
                    {"id":"file-id","displayName":"a.jpg","url":"http://static.example/file-id","parentFolderId":"folder2",
                     "hash":"d41d8cd98f00b204e9800998ecf8427e","sizeInBytes":"12345","private":false,"mediaType":"IMAGE",
                     "operationStatus":"READY","labels":["red"],"createdDate":"2026-12-03T10:00:00.000Z",
                     "updatedDate":"2026-12-03T10:00:01.000Z"}
                    """.utf8))
            record.mode = 0o640
            record.uid = 1000
            record.gid = 100
            record.modified = 1_796_000_000.5
            record.accessed = 1_796_000_001.25
            record.sealed = 1_796_000_002
            record.attempts = 3
            record.lastError = "HTTP 503"
            try await store.save(record, durable: true)
            let loaded = try #require(try store.load(scope: "test").records.first { $0.id == record.id })
            let (stored, written) = (try loaded.databaseDictionary, try record.databaseDictionary)
            #expect(stored == written)
            #expect(written["file"] != .null && written["labels"] != .null)
            #expect(try store.load(scope: "test").records.count == 1)
        }
    }
}
