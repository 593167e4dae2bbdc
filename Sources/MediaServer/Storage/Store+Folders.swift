import Foundation
import GRDB
import MediaManager

extension Store {
    /// Whether `id` names a folder that can hold items now (`media-root` or a live folder).
    static func isLiveFolder(_ db: Database, _ id: String) throws -> Bool {
        if id == FolderID.mediaRoot || id == FolderID.visitorUploads { return true }
        return try Bool.fetchOne(db, sql: "SELECT 1 FROM folder WHERE id = ? AND state = 'OK'", arguments: [id]) ?? false
    }

    static func requireLiveFolder(_ db: Database, _ id: String, field: String = "parentFolderId") throws {
        guard try isLiveFolder(db, id) else {
            throw APIError.notFound("Folder", id)
        }
    }

    /// Ids of every folder below `id`, at any depth.
    static func descendantFolderIds(_ db: Database, of id: String) throws -> [String] {
        try String.fetchAll(
            db,
            sql: """
                WITH RECURSIVE sub(id) AS (
                    SELECT id FROM folder WHERE parentId = ?
                    UNION ALL SELECT folder.id FROM folder JOIN sub ON folder.parentId = sub.id
                ) SELECT id FROM sub
                """,
            arguments: [id]
        )
    }

    func createFolder(displayName: String, parentId: String, now: Date = Date()) async throws -> FolderRecord {
        try await database.write { db in
            try Self.requireLiveFolder(db, parentId)
            let record = FolderRecord(
                id: Identifiers.folderId(),
                displayName: displayName,
                parentId: parentId,
                restoreParentId: nil,
                state: ItemState.ok.rawValue,
                trashedBy: nil,
                createdDate: now.timeIntervalSince1970,
                updatedDate: now.timeIntervalSince1970
            )
            try record.insert(db)
            return record
        }
    }

    func folder(id: String) async throws -> FolderRecord? {
        try await database.read { db in try FolderRecord.fetchOne(db, key: id) }
    }

    func listFolders(_ query: ListQuery) async throws -> Page<FolderRecord> {
        try await database.read { db in
            let (sql, arguments) = query.sql(table: FolderRecord.databaseTableName)
            var rows = try FolderRecord.fetchAll(db, sql: sql, arguments: arguments)
            var next: String?
            if rows.count > query.limit {
                rows.removeLast()
                let last = rows[rows.count - 1]
                let key = query.field == .displayName ? last.displayName : String(last.updatedDate)
                next = query.cursor(after: key, id: last.id)
            }
            return Page(rows: rows, nextCursor: next)
        }
    }

    func updateFolder(
        id: String,
        displayName: String?,
        parentId: String?,
        now: Date = Date()
    ) async throws -> FolderRecord {
        try await database.write { db in
            guard var record = try FolderRecord.fetchOne(db, key: id) else { throw APIError.notFound("Folder", id) }
            if let displayName { record.displayName = displayName }
            if let parentId, parentId != record.parentId {
                guard record.state == ItemState.ok.rawValue else {
                    throw APIError.invalid("parentFolderId", "Folder '\(id)' is in the trash; restore it before moving it")
                }
                try Self.requireLiveFolder(db, parentId)
                let descendants = try Self.descendantFolderIds(db, of: id)
                if parentId == id || descendants.contains(parentId) {
                    throw APIError.invalid("parentFolderId", "A folder cannot be moved into itself or one of its subfolders")
                }
                record.parentId = parentId
            }
            record.updatedDate = now.timeIntervalSince1970
            try record.update(db)
            return record
        }
    }

