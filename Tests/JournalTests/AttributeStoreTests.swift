import Foundation
import Logging
import MediaServerTesting
import Testing

@testable import Journal

/// The attribute store: updates are read, change and write in one step, answered at once and
/// written in the background, in order with every read.
@Suite("Attribute store")
struct AttributeStoreTests {
    /// Silent: the store only logs a failure to read or write, which the tests check themselves.
    static let logger = Logger(label: "test.attributes") { _ in SwiftLogNoOpLogHandler() }

    @Test("concurrent updates of one item each see the others' result (none is lost)", arguments: [true, false])
    func concurrentUpdatesKeepEveryChange(onDisk: Bool) async throws {
        try await TemporaryDirectory.with(prefix: "mediafs-attributes") { directory in
            let store = try AttributeStore(
                path: onDisk ? directory.path + "/attributes.sqlite" : nil, scope: "test", logger: Self.logger)
            let updates = 300
            // Each update counts one more in `mode`: a read-change-write that is not one step
            // loses counts when two overlap.
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<updates {
                    group.addTask {
                        store.update(id: "file", hash: "h1") { stored in stored.mode = (stored.mode ?? 0) + 1 }
                    }
                }
            }
            await store.flushed()
            #expect(store.attributes(id: "file", hash: "h1")?.mode == UInt32(updates))
        }
    }

    @Test("an update is read back at once, and by a store opened on the same file after it")
    func updateIsReadBack() async throws {
        try await TemporaryDirectory.with(prefix: "mediafs-attributes") { directory in
            let path = directory.path + "/attributes.sqlite"
            let store = try AttributeStore(path: path, scope: "test", logger: Self.logger)
            // Cached first, so that the update must not leave the old answer in the cache.
            #expect(store.attributes(id: "file", hash: "h1") == nil)
            store.update(id: "file", hash: "h1") { stored in stored.mode = 0o600 }
            #expect(store.attributes(id: "file", hash: "h1")?.mode == 0o600)
            store.update(id: "file", hash: "h1") { stored in stored.uid = 42 }
            #expect(store.attributes(ids: ["file"])["file"] == AttributeStore.Stored(hash: "h1", mode: 0o600, uid: 42))
            await store.flushed()

            let reopened = try AttributeStore(path: path, scope: "test", logger: Self.logger)
            #expect(reopened.attributes(id: "file", hash: "h1") == AttributeStore.Stored(hash: "h1", mode: 0o600, uid: 42))
            // Another scope (another Media Manager) does not see them.
            let other = try AttributeStore(path: path, scope: "other", logger: Self.logger)
            #expect(other.attributes(id: "file", hash: "h1") == nil)
        }
    }

    @Test("new content drops what was stored for the old: an update for another hash starts empty")
    func newContentStartsEmpty() async throws {
        try await TemporaryDirectory.with(prefix: "mediafs-attributes") { directory in
            let store = try AttributeStore(path: directory.path + "/attributes.sqlite", scope: "test", logger: Self.logger)
            store.update(id: "file", hash: "h1") { stored in stored.mode = 0o600 }
            #expect(store.attributes(id: "file", hash: "h2") == nil)
            store.update(id: "file", hash: "h2") { stored in stored.gid = 7 }
            #expect(store.attributes(id: "file", hash: "h2") == AttributeStore.Stored(hash: "h2", gid: 7))
            #expect(store.attributes(id: "file", hash: "h1") == nil)
        }
    }
}
