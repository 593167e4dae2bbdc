import Foundation

/// The claims of an upload token, simple or resumable.
///
/// Shaped like the service's samples (`jti`, `aud`, `iss`, `iat`, `exp`, `mimeType`, `protocol`),
/// plus what the server needs to create the file: target folder, name, labels, privacy.
struct UploadClaims: Codable, Sendable, Equatable {
    /// Token id; single use is tracked by it.
    var jti: String
    var aud: String = "urn:service:upload"
    var iss: String = "urn:service:upload"
    var iat: Int64
    var exp: Int64
    /// `"tus"` for a resumable token, absent for a simple upload URL.
    var `protocol`: String?
    var mimeType: String
    var fileName: String?
    var parentFolderId: String
    var labels: [String]
    var acl: String
    var sizeInBytes: Int64?

    var isPrivate: Bool { acl == "private" }
    var isResumable: Bool { `protocol` == "tus" }

    func checkExpiry(now: Date = Date()) throws(TokenError) {
        if Int64(now.timeIntervalSince1970) >= exp { throw .expired }
    }
}

/// The claims of a signed download URL.
struct DownloadClaims: Codable, Sendable, Equatable {
    var fileId: String
    var exp: Int64
    var name: String?
}
