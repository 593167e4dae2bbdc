import Foundation

extension GenerateResumableUploadUrlResponse {
    /// The id the file will have once this upload is finalized, as the token announces it.
    ///
    /// The service's resumable tokens are JWTs whose claims carry `"path": "media/<fileId>"`; the
    /// embedded Media Manager mints them the same way. A client that lost the finalize answer (or
    /// crashed while waiting for it) asks for this id to learn whether the file exists, instead of
    /// guessing by name and size. `nil` when the token is not a JWT or carries no such claim. The
    /// claims are read, not verified: only the upload host can verify them.
    public var announcedFileId: String? {
        let parts = uploadToken.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while payload.count % 4 != 0 { payload += "=" }
        guard let data = Data(base64Encoded: payload),
            let claims = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let path = claims["path"] as? String
        else { return nil }
        let id = path.split(separator: "/").last.map(String.init) ?? ""
        return id.isEmpty ? nil : id
    }
}
