import Crypto
import Foundation
import Hummingbird
import MediaManager

/// The upload host's non-tus endpoints: the simple `PUT <uploadUrl>?filename=` and the
/// resumable finalize `PUT <uploadUrl>/<uploadToken>?filename=`.
struct UploadController: Sendable {
    let state: ServerState

    func addRoutes(to router: Router<MediaRequestContext>) {
        router.put("upload/tus/:id") { request, context in
            try await self.finalize(request, token: context.parameters.require("id"))
        }
        router.put("upload/:token") { request, context in
            try await self.simpleUpload(request, token: context.parameters.require("token"))
        }
    }

    /// The display name: the `filename` query, else the name given at generation. 400 when
    /// it is longer than a display name may be.
    func fileName(_ request: Request, fallbacks: String?...) throws -> String {
        let query = request.uri.queryParameters.getAll("filename")
        guard query.count <= 1 else { throw APIError.invalid("filename", "filename must be given once") }
        guard let name = (query + fallbacks).compactMap({ $0 }).first(where: { !$0.isEmpty }) else {
            throw APIError.missing("filename")
        }
        try InputLimits.checkName(name, field: "filename")
        return name
    }

    /// The file's MIME type: the one given at generation, unless that was
    /// `application/octet-stream`, in which case a valid `hint` (the request's or the tus
    /// metadata's content type) or else the name's extension decides.
    static func mimeType(claimed: String, hint: String?, fileName: String) -> String {
        guard claimed == MIMETypes.octetStream else { return claimed }
        if let hint, InputLimits.isMIMEType(hint), hint != MIMETypes.octetStream { return hint }
        return MIMETypes.guess(fileName: fileName)
    }

    func simpleUpload(_ request: Request, token: String) async throws -> JSONResponse<FileResponse> {
        let claims = try state.verifyUploadToken(token)
        guard !claims.isResumable else {
            throw APIError(.forbidden, code: "PERMISSION_DENIED", message: "This is a resumable upload token; upload with tus to the resumable URL")
        }
        if try await state.store.isTokenUsed(claims.jti) { throw APIError.tokenReused }
        let name = try fileName(request, fallbacks: claims.fileName)
        let mime = Self.mimeType(claimed: claims.mimeType, hint: request.headers[.contentType], fileName: name)
        let blobId = Identifiers.hex()
        let writer = try await state.blobs.openForAppend(blobId, truncatingTo: 0)
        var md5 = Insecure.MD5()
        do {
            defer { writer.close() }
            for try await buffer in request.body {
                guard Int64(buffer.readableBytes) <= state.configuration.maxUploadSize - writer.offset else {
                    throw APIError(.contentTooLarge, code: "OUT_OF_RANGE", message: "The file exceeds the maximum size of \(state.configuration.maxUploadSize) bytes")
                }
                try await writer.write(buffer)
                buffer.withUnsafeReadableBytes { md5.update(bufferPointer: $0) }
            }
            try await writer.sync()
            let record = makeRecord(
                claims: claims, name: name, mimeType: mime, size: writer.offset,
                hash: md5.finalize().map { String(format: "%02x", $0) }.joined(), blobId: blobId, tokenId: nil)
            let inserted = try await state.store.insertFile(record, consumingToken: claims.jti)
            return JSONResponse(FileResponse(file: state.descriptor(inserted)))
        } catch {
            await state.blobs.remove([blobId])
            throw error
        }
    }

    func finalize(_ request: Request, token: String) async throws -> JSONResponse<FileResponse> {
        let claims = try state.verifyUploadToken(token)
        guard let upload = try await state.store.currentUpload(tokenId: claims.jti) else {
            throw APIError(.notFound, code: "NOT_FOUND", message: "No tus upload was started with this token; create one at the uploadUrl first")
        }
        // Finalize is idempotent, so a client whose answer was lost can simply ask again.
        if let finished = try await finishedFile(upload) { return finished }
        return try await state.sessions.withLock(upload.id, busy: TusController.locked) {
            let upload = try await TusController(state: state).load(upload.id)
            if let finished = try await finishedFile(upload) { return finished }
            guard upload.isComplete, let length = upload.length else {
                let expected = upload.length.map(String.init) ?? "an undeclared number of"
                throw APIError(
                    .conflict, code: "UPLOAD_INCOMPLETE",
                    message: "The tus upload has \(upload.offset) of \(expected) bytes; send the rest before finalizing")
            }
            let name = try fileName(request, fallbacks: upload.fileName, claims.fileName)
            let mime = Self.mimeType(claimed: claims.mimeType, hint: upload.contentType, fileName: name)
            let hasher: Insecure.MD5
            if let running = await state.sessions.hasher(for: upload.id, at: length) {
                hasher = running
            } else {
                hasher = try await state.blobs.md5(upload.id, length: length)
            }
            // The id fixed in the token's `path` when it was minted, whatever name finalize gives.
            let record = makeRecord(
                claims: claims, name: name, mimeType: mime, size: length,
                hash: hasher.finalize().map { String(format: "%02x", $0) }.joined(), blobId: upload.id, tokenId: claims.jti,
                id: claims.fileId)
            let inserted = try await state.store.finalize(uploadId: upload.id, file: record)
            await state.sessions.forget(upload.id)
            return JSONResponse(FileResponse(file: state.descriptor(inserted)))
        }
    }

    private func finishedFile(_ upload: UploadRecord) async throws -> JSONResponse<FileResponse>? {
        guard upload.state == .finalized, let fileId = upload.fileId else { return nil }
        guard let file = try await state.store.file(id: fileId) else {
            throw APIError(.gone, code: "NOT_FOUND", message: "The file of this upload was finalized and has since been deleted")
        }
        return JSONResponse(FileResponse(file: state.descriptor(file)))
    }

    private func makeRecord(
        claims: UploadClaims, name: String, mimeType: String, size: Int64, hash: String, blobId: String, tokenId: String?,
        id: String? = nil
    ) -> FileRecord {
        let mediaType = MediaType(mimeType: mimeType).rawValue
        let now = Date().timeIntervalSince1970
        return FileRecord(
            id: id ?? Identifiers.fileId(sitePrefix: state.sitePrefix, fileName: name, mediaType: mediaType),
            displayName: name,
            parentId: claims.parentFolderId,
            restoreParentId: nil,
            state: ItemState.ok.rawValue,
            trashedBy: nil,
            mimeType: mimeType,
            mediaType: mediaType,
            size: size,
            hash: hash,
            isPrivate: claims.isPrivate,
            labels: FileRecord.encodeLabels(claims.labels),
            blobId: blobId,
            createdDate: now,
            updatedDate: now,
            tokenId: tokenId
        )
    }
}
