import Foundation
import MediaManager
import MediaServerTesting
import NIOCore
import Synchronization
import Testing

@testable import Journal
@testable import MediaFS

#if canImport(Glibc)
import Glibc
#endif

/// Listings that meet a change of a saved file half-way: each test holds the change (or the
/// listing) at one point, deterministically, and checks what the folder shows.
@Suite("Listings meeting a change of a saved file half-way")
struct ListingRaceTests {
    @Test("a change started on a saved file keeps its name when a listing meets its journal record first")
    func listingMeetsTheRecordFirst() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }, writeBack: true) { fx in
            try await fx.upload("x.txt", Data("old".utf8))
            let inode = try await fx.filesystem.lookup(parent: 1, name: "x.txt").attributes.inode
            let gate = Gate()
            fx.filesystem.journal.hold([.created: gate])
            defer { gate.open() }
            let opening = Task { try await fx.filesystem.open(inode, flags: O_WRONLY | O_TRUNC) }
            // The new record is in the journal; its creator has not taken it yet. A listing now
            // (the cached one is stale) meets the record before the file's inode does.
            await gate.reached()
            fx.expire(1)
            #expect(try await fx.names(1) == ["x.txt"])
            gate.open()
            let handle = try await opening.value
            // The name is the file's, under the inode the kernel holds.
            #expect(try await fx.filesystem.lookup(parent: 1, name: "x.txt").attributes.inode == inode)
            #expect(try await fx.names(1) == ["x.txt"])
            _ = try await fx.filesystem.write(handle: handle, offset: 0, data: ByteBuffer(string: "new"))
            try await fx.filesystem.flush(handle: handle, context: nil)
            await fx.filesystem.release(handle: handle)
            #expect(try await fx.readAll(inode) == Data("new".utf8))
        }
    }

    @Test("a listing read before a saved file's rename was sent, applied after, shows the new name")
    func listingReadBeforeTheRenameWasSent() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }, writeBack: true) { fx in
            try await fx.upload("x.txt", Data("one".utf8))
            #expect(try await fx.names(1) == ["x.txt"])
            let renaming = Gate()
            fx.filesystem.journal.hold([.renaming: renaming])
            defer { renaming.open() }
            try await fx.filesystem.rename(parent: 1, name: "x.txt", newParent: 1, newName: "y.txt", flags: 0)
            await renaming.reached()
            // A listing reads the folder (the Media Manager has the old name); the rename is sent
            // before the listing is applied.
            let listing = Gate()
            fx.filesystem.holdListings(listing)
            defer { listing.open() }
            fx.expire(1)
            let names = Task { try await fx.names(1) }
            await listing.reached()
            renaming.open()
            #expect(await fx.filesystem.journal.drain(timeout: .seconds(30)).renaming == 0)
            listing.open()
            #expect(try await names.value == ["y.txt"])
        }
    }

    @Test("a rename of a saved file cancelled before it was sent (the file moved elsewhere meanwhile) is never sent: it cannot undo the move")
    func cancelledRenameIsNeverSent() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }, writeBack: true) { fx in
            let file = try await fx.upload("x.txt", Data("one".utf8))
            #expect(try await fx.names(1) == ["x.txt"])
            let journal = fx.filesystem.journal
            let renaming = Gate()
            journal.hold([.renaming: renaming])
            defer { renaming.open() }
            try await fx.filesystem.rename(parent: 1, name: "x.txt", newParent: 1, newName: "y.txt", flags: 0)
            // The rename's sender has read it and is about to send it when a move to another
            // folder cancels it (and would then send its own change).
            await renaming.reached()
            let sender = try #require(journal.state.withLock { $0.renameTasks[file.id] })
            let cancelling = Task { await journal.cancelRename(of: file.id) }
            while journal.pendingRename(of: file.id) != nil { await Task.yield() }
            renaming.open()
            #expect(await cancelling.value?.displayName == "y.txt")
            await sender.value
            #expect(try await fx.client.files.get(id: file.id).displayName == "x.txt")
        }
    }

    @Test("a listing read before a saved file was moved where it was renamed to, applied after, shows it only there")
    func listingReadBeforeTheMove() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }, writeBack: true) { fx in
            let folder = try await fx.filesystem.mkdir(parent: 1, name: "F").attributes.inode
            let journal = fx.filesystem.journal
            let (uploaded, finalized) = (Gate(), Gate())
            journal.hold([.uploaded: uploaded, .finalized: finalized])
            defer { uploaded.open(); finalized.open() }
            let (entry, handle) = try await fx.filesystem.create(parent: 1, name: "m.bin", flags: O_WRONLY, context: nil)
            let record = try #require(fx.filesystem.state.withLock { $0.table[entry.attributes.inode]?.item.record })
            _ = try await fx.filesystem.write(handle: handle, offset: 0, data: ByteBuffer(string: "data"))
            try await fx.filesystem.flush(handle: handle, context: nil)
            await fx.filesystem.release(handle: handle)
            // Its bytes are on the server (for the root folder): it is renamed into F.
            await uploaded.reached()
            try await fx.filesystem.rename(parent: 1, name: "m.bin", newParent: folder, newName: "m.bin", flags: 0)
            uploaded.open()
            // Saved in the root folder, not yet moved: a listing of the root reads it there, and
            // is applied once the file was moved and left the journal.
            await finalized.reached()
            let listing = Gate()
            fx.filesystem.holdListings(listing)
            defer { listing.open() }
            fx.expire(1)
            let names = Task { try await fx.names(1) }
            await listing.reached()
            finalized.open()
            _ = try await journal.finalized(record)
            listing.open()
            #expect(try await names.value == ["F"])
            #expect(try await fx.names(folder) == ["m.bin"])
        }
    }

    @Test("a saved file that could not be moved where it was renamed to shows where it is")
    func listingAfterAFailedMove() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }, writeBack: true) { fx in
            let folder = try await fx.filesystem.mkdir(parent: 1, name: "F").attributes.inode
            let folderId = try #require(fx.filesystem.state.withLock { $0.table[folder]?.item.id })
            let journal = fx.filesystem.journal
            let (uploaded, finalized) = (Gate(), Gate())
            journal.hold([.uploaded: uploaded, .finalized: finalized])
            defer { uploaded.open(); finalized.open() }
            let (entry, handle) = try await fx.filesystem.create(parent: 1, name: "m.bin", flags: O_WRONLY, context: nil)
            let record = try #require(fx.filesystem.state.withLock { $0.table[entry.attributes.inode]?.item.record })
            _ = try await fx.filesystem.write(handle: handle, offset: 0, data: ByteBuffer(string: "data"))
            try await fx.filesystem.flush(handle: handle, context: nil)
            await fx.filesystem.release(handle: handle)
            await uploaded.reached()
            try await fx.filesystem.rename(parent: 1, name: "m.bin", newParent: folder, newName: "m.bin", flags: 0)
            // F goes to the trash behind the mount's back: the saved file cannot be moved there.
            try await fx.client.folders.delete(ids: [folderId])
            uploaded.open()
            await finalized.reached()
            let listing = Gate()
            fx.filesystem.holdListings(listing)
            defer { listing.open() }
            fx.expire(1)
            let names = Task { try await fx.names(1) }
            await listing.reached()
            finalized.open()
            let saved = try await journal.finalized(record)
            #expect(saved.parentFolderId == FolderID.mediaRoot)
            listing.open()
            // Applied before or after the move failed: once the journal is done with the file,
            // the folder shows it (in the first case, as soon as the mount learns where it is).
            _ = try await names.value
            #expect(await journal.drain(timeout: .seconds(30)).files.isEmpty)
            let deadline = ContinuousClock.now + .seconds(30)
            var shown = try await fx.names(1)
            while shown != ["m.bin"], ContinuousClock.now < deadline {
                await Task.yield()
                shown = try await fx.names(1)
            }
            #expect(shown == ["m.bin"])
        }
    }

    @Test("a listing read before a file was saved twice shows it once (default close)")
    func savedTwiceWhileAListingWasRead() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }) { fx in
            #expect(try await fx.names(1) == [])
            let (entry, first) = try await fx.filesystem.create(parent: 1, name: "x.bin", flags: O_WRONLY, context: nil)
            _ = try await fx.filesystem.write(handle: first, offset: 0, data: ByteBuffer(string: "v1"))
            try await fx.filesystem.flush(handle: first, context: nil)
            await fx.filesystem.release(handle: first)
            // A listing reads the folder (the Media Manager has v1); the file is rewritten and
            // saved twice before the listing is applied.
            let listing = Gate()
            fx.filesystem.holdListings(listing)
            defer { listing.open() }
            fx.expire(1)
            let names = Task { try await fx.names(1) }
            await listing.reached()
            for version in ["v2", "v3"] {
                let handle = try await fx.filesystem.open(entry.attributes.inode, flags: O_WRONLY | O_TRUNC)
                _ = try await fx.filesystem.write(handle: handle, offset: 0, data: ByteBuffer(string: version))
                try await fx.filesystem.flush(handle: handle, context: nil)
                await fx.filesystem.release(handle: handle)
            }
            listing.open()
            #expect(try await names.value == ["x.bin"])
            #expect(try await fx.readAll(entry.attributes.inode) == Data("v3".utf8))
        }
    }

    @Test("a listing applied while the file being written in its folder is saved keeps its name (default close)")
    func savedWhileAListingIsApplied() async throws {
        try await FilesystemFixture.with(configure: { $0.directoryTTL = .seconds(600) }) { fx in
            #expect(try await fx.names(1) == [])
            let journal = fx.filesystem.journal
            let (uploaded, finalized) = (Gate(), Gate())
            let saved = DispatchSemaphore(value: 0)
            journal.checkpoint.withLock { hook in
                hook = { point, _ in
                    switch point {
                    case .uploaded: await uploaded.pass()
                    case .finalized:
                        saved.signal()
                        await finalized.pass()
                    default: break
                    }
                }
            }
            defer { uploaded.open(); finalized.open() }
            let (entry, handle) = try await fx.filesystem.create(parent: 1, name: "x.bin", flags: O_WRONLY, context: nil)
            _ = try await fx.filesystem.write(handle: handle, offset: 0, data: ByteBuffer(string: "data"))
            let closing = Task { try await fx.filesystem.flush(handle: handle, context: nil) }
            await uploaded.reached()
            // A listing reads the folder before the Media Manager has the file, and while it is
            // applied the upload completes (the record leaves the journal's pending ones).
            let listing = Gate()
            fx.filesystem.holdListings(listing)
            defer { listing.open() }
            fx.expire(1)
            let names = Task { try await fx.names(1) }
            await listing.reached()
            let completed = Mutex<Bool?>(nil)
            fx.filesystem.listingApplying.withLock { hook in
                hook = { _ in
                    guard completed.withLock({ $0 == nil }) else { return }
                    uploaded.open()
                    let done = saved.wait(timeout: .now() + 30) == .success
                    completed.withLock { $0 = done }
                }
            }
            listing.open()
            #expect(try await names.value == ["x.bin"])
            #expect(completed.withLock { $0 } == true)
            uploaded.open()
            finalized.open()
            try await closing.value
            await fx.filesystem.release(handle: handle)
            #expect(try await fx.filesystem.lookup(parent: 1, name: "x.bin").attributes.inode == entry.attributes.inode)
            #expect(try await fx.names(1) == ["x.bin"])
        }
    }
}

extension MediaFilesystem {
    /// Holds listings between their read and their use, at `gate`.
    func holdListings(_ gate: Gate) {
        listingRead.withLock { $0 = { _ in await gate.pass() } }
    }
}

extension FilesystemFixture {
    /// Makes a folder's cached listing stale (as after its TTL): the next access fetches it.
    func expire(_ directory: InodeNumber) {
        filesystem.state.withLock { $0.table.invalidate(directory, now: ContinuousClock.now) }
    }
}

extension Journal {
    /// Holds records at checkpoints, each at its gate.
    func hold(_ gates: [Checkpoint: Gate]) {
        checkpoint.withLock { hook in
            hook = { point, _ in await gates[point]?.pass() }
        }
    }
}
