import Foundation
import GRDB

/// A folder row.
struct FolderRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "folder"
    var id: String
    var displayName: String
    /// Current parent; `trash-root` once deleted directly.
    var parentId: String
    /// Where a restore puts the folder back.
    var restoreParentId: String?
    var state: String
    /// The folder whose deletion took this one along, if any.
    var trashedBy: String?
    var createdDate: Double
    var updatedDate: Double
}

/// A file row. Only finalized files have rows: an upload in progress is not a file yet.
struct FileRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "file"
    var id: String
    var displayName: String
    var parentId: String
    var restoreParentId: String?
    var state: String
    var trashedBy: String?
    var mimeType: String
    var mediaType: String
    var size: Int64
    var hash: String
    var isPrivate: Bool
    /// JSON array of strings.
    var labels: String
    /// Name of the content file under `blobs/`; never derived from a user-given name.
    var blobId: String
    var createdDate: Double
    var updatedDate: Double
    /// The upload token that created the file; makes finalize idempotent and single-use.
    var tokenId: String?

    var labelList: [String] {
        (try? JSONDecoder().decode([String].self, from: Data(labels.utf8))) ?? []
    }

    static func encodeLabels(_ labels: [String]) -> String {
        (try? String(decoding: JSONEncoder().encode(labels), as: UTF8.self)) ?? "[]"
    }
}

/// A tus upload's row.
struct UploadRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "upload"

    enum State: String, Codable, Sendable {
        case active, finalized, terminated, expired
    }

    var id: String
    var tokenId: String
    /// The upload token's claims as JSON.
    var claims: String
    /// `nil` while the length is deferred.
    var length: Int64?
    /// Bytes durably stored and acknowledged.
    var offset: Int64
    /// The `Upload-Metadata` header as the client sent it, echoed by HEAD.
    var metadata: String?
    var fileName: String?
    var contentType: String?
    var createdDate: Double
    var expiresDate: Double
    var state: State
    var fileId: String?

    var isComplete: Bool { length.map { offset == $0 } ?? false }
}
