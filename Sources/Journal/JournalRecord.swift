import Foundation
import GRDB
import MediaManager

/// The durable record of one file being written: where it goes, how far its upload got, and its
/// state. Its bytes are in `<journal>/data/<id>.data`.
public struct JournalRecord: Sendable, Hashable, Codable, Identifiable {
    /// Where a record is in its life.
    ///
    /// `open → sealed → finalizing → finalized`, then it leaves the journal. A record that a
    /// program was still writing when the mount died stays `open` and is given up at the next
    /// mount; `failed` keeps a file the Media Manager refused until the user removes it;
    /// `abandoned` waits only for its tus upload to be terminated.
    public enum State: String, Sendable, Hashable, Codable {
        /// A program may still write: the length is not known.
        case open
        /// Closed: the bytes are durable and final; waiting for (or in) its upload.
        case sealed
        /// The finalize request may have been sent: find out before sending it again.
        case finalizing
        /// The Media Manager has the file (`file`); follow-up steps remain (move, trash what it
        /// replaces).
        case finalized
        /// Refused for good (the reason in `lastError`); kept until the user removes it.
        case failed
        /// Given up (deleted, or incomplete after a crash): its tus upload is to be terminated.
        case abandoned
    }

    /// Local id; also names the data file.
    public var id: String
    /// The Media Manager this record belongs to (records of another scope are left alone).
    public var scope: String
    public var state: State
    /// Target folder and name.
    public var parentFolderId: String
    public var displayName: String
    public var mimeType: String
    /// Files this one replaces: they go to the trash once it is saved.
    public var replacing: [String]
    /// Labels set while it was pending, given to the file once saved.
    public var labels: [String]?
    /// The length once sealed (the size so far while open).
    public var size: Int64
    /// The resumable upload URL and its single-use token.
    public var uploadURL: String?
    public var uploadToken: String?
    /// The folder the token was issued for (the file lands there; a later move follows).
    public var tokenFolderId: String?
    /// The file id the token announces (`path` claim), by which a finalize whose answer was lost
    /// is recognised.
    public var expectedFileId: String?
    /// The tus upload and the offset the server last acknowledged (a hint: HEAD is the truth).
    public var tusLocation: String?
    public var acknowledged: Int64
    /// Whether the tus upload was created with its length (else deferred).
    public var tusLengthDeclared: Bool
    /// The finalized file.
    public var file: MediaManager.FileDescriptor?
    /// Attributes to keep for the file once saved.
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var modified: Double?
    public var accessed: Double?
    public var created: Double
    public var sealed: Double?
    public var attempts: Int
    public var lastError: String?

    public init(
        id: String = UUID().uuidString.lowercased(), scope: String, parentFolderId: String, displayName: String, mimeType: String,
        replacing: [String] = [], created: Date = Date()
    ) {
        self.id = id
        self.scope = scope
        self.state = .open
        self.parentFolderId = parentFolderId
        self.displayName = displayName
        self.mimeType = mimeType
        self.replacing = replacing
        self.size = 0
        self.acknowledged = 0
        self.tusLengthDeclared = false
        self.created = created.timeIntervalSince1970
        self.attempts = 0
    }

    /// Whether the record is still on its way into the Media Manager (shown as a local file).
    public var isPending: Bool {
        switch state {
        case .open, .sealed, .finalizing, .failed: true
        // Saved, but still to be moved where it was renamed to meanwhile: shown where it goes.
        case .finalized: file.map { $0.parentFolderId != parentFolderId || $0.displayName != displayName } ?? false
        case .abandoned: false
        }
    }
}

