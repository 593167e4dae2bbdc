import Foundation
import Hummingbird
import MediaManager

/// tus 1.0.0 at the resumable `uploadUrl` (`/upload/tus`): OPTIONS, POST (creation, with
/// upload, deferred length), HEAD, PATCH (checksum), DELETE (termination), expiration, and
/// `X-HTTP-Method-Override`.
struct TusController: Sendable {
    let state: ServerState

    func addRoutes(to router: Router<MediaRequestContext>) {
        router.on("upload/tus", method: .options) { _, _ in self.options() }
        router.on("upload/tus/:id", method: .options) { _, _ in self.options() }
        router.post("upload/tus") { request, _ in try await self.create(request) }
        router.head("upload/tus/:id") { request, context in
            try await self.head(request, id: context.parameters.require("id"))
        }
        router.patch("upload/tus/:id") { request, context in
            try await self.patch(request, id: context.parameters.require("id"))
        }
        router.delete("upload/tus/:id") { request, context in
            try await self.terminate(request, id: context.parameters.require("id"))
        }
        router.post("upload/tus/:id") { request, context in
            let id = try context.parameters.require("id")
            switch request.headers[Tus.methodOverride]?.uppercased() {
            case "PATCH": return try await self.patch(request, id: id)
            case "DELETE": return try await self.terminate(request, id: id)
            case "HEAD": return try await self.head(request, id: id)
            default: throw Tus.error(.methodNotAllowed, "METHOD_NOT_ALLOWED", "POST to an upload needs X-HTTP-Method-Override")
            }
        }
    }

    // MARK: Requests

    func options() -> Response {
        var headers = HTTPFields()
        headers[Tus.resumable] = Tus.version
        headers[Tus.versionHeader] = Tus.version
        headers[Tus.extensionHeader] = Tus.extensions
        headers[Tus.maxSize] = String(state.configuration.maxUploadSize)
        headers[Tus.checksumAlgorithm] = Tus.checksumAlgorithms
        return Response(status: .noContent, headers: headers)
    }

    func create(_ request: Request) async throws -> Response {
        try checkVersion(request)
        let deferHeader = request.headers[values: Tus.uploadDeferLength]
        var length: Int64?
        switch (try Tus.number(request, Tus.uploadLength), deferHeader.isEmpty) {
        case (let value?, true):
            length = value
        case (nil, false):
            guard deferHeader == ["1"] else {
                throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Defer-Length must be 1")
            }
            length = nil
        case (_?, false):
            throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Send Upload-Length or Upload-Defer-Length, not both")
        case (nil, true):
            throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Length or Upload-Defer-Length: 1 is required")
        }
        let maximum = state.configuration.maxUploadSize
        if let length, length > maximum {
            throw Tus.error(.contentTooLarge, "OUT_OF_RANGE", "Upload-Length exceeds Tus-Max-Size (\(maximum))")
        }
        let withUpload = request.headers[.contentType]?.lowercased() == Tus.offsetContentType
        if withUpload, let declared = try Tus.number(request, .contentLength), declared > length ?? maximum {
            throw Tus.error(
                .contentTooLarge, "OUT_OF_RANGE",
                length == nil
                    ? "The request carries more bytes than Tus-Max-Size (\(maximum))"
                    : "The request carries more bytes than its Upload-Length (\(length ?? 0))")
        }
        let metadata = try metadata(request)
        guard let token = metadata["token"], !token.isEmpty else {
            throw Tus.error(.unauthorized, "UNAUTHENTICATED", "Upload-Metadata must carry the uploadToken as 'token'")
        }
        let claims = try verify(token)
        guard claims.isResumable else {
            throw Tus.error(.forbidden, "PERMISSION_DENIED", "This token is for a simple upload; use generate-resumable-upload-url for tus")
        }
        let checksum = withUpload ? try checksum(request) : nil
        let now = Date()
        let record = UploadRecord(
            id: Identifiers.hex(),
            tokenId: claims.jti,
            claims: String(decoding: try JSONEncoder().encode(claims), as: UTF8.self),
            length: length,
            offset: 0,
            metadata: metadata.isEmpty ? nil : Tus.formatMetadata(metadata),
            fileName: metadata["filename"].flatMap { $0.isEmpty ? nil : $0 },
            contentType: (metadata["contentType"] ?? metadata["filetype"]).flatMap { InputLimits.isMIMEType($0) ? $0 : nil },
            createdDate: now.timeIntervalSince1970,
            expiresDate: now.timeIntervalSince1970 + state.configuration.uploadExpiry,
            state: .active,
            fileId: nil
        )
        // One creation per token at a time; an older unfinished upload of the token is
        // terminated (under its own lock, so no PATCH is writing to it) and the new one is the
        // one finalize will use.
        let offset = try await state.sessions.withLock("token:" + claims.jti, busy: Self.tokenBusy) { () async throws -> Int64? in
            let older = try await state.store.activeUploads(tokenId: claims.jti)
            try await state.sessions.withLocks(older, busy: Self.tokenBusy) {
                do {
                    try await state.store.createUpload(record, replacing: older)
                } catch let error as APIError {
                    throw error.with(headers: [Tus.resumable: Tus.version])
                }
            }
            for id in older { await state.sessions.forget(id) }
            await state.blobs.remove(older)
            try await state.blobs.openForAppend(record.id, truncatingTo: 0).close()
            guard withUpload else { return nil }
            return try await state.sessions.withLock(record.id, busy: Self.locked) {
                try await BodyReceiver(state: state).receive(record, body: request.body, length: length, checksum: checksum)
            }
        }
        var headers = commonHeaders(record)
        headers[.location] = state.baseURL + "/upload/tus/" + record.id
        if let offset { headers[Tus.uploadOffset] = String(offset) }
        return Response(status: .created, headers: headers)
    }

