import HTTPTypes
import Foundation
import Hummingbird

/// tus 1.0.0 header names and helpers.
enum Tus {
    static let version = "1.0.0"
    static let extensions = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
    static let checksumAlgorithms = "sha1,sha256,md5"
    static let offsetContentType = "application/offset+octet-stream"

    static let resumable = HTTPField.Name("Tus-Resumable")!
    static let versionHeader = HTTPField.Name("Tus-Version")!
    static let extensionHeader = HTTPField.Name("Tus-Extension")!
    static let maxSize = HTTPField.Name("Tus-Max-Size")!
    static let checksumAlgorithm = HTTPField.Name("Tus-Checksum-Algorithm")!
    static let uploadOffset = HTTPField.Name("Upload-Offset")!
    static let uploadLength = HTTPField.Name("Upload-Length")!
    static let uploadDeferLength = HTTPField.Name("Upload-Defer-Length")!
    static let uploadMetadata = HTTPField.Name("Upload-Metadata")!
    static let uploadExpires = HTTPField.Name("Upload-Expires")!
    static let uploadChecksum = HTTPField.Name("Upload-Checksum")!
    static let methodOverride = HTTPField.Name("X-HTTP-Method-Override")!

    /// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (value optional).
    /// Returns `nil` when the header is malformed: a key repeated, a key that is not printable
    /// ASCII, a value that is not base64 or does not decode to UTF-8.
    static func parseMetadata(_ header: String) -> [String: String]? {
        var result: [String: String] = [:]
        for pair in header.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true)
            guard let key = parts.first, parts.count <= 2, result[String(key)] == nil,
                key.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
            else { return nil }
            if parts.count == 2 {
                guard let data = Data(base64Encoded: String(parts[1])), let value = String(validating: data, as: UTF8.self) else {
                    return nil
                }
                result[String(key)] = value
            } else {
                result[String(key)] = ""
            }
        }
        return result
    }

    /// A non-negative integer header, parsed strictly (ASCII digits only, within `Int64`):
    /// `nil` when absent, 400 when malformed or repeated.
    static func number(_ request: Request, _ name: HTTPField.Name) throws(APIError) -> Int64? {
        let values = request.headers[values: name]
        guard let text = values.first else { return nil }
        guard values.count == 1, let value = RequestNumber.parse(text) else {
            throw error(.badRequest, "INVALID_ARGUMENT", "\(name) must be one non-negative integer of at most 19 digits")
        }
        return value
    }

    /// `Upload-Metadata` as echoed by HEAD, rebuilt from what was parsed so nothing unvalidated
    /// is reflected into a header.
    static func formatMetadata(_ metadata: [String: String]) -> String {
        metadata.keys.sorted().map { key in
            let value = metadata[key] ?? ""
            return value.isEmpty ? key : "\(key) \(Data(value.utf8).base64EncodedString())"
        }.joined(separator: ",")
    }

    /// RFC 9110 HTTP-date.
    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }

    /// An error answer of the upload host, with `Tus-Resumable` on it.
    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) -> APIError {
        var all = headers
        all[resumable] = version
        return APIError(status, code: code, message: message).with(headers: all)
    }
}
