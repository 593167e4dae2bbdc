import Foundation
import GRDB
import MediaManager

extension Store {
    func file(id: String) async throws -> FileRecord? {
        try await database.read { db in try FileRecord.fetchOne(db, key: id) }
    }

    func files(ids: [String]) async throws -> [FileRecord] {
        try await database.read { db in
            try ids.compactMap { try FileRecord.fetchOne(db, key: $0) }
        }
    }

    func listFiles(_ query: ListQuery) async throws -> Page<FileRecord> {
        try await database.read { db in
            let (sql, arguments) = query.sql(table: FileRecord.databaseTableName)
            var rows = try FileRecord.fetchAll(db, sql: sql, arguments: arguments)
            var next: String?
            if rows.count > query.limit {
                rows.removeLast()
                let last = rows[rows.count - 1]
                let key =
                    switch query.field {
                    case .displayName: last.displayName
                    case .updatedDate: String(last.updatedDate)
                    case .sizeInBytes: String(last.size)
                    }
                next = query.cursor(after: key, id: last.id)
            }
            return Page(rows: rows, nextCursor: next)
        }
    }

    /// Inserts a finalized file. The target folder must still be live; when it has gone (deleted
    /// while the upload ran) the file lands in `media-root` rather than being lost.
    func insertFile(_ record: FileRecord, consumingToken jti: String? = nil) async throws -> FileRecord {
        try await database.write { db in
            var record = record
            if !(try Self.isLiveFolder(db, record.parentId)) { record.parentId = FolderID.mediaRoot }
            if let jti {
                let used = try Bool.fetchOne(db, sql: "SELECT 1 FROM usedToken WHERE jti = ?", arguments: [jti]) ?? false
                if used { throw APIError.tokenReused }
                try db.execute(
                    sql: "INSERT INTO usedToken (jti, usedDate) VALUES (?, ?)",
                    arguments: [jti, Date().timeIntervalSince1970])
            }
            try record.insert(db)
            return record
        }
    }

    func updateFile(
        id: String,
        displayName: String?,
        parentId: String?,
        labels: [String]?,
        now: Date = Date()
    ) async throws -> FileRecord {
        try await database.write { db in
            guard var record = try FileRecord.fetchOne(db, key: id) else { throw APIError.notFound("File", id) }
            if let displayName {
                guard !displayName.isEmpty else { throw APIError.invalid("file.displayName", "displayName must not be empty") }
                record.displayName = displayName
            }
            if let parentId, parentId != record.parentId {
                guard record.state == ItemState.ok.rawValue else {
                    throw APIError.invalid("file.parentFolderId", "File '\(id)' is in the trash; restore it before moving it")
                }
                try Self.requireLiveFolder(db, parentId, field: "file.parentFolderId")
                record.parentId = parentId
            }
            if let labels { record.labels = FileRecord.encodeLabels(labels) }
            record.updatedDate = now.timeIntervalSince1970
            try record.update(db)
            return record
        }
    }

    /// Deletes files: to the trash, or for good (returns the blobs to remove).
    func deleteFiles(ids: [String], permanent: Bool, now: Date = Date()) async throws -> [String] {
        try await database.write { db in
            var blobs: [String] = []
            for id in ids {
                guard var record = try FileRecord.fetchOne(db, key: id) else { throw APIError.notFound("File", id) }
                if permanent {
                    try record.delete(db)
                    blobs.append(record.blobId)
                    continue
                }
                guard record.state == ItemState.ok.rawValue else { continue }
                record.restoreParentId = record.parentId
                record.parentId = FolderID.trashRoot
                record.state = ItemState.deleted.rawValue
                record.updatedDate = now.timeIntervalSince1970
                try record.update(db)
            }
            return blobs
        }
    }

    func restoreFiles(ids: [String], now: Date = Date()) async throws {
        try await database.write { db in
            for id in ids {
                guard var record = try FileRecord.fetchOne(db, key: id) else { throw APIError.notFound("File", id) }
                guard record.state == ItemState.deleted.rawValue, record.parentId == FolderID.trashRoot else { continue }
                let target = record.restoreParentId ?? FolderID.mediaRoot
                record.parentId = try Self.isLiveFolder(db, target) ? target : FolderID.mediaRoot
                record.restoreParentId = nil
                record.state = ItemState.ok.rawValue
                record.updatedDate = now.timeIntervalSince1970
                try record.update(db)
            }
        }
    }

    /// Every blob a file or an active upload still needs; the rest may be swept.
    func referencedBlobs() async throws -> Set<String> {
        try await database.read { db in
            let files = try String.fetchAll(db, sql: "SELECT blobId FROM file")
            let uploads = try String.fetchAll(db, sql: "SELECT id FROM upload WHERE state = 'active'")
            return Set(files + uploads)
        }
    }
}
