import Foundation
import GRDB
import MediaManager

extension Store {
    /// Records a new tus upload, terminating `replacing` (the token's earlier unfinished uploads,
    /// whose locks the caller holds). A token whose file was finalized starts nothing more.
    func createUpload(_ record: UploadRecord, replacing: [String]) async throws {
        try await database.write { db in
            let finalized =
                try Bool.fetchOne(db, sql: "SELECT 1 FROM upload WHERE tokenId = ? AND state = 'finalized'", arguments: [record.tokenId])
                ?? false
            let used = try Bool.fetchOne(db, sql: "SELECT 1 FROM usedToken WHERE jti = ?", arguments: [record.tokenId]) ?? false
            if finalized || used { throw APIError.tokenReused }
            for id in replacing {
                try db.execute(sql: "UPDATE upload SET state = 'terminated' WHERE id = ? AND state = 'active'", arguments: [id])
            }
            try record.insert(db)
        }
    }

    /// Ids of the token's uploads that are still active.
    func activeUploads(tokenId: String) async throws -> [String] {
        try await database.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM upload WHERE tokenId = ? AND state = 'active'", arguments: [tokenId])
        }
    }

    func upload(id: String) async throws -> UploadRecord? {
        try await database.read { db in try UploadRecord.fetchOne(db, key: id) }
    }

    /// The upload finalize works on: the token's finalized upload if there is one (finalize is
    /// idempotent), else its newest.
    func currentUpload(tokenId: String) async throws -> UploadRecord? {
        try await database.read { db in
            try UploadRecord.fetchOne(
                db,
                sql: """
                    SELECT * FROM upload WHERE tokenId = ?
                    ORDER BY state = 'finalized' DESC, createdDate DESC, rowid DESC LIMIT 1
                    """,
                arguments: [tokenId])
        }
    }

    /// Stores an acknowledged offset (after the bytes were synced) and, once known, the length.
    func setProgress(uploadId: String, offset: Int64, length: Int64?) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE upload SET offset = ?, length = COALESCE(length, ?) WHERE id = ? AND state = 'active'",
                arguments: [offset, length, uploadId])
        }
    }

    func setState(uploadId: String, _ state: UploadRecord.State) async throws {
        try await database.write { db in
            try db.execute(sql: "UPDATE upload SET state = ? WHERE id = ?", arguments: [state.rawValue, uploadId])
        }
    }

    /// Turns a complete upload into a file, atomically: the file appears in its folder exactly
    /// when this transaction commits.
    func finalize(uploadId: String, file: FileRecord) async throws -> FileRecord {
        try await database.write { db in
            var file = file
            if !(try Self.isLiveFolder(db, file.parentId)) { file.parentId = FolderID.mediaRoot }
            try file.insert(db)
            try db.execute(
                sql: "UPDATE upload SET state = 'finalized', fileId = ? WHERE id = ?",
                arguments: [file.id, uploadId])
            return file
        }
    }

    /// Marks active uploads past their expiry as expired and returns their ids (their blobs go).
    func expireUploads(now: Date = Date()) async throws -> [String] {
        try await database.write { db in
            let ids = try String.fetchAll(
                db, sql: "SELECT id FROM upload WHERE state = 'active' AND expiresDate <= ?",
                arguments: [now.timeIntervalSince1970])
            try db.execute(
                sql: "UPDATE upload SET state = 'expired' WHERE state = 'active' AND expiresDate <= ?",
                arguments: [now.timeIntervalSince1970])
            return ids
        }
    }
}

extension Store {
    func isTokenUsed(_ jti: String) async throws -> Bool {
        try await database.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM usedToken WHERE jti = ?", arguments: [jti]) ?? false
        }
    }
}
