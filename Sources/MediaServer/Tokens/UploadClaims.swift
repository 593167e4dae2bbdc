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
    /// `media/<fileId>`: the id the file will have, fixed when the token is minted (resumable
    /// tokens), as in the service's tokens. Absent from simple-upload tokens and from resumable
    /// tokens minted before ids were pre-assigned.
    var path: String?

    var isPrivate: Bool { acl == "private" }

    /// The pre-assigned file id, from `path`.
    var fileId: String? {
        guard let path, path.hasPrefix(Self.pathPrefix) else { return nil }
        let id = String(path.dropFirst(Self.pathPrefix.count))
        return id.isEmpty || id.contains("/") ? nil : id
    }

    static let pathPrefix = "media/"
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
