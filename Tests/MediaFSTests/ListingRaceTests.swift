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
            let gate = CheckpointGate(.created)
            gate.install(in: fx.filesystem.journal)
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
}

extension FilesystemFixture {
    /// Makes a folder's cached listing stale (as after its TTL): the next access fetches it.
    func expire(_ directory: InodeNumber) {
        filesystem.state.withLock { $0.table.invalidate(directory, now: ContinuousClock.now) }
    }
}

/// Holds a journal's records at one checkpoint until opened.
final class CheckpointGate: Sendable {
    private struct State {
        var open = false
        var held: [CheckedContinuation<Void, Never>] = []
        var arrivals = 0
        var watchers: [CheckedContinuation<Void, Never>] = []
    }

    let checkpoint: Journal.Checkpoint
    private let state = Mutex(State())

    init(_ checkpoint: Journal.Checkpoint) {
        self.checkpoint = checkpoint
    }

    func install(in journal: Journal) {
        journal.checkpoint.withLock { hook in
            hook = { [self] point, _ in
                if point == checkpoint { await hold() }
            }
        }
    }

    private func hold() async {
        await withCheckedContinuation { continuation in
            let (watchers, go) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool) in
                state.arrivals += 1
                if !state.open { state.held.append(continuation) }
                defer { state.watchers = [] }
                return (state.watchers, state.open)
            }
            if go { continuation.resume() }
            watchers.forEach { $0.resume() }
        }
    }

    /// Waits until a record reached the checkpoint.
    func reached() async {
        await withCheckedContinuation { continuation in
            let arrived = state.withLock { state -> Bool in
                if state.arrivals > 0 { return true }
                state.watchers.append(continuation)
                return false
            }
            if arrived { continuation.resume() }
        }
    }

    /// Lets every record held (and every one to come) go on.
    func open() {
        let held = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.held = [] }
            return state.held
        }
        held.forEach { $0.resume() }
    }
}