    func head(_ request: Request, id: String) async throws -> Response {
        try checkVersion(request)
        let upload = try await load(id)
        var headers = commonHeaders(upload)
        headers[.cacheControl] = "no-store"
        headers[Tus.uploadOffset] = String(upload.offset)
        if let length = upload.length {
            headers[Tus.uploadLength] = String(length)
        } else {
            headers[Tus.uploadDeferLength] = "1"
        }
        if let metadata = upload.metadata { headers[Tus.uploadMetadata] = metadata }
        return Response(status: .ok, headers: headers)
    }

    func patch(_ request: Request, id: String) async throws -> Response {
        try checkVersion(request)
        guard request.headers[.contentType]?.lowercased() == Tus.offsetContentType else {
            throw Tus.error(.unsupportedMediaType, "INVALID_ARGUMENT", "PATCH needs Content-Type: \(Tus.offsetContentType)")
        }
        guard let offset = try Tus.number(request, Tus.uploadOffset) else {
            throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Offset must be a non-negative integer")
        }
        let newLength = try Tus.number(request, Tus.uploadLength)
        let declared = try Tus.number(request, .contentLength)
        let checksum = try checksum(request)
        let maximum = state.configuration.maxUploadSize
        let offsetAfter = try await state.sessions.withLock(id, busy: Self.locked) { () async throws -> Int64 in
            let upload = try await load(id)
            guard upload.state == .active else {
                throw Tus.error(.forbidden, "ALREADY_FINALIZED", "This upload was finalized; it takes no more bytes")
            }
            guard offset == upload.offset else {
                throw Tus.error(
                    .conflict, "OFFSET_MISMATCH", "Upload-Offset \(offset) does not match the upload's offset \(upload.offset)",
                    headers: [Tus.uploadOffset: String(upload.offset)])
            }
            var length = upload.length
            if let newLength {
                if let length, length != newLength {
                    throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Length is already \(length); it cannot change")
                }
                guard newLength >= upload.offset, newLength <= maximum else {
                    throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Length \(newLength) is below the offset or above Tus-Max-Size")
                }
                length = newLength
            }
            // Both sides are non-negative and the offset never passes the limit it was written
            // under, so the subtraction cannot overflow (a lowered Tus-Max-Size makes it negative,
            // which refuses every byte).
            if let declared, declared > (length ?? maximum) - upload.offset {
                throw Tus.error(
                    .contentTooLarge, "OUT_OF_RANGE",
                    length.map { "The PATCH carries more bytes than the upload's length (\($0))" }
                        ?? "The PATCH would take the upload past Tus-Max-Size (\(maximum))",
                    headers: [Tus.uploadOffset: String(upload.offset)])
            }
            return try await BodyReceiver(state: state).receive(upload, body: request.body, length: length, checksum: checksum)
        }
        let upload = try await load(id)
        var headers = commonHeaders(upload)
        headers[Tus.uploadOffset] = String(offsetAfter)
        return Response(status: .noContent, headers: headers)
    }

