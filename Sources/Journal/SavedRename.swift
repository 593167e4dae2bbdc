import Foundation
import GRDB

/// A rename of a saved file within its folder, recorded durably and sent to the Media Manager
/// in the background (the program's `rename(2)` does not wait for the round trip). rsync renames
/// every file it writes from its temporary name once it is closed; over a slow link that round
/// trip would be a third of each file's cost.
public struct SavedRename: Sendable, Hashable, Codable {
    /// The saved file.
    public var fileId: String
    /// The Media Manager this belongs to.
    public var scope: String
    /// Its folder (the rename does not move it).
    public var folderId: String
    /// The name it gets.
    public var displayName: String
    /// Files the rename replaced: trashed once it is done.
    public var replacing: [String]
    public var created: Double
    public var attempts: Int
    public var lastError: String?

    public init(fileId: String, scope: String, folderId: String, displayName: String, replacing: [String] = [], created: Date = Date()) {
        self.fileId = fileId
        self.scope = scope
        self.folderId = folderId
        self.displayName = displayName
        self.replacing = replacing
        self.created = created.timeIntervalSince1970
        self.attempts = 0
    }
}

extension SavedRename: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "renames"

    enum Field: String, ColumnExpression {
        case fileId, scope, folderId, displayName, replacing, created, attempts, lastError
    }

    public init(row: Row) throws {
        fileId = row[Field.fileId]
        scope = row[Field.scope]
        folderId = row[Field.folderId]
        displayName = row[Field.displayName]
        replacing = (try? JSONDecoder().decode([String].self, from: Data((row[Field.replacing] as String? ?? "[]").utf8))) ?? []
        created = row[Field.created]
        attempts = row[Field.attempts]
        lastError = row[Field.lastError]
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Field.fileId] = fileId
        container[Field.scope] = scope
        container[Field.folderId] = folderId
        container[Field.displayName] = displayName
        container[Field.replacing] = String(decoding: try JSONEncoder().encode(replacing), as: UTF8.self)
        container[Field.created] = created
        container[Field.attempts] = attempts
        container[Field.lastError] = lastError
    }
}
