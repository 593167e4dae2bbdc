import Foundation
import Hummingbird
import MediaManager

/// `/site-media/v1/files…`, `/bulk/files…` and `/trash-bin/files`.
struct FilesController: Sendable {
    let state: ServerState

    func addRoutes(to group: RouterGroup<MediaRequestContext>) {
        group.post("files/generate-upload-url") { request, context in
            try await self.generateUploadURL(request, context: context, resumable: false)
        }
        group.post("files/generate-resumable-upload-url") { request, context in
            try await self.generateUploadURL(request, context: context, resumable: true)
        }
        group.get("files/get-file-by-id") { request, _ in
            guard let id = request.uri.queryParameters.get("fileId"), !id.isEmpty else {
                throw APIError.missing("fileId")
            }
            return try await self.get(id)
        }
        group.get("files/:fileId") { _, context in
            try await self.get(context.parameters.require("fileId"))
        }
        group.post("files/get-files") { request, context in
            let body = try await request.decodeJSON(GetFilesRequest.self, context: context)
            try InputLimits.checkIds(body.fileIds, field: "fileIds")
            let ids = body.fileIds.map(FileIDs.normalize)
            let records = try await self.state.store.files(ids: ids)
            if let missing = ids.first(where: { id in !records.contains { $0.id == id } }) {
                throw APIError.notFound("File", missing)
            }
            return JSONResponse(FilesResponse(files: records.map(self.state.descriptor)))
        }
        group.get("files") { request, _ in
            try await self.list(ListQuery(request: request, trash: false, files: true))
        }
        group.get("trash-bin/files") { request, _ in
            try await self.list(ListQuery(request: request, trash: true, files: true))
        }
        group.patch("files/update-file-descriptor") { request, context in
            let body = try await request.decodeJSON(UpdateFileDescriptorRequest.self, context: context)
            guard let id = body.file.id, !id.isEmpty else { throw APIError.missing("file.id") }
            return try await self.update(FileIDs.normalize(id), body)
        }
        group.patch("files/:fileId/update") { request, context in
            let body = try await request.decodeJSON(UpdateFileDescriptorRequest.self, context: context)
            return try await self.update(FileIDs.normalize(try context.parameters.require("fileId")), body)
        }
        group.post("bulk/files/delete") { request, context in
            let body = try await request.decodeJSON(BulkDeleteFilesRequest.self, context: context)
            try InputLimits.checkIds(body.fileIds, field: "fileIds")
            let blobs = try await self.state.store.deleteFiles(ids: body.fileIds.map(FileIDs.normalize), permanent: body.permanent ?? false)
            await self.state.blobs.remove(blobs)
            return JSONResponse(EmptyResponse())
        }
        group.post("bulk/trash-bin/files/restore") { request, context in
            let body = try await request.decodeJSON(BulkRestoreFilesRequest.self, context: context)
            try InputLimits.checkIds(body.fileIds, field: "fileIds")
            try await self.state.store.restoreFiles(ids: body.fileIds.map(FileIDs.normalize))
            return JSONResponse(EmptyResponse())
        }
        group.post("files/:fileId/generate-download-url") { request, context in
            try await self.generateDownloadURL(request, context: context)
        }
    }

    func get(_ rawId: String) async throws -> JSONResponse<FileResponse> {
        let id = FileIDs.normalize(rawId)
        guard let record = try await state.store.file(id: id) else { throw APIError.notFound("File", id) }
        return JSONResponse(FileResponse(file: state.descriptor(record)))
    }

    func list(_ query: ListQuery) async throws -> JSONResponse<ListFilesResponse> {
        let page = try await state.store.listFiles(query)
        return JSONResponse(ListFilesResponse(files: page.rows.map(state.descriptor), nextCursor: PagingMetadata(next: page.nextCursor)))
    }

    func update(_ id: String, _ body: UpdateFileDescriptorRequest) async throws -> JSONResponse<FileResponse> {
        // Without a mask, every writable field present in the body is applied.
        let mask = body.fieldMask?.fields
        func wanted(_ field: String) -> Bool { mask?.contains(field) ?? true }
        if wanted("displayName"), let name = body.file.displayName {
            guard !name.isEmpty else { throw APIError.invalid("file.displayName", "displayName must not be empty") }
            try InputLimits.checkName(name, field: "file.displayName")
        }
        if wanted("labels"), let labels = body.file.labels { try InputLimits.checkLabels(labels, field: "file.labels") }
        let record = try await state.store.updateFile(
            id: id,
            displayName: wanted("displayName") ? body.file.displayName : nil,
            parentId: wanted("parentFolderId") ? body.file.parentFolderId : nil,
            labels: wanted("labels") ? (body.file.labels ?? (mask != nil ? [] : nil)) : nil
        )
        return JSONResponse(FileResponse(file: state.descriptor(record)))
    }

