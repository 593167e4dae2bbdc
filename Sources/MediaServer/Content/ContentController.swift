import Foundation
import Hummingbird
import MediaManager

/// Serves file content: `/media/<id>` for public files and `/download/<id>?token=` (signed,
/// expiring) for any file. GET and HEAD, single byte ranges (206), ETag and Last-Modified.
struct ContentController: Sendable {
    let state: ServerState
    let fileIO = FileIO()
    /// Content is read from disk in 256 KiB chunks (Hummingbird's default is 128 KiB): half the
    /// hops between the file thread pool and the event loop per byte served.
    static let chunkLength = 256 << 10

    func addRoutes(to router: Router<MediaRequestContext>) {
        router.get("media/:id") { request, context in try await self.serveMedia(request, context: context) }
        router.head("media/:id") { request, context in try await self.serveMedia(request, context: context) }
        router.get("download/:id") { request, context in try await self.serveDownload(request, context: context) }
        router.head("download/:id") { request, context in try await self.serveDownload(request, context: context) }
    }

    func serveMedia(_ request: Request, context: MediaRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard let file = try await state.store.file(id: id) else { throw APIError.notFound("File", id) }
        guard !file.isPrivate else {
            throw APIError(.forbidden, code: "PERMISSION_DENIED", message: "File '\(id)' is private; use generate-download-url")
        }
        return try await serve(file, request: request, context: context, attachmentName: nil)
    }

    func serveDownload(_ request: Request, context: MediaRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard let token = request.uri.queryParameters.get("token") else {
            throw APIError(.forbidden, code: "PERMISSION_DENIED", message: "A download URL needs its token")
        }
        let claims: DownloadClaims
        do {
            claims = try state.signer.verify(token, as: DownloadClaims.self)
        } catch {
            throw APIError.token(error)
        }
        guard claims.fileId == id else { throw APIError.token(.invalid) }
        guard Int64(Date().timeIntervalSince1970) < claims.exp else {
            throw APIError(.forbidden, code: "PERMISSION_DENIED", message: "This download URL has expired; generate a new one")
        }
        guard let file = try await state.store.file(id: id) else { throw APIError.notFound("File", id) }
        return try await serve(file, request: request, context: context, attachmentName: claims.name)
    }

    func serve(_ file: FileRecord, request: Request, context: MediaRequestContext, attachmentName: String?) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = file.mimeType
        headers[.acceptRanges] = "bytes"
        headers[.eTag] = "\"\(file.hash)\""
        headers[.lastModified] = Tus.httpDate(Date(timeIntervalSince1970: file.createdDate))
        headers[.cacheControl] = file.isPrivate ? "private, no-store" : "public, max-age=60"
        if let attachmentName {
            let ascii = attachmentName.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 32 ? String($0) : "_" }.joined()
            let encoded = attachmentName.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ascii
            headers[.contentDisposition] = "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
        }
        if let match = request.headers[.ifNoneMatch], match == "\"\(file.hash)\"" || match == "*" {
            return Response(status: .notModified, headers: headers)
        }
        let path = state.blobs.path(file.blobId)
        let size = file.size
        var range: ClosedRange<Int64>?
        if let header = request.headers[.range], request.headers[.ifRange].map({ $0 == "\"\(file.hash)\"" }) ?? true {
            switch ByteRange.parse(header, size: size) {
            case .none: break
            case .some(.satisfiable(let r)): range = r
            case .some(.unsatisfiable):
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
        }
        let isHead = request.method == .head
        if let range {
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
            headers[.contentLength] = String(range.count)
            if isHead { return Response(status: .partialContent, headers: headers) }
            let body = try await fileIO.loadFile(
                path: path, range: Int(range.lowerBound)...Int(range.upperBound), context: context, chunkLength: Self.chunkLength)
            return Response(status: .partialContent, headers: headers, body: body)
        }
        headers[.contentLength] = String(size)
        if isHead || size == 0 { return Response(status: .ok, headers: headers) }
        let body = try await fileIO.loadFile(path: path, context: context, chunkLength: Self.chunkLength)
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// A parsed `Range: bytes=…` header (one range; several are served as the whole file).
enum ByteRange: Equatable {
    case satisfiable(ClosedRange<Int64>)
    case unsatisfiable

    /// `nil` when the header is not a single byte range (the whole file is then served).
    static func parse(_ header: String, size: Int64) -> ByteRange? {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes=") else { return nil }
        let spec = trimmed.dropFirst(6)
        guard !spec.contains(",") else { return nil }
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard parts.count == 2 else { return nil }
        // Positions are digits only (RFC 9110 §14.1.2); a value past Int64 is still a valid
        // position, just beyond any file, so it saturates instead of being refused.
        func position(_ text: String) -> Int64? {
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            return RequestNumber.parse(text) ?? .max
        }
        if parts[0].isEmpty {
            guard let suffix = position(parts[1]) else { return nil }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .satisfiable((suffix >= size ? 0 : size - suffix)...(size - 1))
        }
        guard let start = position(parts[0]) else { return nil }
        let end: Int64
        if parts[1].isEmpty {
            end = size - 1
        } else {
            guard let value = position(parts[1]), value >= start else { return nil }
            end = min(value, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .satisfiable(start...end)
    }
}
