import Foundation
import MediaManager
import MediaServerTesting
import NIOCore
import Testing

@testable import Journal

/// Changes that meet the follow-up steps of a saved file in the background (write-back).
@Suite("Changes meeting a record's completion")
struct CompletionRaceTests {
    @Test("chmod, chown and times of a file being saved in the background are stored with the saved file, whenever they come")
    func attributesDuringCompletion() async throws {
        try await RecoveryTests.with { fixture in
            try await fixture.resume { journal in
                let gate = Gate()
                journal.hold([.completed: gate])
                defer { gate.open() }
                let id = try await journal.create(
                    Journal.NewFile(parentFolderId: FolderID.mediaRoot, displayName: "m.bin", mimeType: "application/octet-stream", mode: 0o644))
                _ = try await journal.write(id, at: 0, buffer: ByteBuffer(bytes: Data.random(5000)))
                try await journal.detach(id)
                // Its follow-up steps are done, it has not left the journal yet: a chmod and a
                // utimensat now.
                await gate.reached()
                journal.setAttributes(id, mode: 0o600, modified: Date(timeIntervalSince1970: 1_000_000))
                gate.open()
                let saved = try await journal.finalized(id)
                var stored = journal.attributes.attributes(id: saved.id, hash: saved.hash)
                #expect(stored?.mode == 0o600)
                #expect(stored?.modified == 1_000_000)
                // It left the journal (the filesystem has not heard yet): a chown now.
                journal.setAttributes(id, uid: 1234, gid: 5678)
                stored = journal.attributes.attributes(id: saved.id, hash: saved.hash)
                #expect(stored?.mode == 0o600)
                #expect(stored?.uid == 1234)
                #expect(stored?.gid == 5678)
            }
        }
    }

    @Test("a file deleted as its finalize begins is not forgotten while the Media Manager saves it: the deletion trashes the saved file")
    func deletedAsItsFinalizeBegins() async throws {
        try await RecoveryTests.with { fixture in
            try await fixture.resume { journal in
                let uploaded = Gate()
                let discarding = Gate()
                let finalized = Gate()
                journal.hold([.uploaded: uploaded, .discarding: discarding, .finalized: finalized])
                defer { [uploaded, discarding, finalized].forEach { $0.open() } }
                let id = try await journal.closedFile("d.bin", Data.random(5000))
                // Its bytes are on the server; the deletion finds the record not yet finalizing...
                await uploaded.reached()
                let deleting = Task { try await journal.discard(id) }
                await discarding.reached()
                // ... and before it gives the record up, the finalize goes through.
                uploaded.open()
                await finalized.reached()
                discarding.open()
                finalized.open()
                let trash = try await deleting.value
                let saved = try await fixture.files().map(\.id)
                #expect(saved.count == 1)
                #expect(trash == saved, "the saved file is the caller's to trash")
            }
        }
    }
}