    func generateUploadURL(_ request: Request, context: MediaRequestContext, resumable: Bool) async throws -> JSONResponse<AnyEncodable> {
        let body = try await request.decodeJSON(StrictGenerateUploadUrlRequest.self, context: context).request
        let mimeType = body.mimeType.trimmingCharacters(in: .whitespaces)
        guard InputLimits.isMIMEType(mimeType) else {
            throw APIError.invalid("mimeType", "mimeType must be a MIME type such as image/jpeg (at most \(InputLimits.mimeTypeLength) printable ASCII characters)")
        }
        let fileName = body.fileName.flatMap { $0.isEmpty ? nil : $0 }
        if let fileName { try InputLimits.checkName(fileName, field: "fileName") }
        try InputLimits.checkLabels(body.labels ?? [], field: "labels")
        if let size = body.sizeInBytes, size < 0 || size > state.configuration.maxUploadSize {
            throw APIError(field: "sizeInBytes", message: "sizeInBytes must be between 0 and \(state.configuration.maxUploadSize)", rule: "OUT_OF_RANGE")
        }
        if let protocolName = body.uploadProtocol, protocolName != .tus {
            throw APIError.invalid("uploadProtocol", "uploadProtocol must be TUS")
        }
        var parent = body.parentFolderId.flatMap { $0.isEmpty ? nil : $0 } ?? FolderID.mediaRoot
        if let path = body.filePath, !path.isEmpty {
            try Self.checkFilePath(path)
            parent = try await state.store.ensureFolderPath(path, under: parent)
        } else if try await !state.store.isLiveFolder(parent) {
            throw APIError.notFound("Folder", parent)
        }
        let now = Int64(Date().timeIntervalSince1970)
        let lifetime: Int64 = resumable ? 7 * 24 * 3600 + 10 : 24 * 3600 + 10
        // A resumable token fixes the file's id (`path: media/<id>`), so a client that lost the
        // finalize answer, or restarted, can find its file by id.
        var path: String?
        if resumable {
            let guessed = UploadController.mimeType(claimed: mimeType, hint: nil, fileName: fileName ?? "")
            let id = Identifiers.fileId(sitePrefix: state.sitePrefix, fileName: fileName, mediaType: MediaType(mimeType: guessed).rawValue)
            path = UploadClaims.pathPrefix + id
        }
        let claims = UploadClaims(
            jti: Identifiers.hex(),
            iat: now,
            exp: now + lifetime,
            protocol: resumable ? "tus" : nil,
            mimeType: mimeType,
            fileName: fileName,
            parentFolderId: parent,
            labels: body.labels ?? [],
            acl: body.private == true ? "private" : "public",
            sizeInBytes: body.sizeInBytes,
            path: path
        )
        let token = try state.signer.sign(claims)
        if resumable {
            return JSONResponse(AnyEncodable(GenerateResumableUploadUrlResponse(uploadUrl: state.baseURL + "/upload/tus", uploadToken: token)))
        }
        return JSONResponse(AnyEncodable(GenerateUploadUrlResponse(uploadUrl: state.baseURL + "/upload/" + token)))
    }

    func generateDownloadURL(_ request: Request, context: MediaRequestContext) async throws -> JSONResponse<GenerateFileDownloadUrlResponse> {
        let id = FileIDs.normalize(try context.parameters.require("fileId"))
        var body = GenerateFileDownloadUrlRequest()
        if request.headers[.contentLength] != "0", request.headers[.contentLength] != nil || request.headers[.transferEncoding] != nil {
            body = try await request.decodeJSON(GenerateFileDownloadUrlRequest.self, context: context)
        }
        if let name = body.downloadFileName { try InputLimits.checkName(name, field: "downloadFileName") }
        let minutes = body.expirationInMinutes ?? 600
        guard (1...525_600).contains(minutes) else {
            throw APIError(field: "expirationInMinutes", message: "expirationInMinutes must be between 1 and 525600", rule: "OUT_OF_RANGE")
        }
        guard let record = try await state.store.file(id: id) else { throw APIError.notFound("File", id) }
        let claims = DownloadClaims(
            fileId: record.id,
            exp: Int64(Date().timeIntervalSince1970) + Int64(minutes) * 60,
            name: body.downloadFileName ?? record.displayName
        )
        let token = try state.signer.sign(claims)
        let url = state.baseURL + "/download/" + record.id + "?token=" + token
        return JSONResponse(GenerateFileDownloadUrlResponse(downloadUrls: [.init(url: url, assetKey: "src")]))
    }
}

extension FilesController {
    /// Refuses a `filePath` with more than `InputLimits.pathSegments` folders or a folder name
    /// longer than a display name may be.
    static func checkFilePath(_ path: String) throws(APIError) {
        let names = path.split(separator: "/").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard names.count <= InputLimits.pathSegments else {
            throw APIError(
                field: "filePath", message: "filePath may name at most \(InputLimits.pathSegments) folders (it names \(names.count))",
                rule: "MAX_SIZE")
        }
        for name in names { try InputLimits.checkName(name, field: "filePath") }
    }
}

/// `GenerateUploadUrlRequest` with the strictness the shared model's decoding lacks:
/// `sizeInBytes` sent as a string must be ASCII digits only (no sign, no whitespace).
struct StrictGenerateUploadUrlRequest: Decodable {
    let request: GenerateUploadUrlRequest

    private enum Key: String, CodingKey { case sizeInBytes }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        if let text = try? container.decode(String.self, forKey: .sizeInBytes), RequestNumber.parse(text) == nil {
            throw DecodingError.dataCorruptedError(
                forKey: .sizeInBytes, in: container, debugDescription: "sizeInBytes must be a non-negative integer of digits only")
        }
        self.request = try GenerateUploadUrlRequest(from: decoder)
    }
}

/// Type-erases an encodable value for handlers that answer one of several shapes.
struct AnyEncodable: Encodable, Sendable {
    private let encodeValue: @Sendable (any Encoder) throws -> Void
    init<T: Encodable & Sendable>(_ value: T) { self.encodeValue = { try value.encode(to: $0) } }
    func encode(to encoder: any Encoder) throws { try encodeValue(encoder) }
}
