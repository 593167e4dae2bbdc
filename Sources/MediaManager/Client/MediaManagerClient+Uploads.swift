import Foundation
import NIOCore
import NIOHTTP1

extension MediaManagerClient {
    /// Calls to the upload host: the URLs from ``MediaManagerClient/Files`` carry their own token,
    /// so these calls send no `Authorization`, and their URLs are never logged.
    public struct Uploads: Sendable {
        let client: MediaManagerClient

        /// Simple upload: `PUT <uploadUrl>?filename=NAME` with the raw bytes.
        ///
        /// The upload URL is single-use, so a transport failure is not retried (a `429` or `5xx`
        /// answer is, as the server did not take the upload).
        ///
        /// - Parameters:
        ///   - uploadUrl: From ``MediaManagerClient/Files/generateFileUploadUrl(mimeType:options:)``.
        ///   - fileName: The display name (include the extension).
        ///   - contentType: The bytes' MIME type (`application/octet-stream` lets the service guess).
        ///   - bytes: The content; meant for small files (the service advises under 10 MB).
        /// - Returns: The new file's descriptor.
        public func upload(
            to uploadUrl: String,
            fileName: String?,
            contentType: String = "application/octet-stream",
            bytes: ByteBuffer
        ) async throws -> FileDescriptor {
            var call = try uploadCall(.PUT, url: uploadUrl, fileName: fileName, label: "PUT upload")
            call.body = bytes
            call.contentType = contentType
            return try await client.send(call, as: FileResponse.self).file
        }

        /// Finalizes a resumable upload once its tus upload completed:
        /// `PUT <uploadUrl>/<uploadToken>?filename=NAME` with the body `{}`.
        ///
        /// - Returns: The new file's descriptor.
        public func finalizeResumableUpload(
            uploadUrl: String,
            uploadToken: String,
            fileName: String?
        ) async throws -> FileDescriptor {
            var base = uploadUrl
            while base.hasSuffix("/") { base.removeLast() }
            let call = try uploadCall(
                .PUT,
                url: base + "/" + MediaManagerClient.encode(uploadToken),
                fileName: fileName,
                label: "PUT finalize"
            )
            return try await client.send(call, body: EmptyResponse(), as: FileResponse.self).file
        }

        private func uploadCall(_ method: HTTPMethod, url: String, fileName: String?, label: String) throws -> Call {
            guard var components = URLComponents(string: url), components.scheme != nil, components.host != nil else {
                throw MediaManagerError(code: .invalidArgument, message: "Not a usable upload URL")
            }
            if let fileName {
                let item = "filename=" + MediaManagerClient.encode(fileName)
                let existing = components.percentEncodedQuery.map { $0.isEmpty ? "" : $0 + "&" } ?? ""
                components.percentEncodedQuery = existing + item
            }
            guard let full = components.string else {
                throw MediaManagerError(code: .invalidArgument, message: "Not a usable upload URL")
            }
            return Call(
                method: method,
                url: full,
                label: label,
                body: nil,
                contentType: nil,
                authenticated: false,
                idempotent: false,
                timeout: client.configuration.timeouts.upload
            )
        }
    }
}
