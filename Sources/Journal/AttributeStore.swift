import Foundation
import GRDB
import Logging
import Synchronization

/// Attributes the Media Manager cannot hold — mode, owner, modification and access times — kept
/// on this machine, keyed by the item's id and content hash, so that they survive a remount (and
/// a second `rsync -a` of an unchanged tree transfers nothing). A stored value applies only while
/// the file's hash is the one it was stored with: new content drops it. Folders are stored with
/// an empty hash.
///
/// Rows are read on demand (a listing asks for its items in one query) and a bounded cache keeps
/// the recent answers, absent ones included, so memory does not grow with the library.
public final class AttributeStore: Sendable {
    /// What is stored for one item.
    public struct Stored: Sendable, Equatable, Codable {
        public var hash: String
        public var mode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
        public var modified: Double?
        public var accessed: Double?

        public init(hash: String, mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, modified: Double? = nil, accessed: Double? = nil) {
            self.hash = hash
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.modified = modified
            self.accessed = accessed
        }
    }

    private let database: DatabaseQueue?
    private let scope: String
    private let cache: Mutex<Cache>
    private let logger: Logger

    /// The most recent answers (an entry of `nil` means "nothing stored").
    private struct Cache {
        var entries: [String: Stored?] = [:]
        var order: [String] = []
        let capacity: Int

        mutating func put(_ id: String, _ value: Stored?) {
            if entries.updateValue(value, forKey: id) == nil {
                order.append(id)
                if order.count > capacity {
                    let evicted = order.count - capacity
                    for old in order.prefix(evicted) { entries[old] = nil }
                    order.removeFirst(evicted)
                }
            }
        }

        /// Forgets `id` (its next read goes to the database). Its place in `order` stays until
        /// evicted; a later `put` then finds no entry and appends it again, so `order` may name
        /// an id twice: evicting the older one drops a newer entry early, never keeps one too long.
        mutating func remove(_ id: String) {
            entries[id] = nil
        }
    }

