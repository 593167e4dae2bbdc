import NIOHTTP1

extension MediaManagerClient {
    /// File operations of the Media Manager (`/site-media/v1/files`, `bulk/files`, `trash-bin/files`).
    public struct Files: Sendable {
        let client: MediaManagerClient

        /// Asks for a simple upload URL (`POST files/generate-upload-url`); send the bytes with
        /// ``MediaManagerClient/Uploads/upload(to:fileName:contentType:bytes:)``.
        public func generateFileUploadUrl(
            mimeType: String,
            options: UploadOptions = UploadOptions()
        ) async throws -> GenerateUploadUrlResponse {
            try await client.send(
                client.restCall(.POST, "files/generate-upload-url", idempotent: true),
                body: GenerateUploadUrlRequest(mimeType: mimeType, options: options),
                as: GenerateUploadUrlResponse.self
            )
        }

        /// Asks for a resumable (tus) upload URL and its single-use token
        /// (`POST files/generate-resumable-upload-url`). Upload with tus to `uploadUrl`, sending
        /// `filename`, `contentType` and `token` as metadata, then call
        /// ``MediaManagerClient/Uploads/finalizeResumableUpload(uploadUrl:uploadToken:fileName:)``.
        public func generateFileResumableUploadUrl(
            mimeType: String,
            options: UploadOptions = UploadOptions()
        ) async throws -> GenerateResumableUploadUrlResponse {
            try await client.send(
                client.restCall(.POST, "files/generate-resumable-upload-url", idempotent: true),
                body: GenerateUploadUrlRequest(mimeType: mimeType, options: options, uploadProtocol: .tus),
                as: GenerateResumableUploadUrlResponse.self
            )
        }

        /// One file's descriptor (`GET files/get-file-by-id?fileId=`).
        public func get(id: String) async throws -> FileDescriptor {
            try await client.send(
                client.restCall(.GET, "files/get-file-by-id", query: [("fileId", id)], idempotent: true),
                as: FileResponse.self
            ).file
        }

        /// Several files' descriptors (`POST files/get-files`).
        public func get(ids: [String]) async throws -> [FileDescriptor] {
            try await client.send(
                client.restCall(.POST, "files/get-files", idempotent: true),
                body: GetFilesRequest(fileIds: ids),
                as: FilesResponse.self
            ).files
        }

        /// One page of the files in a folder (`GET files`).
        ///
        /// - Parameters:
        ///   - parentFolderId: The folder (the service's default is `media-root`).
        ///   - mediaTypes: Only files of these types.
        ///   - private: Only private (`true`) or public (`false`) files.
        ///   - sort: Field (`displayName`, `updatedDate`, `sizeInBytes`) and order.
        ///   - limit: Page size.
        ///   - cursor: The previous page's ``PagingMetadata/nextCursor``.
        public func list(
            parentFolderId: String? = nil,
            mediaTypes: [MediaType] = [],
            private: Bool? = nil,
            sort: Sorting? = nil,
            limit: Int? = nil,
            cursor: String? = nil
        ) async throws -> ListFilesResponse {
            try await page("files", Self.listQuery(parentFolderId, mediaTypes, `private`, sort, limit, cursor))
        }

        /// One page of the files in the trash (`GET trash-bin/files`).
        public func listDeleted(
            parentFolderId: String? = nil,
            mediaTypes: [MediaType] = [],
            private: Bool? = nil,
            sort: Sorting? = nil,
            limit: Int? = nil,
            cursor: String? = nil
        ) async throws -> ListFilesResponse {
            try await page("trash-bin/files", Self.listQuery(parentFolderId, mediaTypes, `private`, sort, limit, cursor))
        }

        /// Changes a file's display name, labels or folder (`PATCH files/update-file-descriptor`).
        /// Only the arguments given are sent, and the field mask names exactly those.
        ///
        /// - Returns: The updated descriptor.
        public func update(
            id: String,
            displayName: String? = nil,
            labels: [String]? = nil,
            parentFolderId: String? = nil
        ) async throws -> FileDescriptor {
            var fields: [String] = []
            if displayName != nil { fields.append("displayName") }
            if labels != nil { fields.append("labels") }
            if parentFolderId != nil { fields.append("parentFolderId") }
            guard !fields.isEmpty else {
                throw MediaManagerError(code: .invalidArgument, message: "A file update needs at least one field")
            }
            let request = UpdateFileDescriptorRequest(
                file: FileUpdate(id: id, displayName: displayName, parentFolderId: parentFolderId, labels: labels),
                fieldMask: FieldMask(fields)
            )
            return try await client.send(
                client.restCall(.PATCH, "files/update-file-descriptor", idempotent: true),
                body: request,
                as: FileResponse.self
            ).file
        }

        /// Moves files to the trash, or deletes them for good with `permanent` (`POST bulk/files/delete`).
        public func delete(ids: [String], permanent: Bool = false) async throws {
            _ = try await client.send(
                client.restCall(.POST, "bulk/files/delete", idempotent: true),
                body: BulkDeleteFilesRequest(fileIds: ids, permanent: permanent),
                as: EmptyResponse.self
            )
        }

        /// Brings files back from the trash (`POST bulk/trash-bin/files/restore`).
        public func restore(ids: [String]) async throws {
            _ = try await client.send(
                client.restCall(.POST, "bulk/trash-bin/files/restore", idempotent: true),
                body: BulkRestoreFilesRequest(fileIds: ids),
                as: EmptyResponse.self
            )
        }

        /// A signed download URL for a file, public or private (`POST files/{id}/generate-download-url`).
        public func generateDownloadUrl(
            id: String,
            downloadFileName: String? = nil,
            expirationInMinutes: Int? = nil
        ) async throws -> GenerateFileDownloadUrlResponse {
            try await client.send(
                client.restCall(.POST, "files/\(MediaManagerClient.encode(id))/generate-download-url", idempotent: true),
                body: GenerateFileDownloadUrlRequest(
                    downloadFileName: downloadFileName,
                    expirationInMinutes: expirationInMinutes
                ),
                as: GenerateFileDownloadUrlResponse.self
            )
        }

        /// One page of a file listing at `path`.
        private func page(_ path: String, _ query: [(String, String?)]) async throws -> ListFilesResponse {
            try await client.send(client.restCall(.GET, path, query: query, idempotent: true), as: ListFilesResponse.self)
        }

        static func listQuery(
            _ parentFolderId: String?,
            _ mediaTypes: [MediaType],
            _ private: Bool?,
            _ sort: Sorting?,
            _ limit: Int?,
            _ cursor: String?
        ) -> [(String, String?)] {
            var query: [(String, String?)] = [("parentFolderId", parentFolderId)]
            for type in mediaTypes { query.append(("mediaTypes", type.rawValue)) }
            query.append(("private", `private`.map { $0 ? "true" : "false" }))
            query.append(("sort.fieldName", sort?.fieldName))
            query.append(("sort.order", sort?.order.rawValue))
            query.append(("paging.limit", limit.map(String.init)))
            query.append(("paging.cursor", cursor))
            return query
        }
    }
}
