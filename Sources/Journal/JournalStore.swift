import Foundation
import GRDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The journal's records in SQLite (`<journal>/journal.sqlite`): WAL with `synchronous=FULL`,
/// so a committed change survives a power loss, not only a crash of the process.
///
/// The directory is locked (`flock` on `<journal>/lock`) for the life of the store: two mounts
/// sharing one cache directory would upload each other's files.
final class JournalStore: Sendable {
    private let database: DatabaseQueue
    private let lockDescriptor: Int32
    private let unlocked = Atomic<Bool>(false)

    init(directory: String) throws(JournalError) {
        let lockPath = directory + "/lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw JournalError.unusable("Cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard Self.lock(descriptor) else {
            close(descriptor)
            throw JournalError.unusable(
                "The cache directory \(directory) is in use by another mediafs mount; give each mount its own --cache-dir")
        }
        self.lockDescriptor = descriptor
        do {
            var configuration = Configuration()
            configuration.label = "mediafs.journal"
            // The journal of a mount that just stopped may still be closing its connection (the
            // last one checkpoints the WAL): wait for it rather than fail the new mount.
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            let database = try DatabaseQueue(path: directory + "/journal.sqlite", configuration: configuration)
            try Self.migrator.migrate(database)
            self.database = database
        } catch {
            close(descriptor)
            throw JournalError.unusable("Cannot open the journal database in \(directory): \(error)")
        }
    }

    deinit {
        unlock()
    }