extension JournalRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "records"

    enum Field: String, ColumnExpression {
        case id, scope, state, parentFolderId, displayName, mimeType, replacing, size, uploadURL, uploadToken, tokenFolderId
        case expectedFileId, tusLocation, acknowledged, tusLengthDeclared, file, mode, uid, gid, modified, accessed, created
        case sealed, attempts, lastError, labels
    }


    public init(row: Row) throws {
        id = row[Field.id]
        scope = row[Field.scope]
        state = State(rawValue: row[Field.state]) ?? .failed
        parentFolderId = row[Field.parentFolderId]
        displayName = row[Field.displayName]
        mimeType = row[Field.mimeType]
        replacing = (try? JSONDecoder().decode([String].self, from: Data((row[Field.replacing] as String? ?? "[]").utf8))) ?? []
        labels = (row[Field.labels] as String?).flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        size = row[Field.size]
        uploadURL = row[Field.uploadURL]
        uploadToken = row[Field.uploadToken]
        tokenFolderId = row[Field.tokenFolderId]
        expectedFileId = row[Field.expectedFileId]
        tusLocation = row[Field.tusLocation]
        acknowledged = row[Field.acknowledged]
        tusLengthDeclared = row[Field.tusLengthDeclared]
        file = (row[Field.file] as String?).flatMap { try? Self.decoder.decode(MediaManager.FileDescriptor.self, from: Data($0.utf8)) }
        mode = row[Field.mode]
        uid = row[Field.uid]
        gid = row[Field.gid]
        modified = row[Field.modified]
        accessed = row[Field.accessed]
        created = row[Field.created]
        sealed = row[Field.sealed]
        attempts = row[Field.attempts]
        lastError = row[Field.lastError]
    }

    /// Inserts the record or replaces its row, with one prepared statement the connection keeps
    /// (the journal saves a record several times per file; GRDB's generic `save` builds and
    /// parses its SQL each time).
    func upsert(_ db: Database) throws {
        let statement = try db.cachedStatement(sql: Self.upsertSQL)
        try statement.execute(arguments: StatementArguments([
            id, scope, state.rawValue, parentFolderId, displayName, mimeType,
            replacing.isEmpty ? "[]" : String(decoding: try JSONEncoder().encode(replacing), as: UTF8.self),
            try labels.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) },
            size, uploadURL, uploadToken, tokenFolderId, expectedFileId, tusLocation, acknowledged, tusLengthDeclared,
            try file.map { String(decoding: try Self.encoder.encode($0), as: UTF8.self) },
            mode, uid, gid, modified, accessed, created, sealed, attempts, lastError,
        ] as [(any DatabaseValueConvertible)?]))
    }

    private static let upsertColumns: [Field] = [
        .id, .scope, .state, .parentFolderId, .displayName, .mimeType, .replacing, .labels, .size, .uploadURL, .uploadToken,
        .tokenFolderId, .expectedFileId, .tusLocation, .acknowledged, .tusLengthDeclared, .file, .mode, .uid, .gid, .modified,
        .accessed, .created, .sealed, .attempts, .lastError,
    ]

    private static let upsertSQL: String = {
        let names = upsertColumns.map(\.rawValue)
        let updates = names.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        return "INSERT INTO \(databaseTableName) (\(names.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", "))) "
            + "ON CONFLICT(id) DO UPDATE SET \(updates)"
    }()

    public func encode(to container: inout PersistenceContainer) throws {
        container[Field.id] = id
        container[Field.scope] = scope
        container[Field.state] = state.rawValue
        container[Field.parentFolderId] = parentFolderId
        container[Field.displayName] = displayName
        container[Field.mimeType] = mimeType
        container[Field.replacing] = String(decoding: try JSONEncoder().encode(replacing), as: UTF8.self)
        container[Field.labels] = try labels.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        container[Field.size] = size
        container[Field.uploadURL] = uploadURL
        container[Field.uploadToken] = uploadToken
        container[Field.tokenFolderId] = tokenFolderId
        container[Field.expectedFileId] = expectedFileId
        container[Field.tusLocation] = tusLocation
        container[Field.acknowledged] = acknowledged
        container[Field.tusLengthDeclared] = tusLengthDeclared
        container[Field.file] = try file.map { String(decoding: try Self.encoder.encode($0), as: UTF8.self) }
        container[Field.mode] = mode
        container[Field.uid] = uid
        container[Field.gid] = gid
        container[Field.modified] = modified
        container[Field.accessed] = accessed
        container[Field.created] = created
        container[Field.sealed] = sealed
        container[Field.attempts] = attempts
        container[Field.lastError] = lastError
    }

    private static var encoder: JSONEncoder { WireFormat.makeEncoder() }
    private static var decoder: JSONDecoder { WireFormat.makeDecoder() }
}
