import Foundation

/// Encoding and decoding of the tus `Upload-Metadata` header.
public enum UploadMetadata {
    /// Encodes `metadata` as `key base64(value),…`, keys sorted for a stable header.
    ///
    /// - Throws: ``ResumableError/Code/invalidArgument`` when a key is empty or contains a space or comma.
    public static func encode(_ metadata: [String: String]) throws(ResumableError) -> String? {
        guard !metadata.isEmpty else { return nil }
        var pairs: [String] = []
        for key in metadata.keys.sorted() {
            guard !key.isEmpty, !key.contains(where: { $0 == " " || $0 == "," || !$0.isASCII }) else {
                throw ResumableError(
                    code: .invalidArgument,
                    message: "Invalid Upload-Metadata key '\(key)': keys must be non-empty ASCII without spaces or commas"
                )
            }
            let value = metadata[key] ?? ""
            pairs.append(value.isEmpty ? key : "\(key) \(Data(value.utf8).base64EncodedString())")
        }
        return pairs.joined(separator: ",")
    }

    /// Decodes an `Upload-Metadata` header; values that are not valid base64 UTF-8 are skipped.
    public static func decode(_ header: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in header.split(separator: ",") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
            guard let key = parts.first.map(String.init), !key.isEmpty else { continue }
            if parts.count == 1 {
                result[key] = ""
            } else if let data = Data(base64Encoded: String(parts[1])), let value = String(data: data, encoding: .utf8) {
                result[key] = value
            }
        }
        return result
    }
}