    /// Opens (creating it) the store at `path`, for the items of one Media Manager (`scope`,
    /// e.g. its URL and site id). `nil` keeps attributes in memory only (as many as the cache
    /// holds).
    public init(path: String?, scope: String, cacheCapacity: Int = 8192, logger: Logger) throws {
        self.scope = scope
        self.logger = logger
        self.cache = Mutex(Cache(capacity: max(64, cacheCapacity)))
        guard let path else {
            self.database = nil
            return
        }
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var configuration = Configuration()
        configuration.label = "mediafs.attributes"
        // Several mounts of one user share the store: a writer waits for another's commit.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL without a sync per commit: a crash of the machine may lose the last few
            // changes of mode or times (the file itself is safe), never corrupt the store. A
            // rollback journal cost four syncs per file that rsync writes.
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        let database = try DatabaseQueue(path: path, configuration: configuration)
        try database.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS attributes (
                        scope TEXT NOT NULL, id TEXT NOT NULL, hash TEXT NOT NULL,
                        mode INTEGER, uid INTEGER, gid INTEGER, modified DOUBLE,
                        PRIMARY KEY (scope, id)
                    )
                    """)
            let columns = try db.columns(in: "attributes").map(\.name)
            if !columns.contains("accessed") {
                try db.execute(sql: "ALTER TABLE attributes ADD COLUMN accessed DOUBLE")
            }
        }
        self.database = database
    }

    /// The stored attributes of `id`, if they were stored for content `hash`.
    public func attributes(id: String, hash: String) -> Stored? {
        lookup([id])[id]?.matching(hash)
    }

    /// The stored attributes of many items at once (one query for those not cached), by id,
    /// whatever hash they were stored with (compare it with the item's).
    public func attributes(ids: [String]) -> [String: Stored] {
        lookup(ids)
    }

    private func lookup(_ ids: [String]) -> [String: Stored] {
        var found: [String: Stored] = [:]
        var missing: [String] = []
        cache.withLock { cache in
            for id in ids {
                if let entry = cache.entries[id] {
                    if let stored = entry { found[id] = stored }
                } else {
                    missing.append(id)
                }
            }
        }
        guard !missing.isEmpty, let database else { return found }
        do {
            // The answers enter the cache inside the read: reads and updates run one at a time,
            // in order, so an answer read before an update never overwrites the update's result.
            let loaded = try database.read { db in
                var loaded: [String: Stored] = [:]
                for batch in stride(from: 0, to: missing.count, by: 500).map({ Array(missing[$0..<min($0 + 500, missing.count)]) }) {
                    let marks = Array(repeating: "?", count: batch.count).joined(separator: ",")
                    let rows = try Row.fetchAll(
                        db, sql: "SELECT * FROM attributes WHERE scope = ? AND id IN (\(marks))",
                        arguments: StatementArguments([scope] + batch))
                    for row in rows { loaded[row["id"]] = Self.stored(row) }
                }
                cache.withLock { cache in
                    for id in missing where cache.entries[id] == nil { cache.put(id, loaded[id]) }
                }
                return loaded
            }
            return found.merging(loaded) { current, _ in current }
        } catch {
            logger.warning("Could not read stored attributes", metadata: ["error": "\(error)"])
            return found
        }
    }

    private static func stored(_ row: Row) -> Stored {
        Stored(hash: row["hash"], mode: row["mode"], uid: row["uid"], gid: row["gid"], modified: row["modified"], accessed: row["accessed"])
    }

    /// Merges `change` into what is stored for (`id`, `hash`), and returns at once.
    ///
    /// The read, the change and the write are one step of the store's serial queue, in order
    /// with every other read and update: two updates of one item never lose each other's change
    /// (a chmod that comes while a finished upload stores the attributes it was given keeps its
    /// mode). Until the step has run, the item is not cached, so a read waits for it.
    public func update(id: String, hash: String, _ change: @escaping @Sendable (inout Stored) -> Void) {
        guard let database else {
            cache.withLock { cache in
                var stored = cache.entries[id].flatMap { $0 }?.matching(hash) ?? Stored(hash: hash)
                change(&stored)
                cache.put(id, stored)
            }
            return
        }
        cache.withLock { $0.remove(id) }
        let scope = self.scope
        let logger = self.logger
        database.asyncWrite { [self] db in
            var stored: Stored
            do {
                let row = try Row.fetchOne(db, sql: "SELECT * FROM attributes WHERE scope = ? AND id = ?", arguments: [scope, id])
                stored = row.map(Self.stored)?.matching(hash) ?? Stored(hash: hash)
            } catch {
                stored = Stored(hash: hash)
                logger.warning("Could not read stored attributes", metadata: ["error": "\(error)"])
            }
            change(&stored)
            let result = stored
            // Cached whether or not the write succeeds: then the attributes last until unmount.
            cache.withLock { $0.put(id, result) }
            try db.execute(
                sql: """
                    INSERT INTO attributes (scope, id, hash, mode, uid, gid, modified, accessed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (scope, id) DO UPDATE SET hash = excluded.hash, mode = excluded.mode,
                        uid = excluded.uid, gid = excluded.gid, modified = excluded.modified, accessed = excluded.accessed
                    """,
                arguments: [scope, id, result.hash, result.mode, result.uid, result.gid, result.modified, result.accessed])
        } completion: { _, result in
            if case .failure(let error) = result {
                logger.warning("Could not store attributes; they last until unmount", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Returns once every update asked for so far is stored (or failed).
    public func flushed() async {
        guard let database else { return }
        _ = try? await database.read { _ in }
    }
}

extension AttributeStore.Stored {
    /// These attributes, if they were stored for content `hash` (else they are another
    /// content's, and do not apply).
    func matching(_ hash: String) -> Self? {
        self.hash == hash ? self : nil
    }
}