    /// Takes the directory's lock, waiting up to a second for it. A lock given up a moment ago
    /// can still be held: by a child process this one is starting (until it runs its program, it
    /// holds a copy of every descriptor), or by a mount that is still stopping.
    private static func lock(_ descriptor: Int32) -> Bool {
        let deadline = ContinuousClock.now + .seconds(1)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else { return false }
            usleep(10_000)
        }
        return true
    }

    /// Lets another journal open the directory (at shutdown; this one must not be used after).
    func unlock() {
        guard !unlocked.exchange(true, ordering: .acquiringAndReleasing) else { return }
        close(lockDescriptor)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "records") { table in
                table.primaryKey("id", .text)
                table.column("scope", .text).notNull()
                table.column("state", .text).notNull()
                table.column("parentFolderId", .text).notNull()
                table.column("displayName", .text).notNull()
                table.column("mimeType", .text).notNull()
                table.column("replacing", .text).notNull().defaults(to: "[]")
                table.column("size", .integer).notNull().defaults(to: 0)
                table.column("uploadURL", .text)
                table.column("uploadToken", .text)
                table.column("tokenFolderId", .text)
                table.column("expectedFileId", .text)
                table.column("tusLocation", .text)
                table.column("acknowledged", .integer).notNull().defaults(to: 0)
                table.column("tusLengthDeclared", .boolean).notNull().defaults(to: false)
                table.column("file", .text)
                table.column("mode", .integer)
                table.column("uid", .integer)
                table.column("gid", .integer)
                table.column("modified", .double)
                table.column("accessed", .double)
                table.column("created", .double).notNull()
                table.column("sealed", .double)
                table.column("attempts", .integer).notNull().defaults(to: 0)
                table.column("lastError", .text)
            }
        }
        migrator.registerMigration("v2-labels") { db in
            try db.alter(table: "records") { table in table.add(column: "labels", .text) }
        }
        migrator.registerMigration("v3-renames") { db in
            try db.create(table: "renames") { table in
                table.primaryKey("fileId", .text)
                table.column("scope", .text).notNull()
                table.column("folderId", .text).notNull()
                table.column("displayName", .text).notNull()
                table.column("replacing", .text).notNull().defaults(to: "[]")
                table.column("created", .double).notNull()
                table.column("attempts", .integer).notNull().defaults(to: 0)
                table.column("lastError", .text)
            }
        }
        migrator.registerMigration("v4-sealed-bytes") { db in
            // The bytes of small files, committed with the record that seals them.
            try db.create(table: "sealedBytes") { table in
                table.primaryKey("id", .text)
                table.column("bytes", .blob).notNull()
            }
        }
        return migrator
    }

    /// Every record of `scope`, oldest first; and how many records belong to other scopes.
    func load(scope: String) throws -> (records: [JournalRecord], others: Int) {
        try database.read { db in
            let records = try JournalRecord.filter(JournalRecord.Field.scope == scope).order(JournalRecord.Field.created).fetchAll(db)
            let others = try JournalRecord.filter(JournalRecord.Field.scope != scope).fetchCount(db)
            return (records, others)
        }
    }

    /// Inserts or replaces a record. A durable save is on disk before this returns
    /// (`synchronous=FULL`); another one (a hint the journal can do without after a crash) is
    /// written without waiting for the disk, and becomes durable with the next durable save.
    func save(_ record: JournalRecord, durable: Bool = true) async throws {
        try await write(durable: durable) { db in try record.upsert(db) }
    }

    /// Saves what `current` gives when the write runs (the latest state of a record, so that
    /// saves that overtake each other still leave the latest one), or nothing if it gives `nil`.
    func save(durable: Bool = true, current: @escaping @Sendable () -> JournalRecord?) async throws {
        try await write(durable: durable) { db in
            if let record = current() { try record.upsert(db) }
        }
    }

    /// Seals a record, durably. `bytes` (a small file's whole content) are committed with it: one
    /// sync of the database then makes both durable, instead of syncing the data file and its
    /// directory too. Without `bytes`, the data file must be durable already, and bytes kept by
    /// an earlier seal are dropped.
    func seal(_ record: JournalRecord, bytes: Data?) async throws {
        try await write(durable: true) { db in try Self.seal(record, bytes: bytes, db) }
    }

    /// Queues ``seal(_:bytes:)`` and returns at once; `completion` gets its error, if any.
    func seal(_ record: JournalRecord, bytes: Data?, completion: @escaping @Sendable ((any Error)?) -> Void) {
        writeSoon(durable: true, { db in try Self.seal(record, bytes: bytes, db) }, completion: completion)
    }

    private static func seal(_ record: JournalRecord, bytes: Data?, _ db: Database) throws {
        try record.upsert(db)
        if let bytes {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO sealedBytes (id, bytes) VALUES (?, ?)").execute(arguments: [record.id, bytes])
        } else {
            try db.cachedStatement(sql: "DELETE FROM sealedBytes WHERE id = ?").execute(arguments: [record.id])
        }
    }

    /// The bytes a seal committed with record `id`, if any.
    func sealedBytes(_ id: String) throws -> Data? {
        try database.read { db in try Data.fetchOne(db, sql: "SELECT bytes FROM sealedBytes WHERE id = ?", arguments: [id]) }
    }

    /// Removes a record (and bytes its seal kept).
    func delete(_ id: String, durable: Bool = false) async throws {
        try await write(durable: durable) { db in try Self.remove(id, db) }
    }

    private static func remove(_ id: String, _ db: Database) throws {
        _ = try JournalRecord.deleteOne(db, key: id)
        try db.cachedStatement(sql: "DELETE FROM sealedBytes WHERE id = ?").execute(arguments: [id])
    }

    private func write(durable: Bool, _ body: @escaping @Sendable (Database) throws -> Void) async throws {
        try await database.writeWithoutTransaction { db in
            // In WAL mode, NORMAL commits without syncing the log; a later FULL commit syncs
            // every commit before it.
            try db.cachedStatement(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL").execute()
            try db.inTransaction {
                try body(db)
                return .commit
            }
        }
    }

    /// The renames of saved files of `scope` not yet sent, oldest first.
    func loadRenames(scope: String) throws -> [SavedRename] {
        try database.read { db in
            try SavedRename.filter(SavedRename.Field.scope == scope).order(SavedRename.Field.created).fetchAll(db)
        }
    }

    /// Records a rename of a saved file (durably: a rename that returned survives a crash).
    func save(_ rename: SavedRename, durable: Bool = true) async throws {
        try await write(durable: durable) { db in try rename.save(db) }
    }

    /// Forgets a rename that was sent (or given up).
    func deleteRename(_ fileId: String) async throws {
        try await write(durable: false) { db in _ = try SavedRename.deleteOne(db, key: fileId) }
    }

    /// Returns once every save queued so far (``saveSoon(current:failed:)``) ran.
    func flushed() async {
        _ = try? await database.read { _ in }
    }

    /// Removes a record, blocking (while opening, before anything runs).
    func deleteNow(_ id: String) throws {
        try database.write { db in try Self.remove(id, db) }
    }

    /// Saves a record, blocking (while opening).
    func saveNow(_ record: JournalRecord) throws {
        try database.write { db in try record.upsert(db) }
    }

    /// Queues a save of what `current` gives when it runs, written without waiting for the disk
    /// (it becomes durable with the next durable save), and returns at once: for callers that
    /// answer a program without waiting behind the durable saves queued before. `failed` hears of
    /// an error.
    func saveSoon(current: @escaping @Sendable () -> JournalRecord?, failed: @escaping @Sendable (any Error) -> Void) {
        writeSoon(durable: false, { db in if let record = current() { try record.upsert(db) } }) { error in
            if let error { failed(error) }
        }
    }

    /// ``write(durable:_:)`` queued: returns at once, `completion` gets the error, if any.
    private func writeSoon(
        durable: Bool, _ body: @escaping @Sendable (Database) throws -> Void, completion: @escaping @Sendable ((any Error)?) -> Void
    ) {
        database.asyncWriteWithoutTransaction { db in
            do {
                try db.cachedStatement(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL").execute()
                try db.inTransaction {
                    try body(db)
                    return .commit
                }
                completion(nil)
            } catch {
                completion(error)
            }
        }
    }
}
