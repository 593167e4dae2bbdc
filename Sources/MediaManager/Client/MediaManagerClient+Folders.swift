import NIOHTTP1

extension MediaManagerClient {
    /// Folder operations of the Media Manager (`/site-media/v1/folders`, `bulk/folders`, `trash-bin/folders`).
    public struct Folders: Sendable {
        let client: MediaManagerClient

        /// Creates a folder (`POST folders`); the parent defaults to `media-root`.
        public func create(displayName: String, parentFolderId: String? = nil) async throws -> Folder {
            try await client.send(
                client.restCall(.POST, "folders", idempotent: false),
                body: CreateFolderRequest(displayName: displayName, parentFolderId: parentFolderId),
                as: FolderResponse.self
            ).folder
        }

        /// One folder (`GET folders/{id}`).
        public func get(id: String) async throws -> Folder {
            try await client.send(
                client.restCall(.GET, "folders/\(MediaManagerClient.encode(id))", idempotent: true),
                as: FolderResponse.self
            ).folder
        }

        /// One page of the folders in a folder (`GET folders`).
        ///
        /// - Parameters:
        ///   - parentFolderId: The parent (the service's default is `media-root`).
        ///   - sort: Field (`displayName`, `updatedDate`) and order.
        ///   - limit: Page size.
        ///   - cursor: The previous page's ``PagingMetadata/nextCursor``.
        public func list(
            parentFolderId: String? = nil,
            sort: Sorting? = nil,
            limit: Int? = nil,
            cursor: String? = nil
        ) async throws -> ListFoldersResponse {
            try await page("folders", Self.listQuery(parentFolderId, sort, limit, cursor))
        }

        /// One page of the folders in the trash (`GET trash-bin/folders`).
        public func listDeleted(
            parentFolderId: String? = nil,
            sort: Sorting? = nil,
            limit: Int? = nil,
            cursor: String? = nil
        ) async throws -> ListFoldersResponse {
            try await page("trash-bin/folders", Self.listQuery(parentFolderId, sort, limit, cursor))
        }

        /// Renames or moves a folder (`PATCH folders/{id}`); only the arguments given are sent.
        public func update(id: String, displayName: String? = nil, parentFolderId: String? = nil) async throws -> Folder {
            var fields: [String] = []
            if displayName != nil { fields.append("displayName") }
            if parentFolderId != nil { fields.append("parentFolderId") }
            guard !fields.isEmpty else {
                throw MediaManagerError(code: .invalidArgument, message: "A folder update needs at least one field")
            }
            return try await client.send(
                client.restCall(.PATCH, "folders/\(MediaManagerClient.encode(id))", idempotent: true),
                body: UpdateFolderRequest(
                    folder: FolderUpdate(id: id, displayName: displayName, parentFolderId: parentFolderId),
                    fieldMask: FieldMask(fields)
                ),
                as: FolderResponse.self
            ).folder
        }

        /// Moves folders (and their content) to the trash, or deletes them for good with `permanent`
        /// (`POST bulk/folders/delete`).
        public func delete(ids: [String], permanent: Bool = false) async throws {
            _ = try await client.send(
                client.restCall(.POST, "bulk/folders/delete", idempotent: true),
                body: BulkDeleteFoldersRequest(folderIds: ids, permanent: permanent),
                as: EmptyResponse.self
            )
        }

        /// Brings folders back from the trash (`POST bulk/trash-bin/folders/restore`).
        public func restore(ids: [String]) async throws {
            _ = try await client.send(
                client.restCall(.POST, "bulk/trash-bin/folders/restore", idempotent: true),
                body: BulkRestoreFoldersRequest(folderIds: ids),
                as: EmptyResponse.self
            )
        }

        /// One page of a folder listing at `path`.
        private func page(_ path: String, _ query: [(String, String?)]) async throws -> ListFoldersResponse {
            try await client.send(client.restCall(.GET, path, query: query, idempotent: true), as: ListFoldersResponse.self)
        }

        static func listQuery(_ parentFolderId: String?, _ sort: Sorting?, _ limit: Int?, _ cursor: String?) -> [(String, String?)] {
            [
                ("parentFolderId", parentFolderId),
                ("sort.fieldName", sort?.fieldName),
                ("sort.order", sort?.order.rawValue),
                ("paging.limit", limit.map(String.init)),
                ("paging.cursor", cursor),
            ]
        }
    }
}
