import Foundation
import GRDB
import Logging
import Synchronization

/// Attributes the Media Manager cannot hold — mode, owner, modification time — kept on this
/// machine, keyed by the item's id and content hash, so that they survive a remount (and a
/// second `rsync -a` of an unchanged tree transfers nothing). A stored value applies only while
/// the file's hash is the one it was stored with: new content drops it.
public final class AttributeStore: Sendable {
    /// What is stored for one item.
    public struct Stored: Sendable, Equatable, Codable {
        public var hash: String
        public var mode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
        public var modified: Double?
    }

    private let database: DatabaseQueue?
    private let scope: String
    private let cache: Mutex<[String: Stored]>
    private let logger: Logger

    /// Opens (creating it) the store at `path`, for the items of one Media Manager (`scope`,
    /// e.g. its URL and site id). `nil` keeps attributes in memory only.
    public init(path: String?, scope: String, logger: Logger) throws {
        self.scope = scope
        self.logger = logger
        guard let path else {
            self.database = nil
            self.cache = Mutex([:])
            return
        }
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let database = try DatabaseQueue(path: path)
        try database.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS attributes (
                        scope TEXT NOT NULL, id TEXT NOT NULL, hash TEXT NOT NULL,
                        mode INTEGER, uid INTEGER, gid INTEGER, modified DOUBLE,
                        PRIMARY KEY (scope, id)
                    )
                    """)
        }
        let rows = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attributes WHERE scope = ?", arguments: [scope])
        }
        var loaded: [String: Stored] = [:]
        for row in rows {
            loaded[row["id"]] = Stored(
                hash: row["hash"], mode: row["mode"], uid: row["uid"], gid: row["gid"], modified: row["modified"])
        }
        self.database = database
        self.cache = Mutex(loaded)
    }

    /// The stored attributes of `id`, if they were stored for content `hash`.
    public func attributes(id: String, hash: String) -> Stored? {
        guard let stored = cache.withLock({ $0[id] }), stored.hash == hash else { return nil }
        return stored
    }

    /// Merges `change` into what is stored for (`id`, `hash`).
    public func update(id: String, hash: String, _ change: (inout Stored) -> Void) {
        let stored = cache.withLock { cache -> Stored in
            var stored = cache[id].flatMap { $0.hash == hash ? $0 : nil } ?? Stored(hash: hash)
            change(&stored)
            cache[id] = stored
            return stored
        }
        guard let database else { return }
        do {
            try database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO attributes (scope, id, hash, mode, uid, gid, modified) VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (scope, id) DO UPDATE SET hash = excluded.hash, mode = excluded.mode,
                            uid = excluded.uid, gid = excluded.gid, modified = excluded.modified
                        """,
                    arguments: [scope, id, stored.hash, stored.mode, stored.uid, stored.gid, stored.modified])
            }
        } catch {
            logger.warning("Could not store attributes; they last until unmount", metadata: ["error": "\(error)"])
        }
    }
}