    func terminate(_ request: Request, id: String) async throws -> Response {
        try checkVersion(request)
        try await state.sessions.withLock(id, busy: Self.locked) {
            let upload = try await load(id)
            guard upload.state == .active else {
                throw Tus.error(.forbidden, "ALREADY_FINALIZED", "This upload was finalized; delete the file through the API instead")
            }
            try await state.store.setState(uploadId: id, .terminated)
            await state.sessions.forget(id)
            await state.blobs.remove([id])
        }
        return Response(status: .noContent, headers: [Tus.resumable: Tus.version])
    }

    // MARK: Helpers

    static var locked: APIError {
        Tus.error(HTTPResponse.Status(code: 423, reasonPhrase: "Locked"), "LOCKED", "Another request is writing to this upload; retry shortly")
    }

    static var tokenBusy: APIError {
        Tus.error(
            HTTPResponse.Status(code: 423, reasonPhrase: "Locked"), "LOCKED",
            "Another request is creating or writing an upload of this token; retry shortly")
    }

    /// `Upload-Metadata`, checked: well formed, present at most once, a `filename` no longer
    /// than a display name may be.
    func metadata(_ request: Request) throws(APIError) -> [String: String] {
        let values = request.headers[values: Tus.uploadMetadata]
        guard values.count <= 1, let metadata = Tus.parseMetadata(values.first ?? "") else {
            throw Tus.error(
                .badRequest, "INVALID_ARGUMENT",
                "Upload-Metadata is malformed: send it once, as comma-separated 'key base64value' pairs with UTF-8 values")
        }
        if let name = metadata["filename"] {
            do {
                try InputLimits.checkName(name, field: "Upload-Metadata filename")
            } catch {
                throw error.with(headers: [Tus.resumable: Tus.version])
            }
        }
        return metadata
    }

    func checkVersion(_ request: Request) throws {
        guard request.headers[Tus.resumable] == Tus.version else {
            throw Tus.error(
                .preconditionFailed, "UNSUPPORTED_VERSION", "Tus-Resumable must be \(Tus.version)",
                headers: [Tus.versionHeader: Tus.version])
        }
    }

    func checksum(_ request: Request) throws -> BodyReceiver.Checksum? {
        try request.headers[Tus.uploadChecksum].map(BodyReceiver.Checksum.init(header:))
    }

    func verify(_ token: String) throws -> UploadClaims {
        do {
            return try state.verifyUploadToken(token)
        } catch {
            throw error.with(headers: [Tus.resumable: Tus.version])
        }
    }

    /// The upload, or 404 (unknown, terminated) / 410 (expired).
    func load(_ id: String) async throws -> UploadRecord {
        guard let upload = try await state.store.upload(id: id), upload.state != .terminated else {
            throw Tus.error(.notFound, "NOT_FOUND", "Upload '\(id)' was not found")
        }
        if upload.state == .expired || (upload.state == .active && upload.expiresDate <= Date().timeIntervalSince1970) {
            throw Tus.error(.gone, "EXPIRED", "Upload '\(id)' has expired; start a new one")
        }
        return upload
    }

    func commonHeaders(_ upload: UploadRecord) -> HTTPFields {
        var headers = HTTPFields()
        headers[Tus.resumable] = Tus.version
        if upload.state == .active {
            headers[Tus.uploadExpires] = Tus.httpDate(Date(timeIntervalSince1970: upload.expiresDate))
        }
        return headers
    }
}
