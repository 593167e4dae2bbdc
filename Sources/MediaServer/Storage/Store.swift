import Foundation
import GRDB
import Logging
import MediaManager

/// Metadata of the embedded Media Manager, in SQLite (WAL, synchronous commits).
///
/// Every method is `async` and runs on GRDB's own queue, never on an event loop.
final class Store: Sendable {
    let database: DatabasePool

    init(path: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(10)
        self.database = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE folder (
                        id TEXT PRIMARY KEY NOT NULL,
                        displayName TEXT NOT NULL,
                        parentId TEXT NOT NULL,
                        restoreParentId TEXT,
                        state TEXT NOT NULL,
                        trashedBy TEXT,
                        createdDate DOUBLE NOT NULL,
                        updatedDate DOUBLE NOT NULL
                    );
                    CREATE INDEX folder_parent ON folder(parentId, state);
                    CREATE INDEX folder_trashedBy ON folder(trashedBy);
                    CREATE TABLE file (
                        id TEXT PRIMARY KEY NOT NULL,
                        displayName TEXT NOT NULL,
                        parentId TEXT NOT NULL,
                        restoreParentId TEXT,
                        state TEXT NOT NULL,
                        trashedBy TEXT,
                        mimeType TEXT NOT NULL,
                        mediaType TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        hash TEXT NOT NULL,
                        isPrivate BOOLEAN NOT NULL,
                        labels TEXT NOT NULL,
                        blobId TEXT NOT NULL,
                        createdDate DOUBLE NOT NULL,
                        updatedDate DOUBLE NOT NULL,
                        tokenId TEXT UNIQUE
                    );
                    CREATE INDEX file_parent ON file(parentId, state);
                    CREATE INDEX file_trashedBy ON file(trashedBy);
                    CREATE TABLE upload (
                        id TEXT PRIMARY KEY NOT NULL,
                        tokenId TEXT NOT NULL UNIQUE,
                        claims TEXT NOT NULL,
                        length INTEGER,
                        offset INTEGER NOT NULL,
                        metadata TEXT,
                        fileName TEXT,
                        contentType TEXT,
                        createdDate DOUBLE NOT NULL,
                        expiresDate DOUBLE NOT NULL,
                        state TEXT NOT NULL,
                        fileId TEXT
                    );
                    CREATE TABLE usedToken (
                        jti TEXT PRIMARY KEY NOT NULL,
                        usedDate DOUBLE NOT NULL
                    );
                    """
            )
        }
        // A token may start a new upload while its earlier one is unfinished (the earlier one is
        // terminated), so tokenId is no longer unique.
        migrator.registerMigration("v2-upload-per-token") { db in
            try db.execute(
                sql: """
                    CREATE TABLE upload_v2 (
                        id TEXT PRIMARY KEY NOT NULL,
                        tokenId TEXT NOT NULL,
                        claims TEXT NOT NULL,
                        length INTEGER,
                        offset INTEGER NOT NULL,
                        metadata TEXT,
                        fileName TEXT,
                        contentType TEXT,
                        createdDate DOUBLE NOT NULL,
                        expiresDate DOUBLE NOT NULL,
                        state TEXT NOT NULL,
                        fileId TEXT
                    );
                    INSERT INTO upload_v2 SELECT id, tokenId, claims, length, offset, metadata, fileName, contentType,
                        createdDate, expiresDate, state, fileId FROM upload ORDER BY rowid;
                    DROP TABLE upload;
                    ALTER TABLE upload_v2 RENAME TO upload;
                    CREATE INDEX upload_token ON upload(tokenId, state);
                    CREATE INDEX upload_state ON upload(state, expiresDate);
                    """
            )
        }
        return migrator
    }
}