    /// Deletes folders with their content: to the trash, or for good (returns the blobs to remove).
    func deleteFolders(ids: [String], permanent: Bool, now: Date = Date()) async throws -> [String] {
        try await database.write { db in
            var blobs: [String] = []
            for id in ids {
                guard var record = try FolderRecord.fetchOne(db, key: id) else { throw APIError.notFound("Folder", id) }
                let descendants = try Self.descendantFolderIds(db, of: id)
                let all = [id] + descendants
                if permanent {
                    for chunk in all.chunked(500) {
                        let marks = chunk.map { _ in "?" }.joined(separator: ",")
                        blobs += try String.fetchAll(
                            db, sql: "SELECT blobId FROM file WHERE parentId IN (\(marks))", arguments: StatementArguments(chunk))
                        try db.execute(sql: "DELETE FROM file WHERE parentId IN (\(marks))", arguments: StatementArguments(chunk))
                        try db.execute(sql: "DELETE FROM folder WHERE id IN (\(marks))", arguments: StatementArguments(chunk))
                    }
                    continue
                }
                guard record.state == ItemState.ok.rawValue else { continue }  // already in the trash
                record.restoreParentId = record.parentId
                record.parentId = FolderID.trashRoot
                record.state = ItemState.deleted.rawValue
                record.trashedBy = nil
                record.updatedDate = now.timeIntervalSince1970
                try record.update(db)
                for chunk in all.chunked(500) {
                    let marks = chunk.map { _ in "?" }.joined(separator: ",")
                    var arguments: StatementArguments = [id]
                    _ = arguments.append(contentsOf: StatementArguments(chunk))
                    try db.execute(
                        sql: "UPDATE file SET state = 'DELETED', trashedBy = ? WHERE state = 'OK' AND parentId IN (\(marks))",
                        arguments: arguments)
                    if chunk.contains(where: { $0 != id }) {
                        try db.execute(
                            sql: "UPDATE folder SET state = 'DELETED', trashedBy = ? WHERE state = 'OK' AND id IN (\(marks))",
                            arguments: arguments)
                    }
                }
            }
            return blobs
        }
    }

    /// Puts folders (with what went to the trash with them) back where they were, or in
    /// `media-root` when that place is gone.
    func restoreFolders(ids: [String], now: Date = Date()) async throws {
        try await database.write { db in
            for id in ids {
                guard var record = try FolderRecord.fetchOne(db, key: id) else { throw APIError.notFound("Folder", id) }
                guard record.state == ItemState.deleted.rawValue, record.parentId == FolderID.trashRoot else { continue }
                let target = record.restoreParentId ?? FolderID.mediaRoot
                record.parentId = try Self.isLiveFolder(db, target) ? target : FolderID.mediaRoot
                record.restoreParentId = nil
                record.state = ItemState.ok.rawValue
                record.updatedDate = now.timeIntervalSince1970
                try record.update(db)
                try db.execute(sql: "UPDATE folder SET state = 'OK', trashedBy = NULL WHERE trashedBy = ?", arguments: [id])
                try db.execute(sql: "UPDATE file SET state = 'OK', trashedBy = NULL WHERE trashedBy = ?", arguments: [id])
            }
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

extension Store {
    func isLiveFolder(_ id: String) async throws -> Bool {
        try await database.read { db in try Self.isLiveFolder(db, id) }
    }

    /// Finds or creates the folders of `path` (`/videos/2024`) under `parentId`; returns the last.
    func ensureFolderPath(_ path: String, under parentId: String, now: Date = Date()) async throws -> String {
        let names = path.split(separator: "/").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return try await database.write { db in
            try Self.requireLiveFolder(db, parentId)
            var current = parentId
            for name in names {
                if let existing = try String.fetchOne(
                    db,
                    sql: "SELECT id FROM folder WHERE parentId = ? AND displayName = ? AND state = 'OK' ORDER BY createdDate LIMIT 1",
                    arguments: [current, name])
                {
                    current = existing
                    continue
                }
                let record = FolderRecord(
                    id: Identifiers.folderId(), displayName: name, parentId: current, restoreParentId: nil,
                    state: ItemState.ok.rawValue, trashedBy: nil,
                    createdDate: now.timeIntervalSince1970, updatedDate: now.timeIntervalSince1970)
                try record.insert(db)
                current = record.id
            }
            return current
        }
    }
}
