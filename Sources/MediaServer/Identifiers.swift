import Foundation

/// Generates the ids the server hands out. None is ever derived from a user-given name.
enum Identifiers {
    static func hex(_ bytes: Int = 16) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func folderId() -> String { hex() }

    /// A file id in the service's shape: `<site prefix>_<32 hex>` plus `~mv2.<ext>` for images
    /// and `.<ext>` for audio and documents, where `ext` is the lower-cased extension of the
    /// name when it is plain alphanumerics.
    static func fileId(sitePrefix: String, fileName: String?, mediaType: String) -> String {
        let base = "\(sitePrefix)_\(hex())"
        let ext = fileName.flatMap { name -> String? in
            guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
            let ext = name[name.index(after: dot)...].lowercased()
            guard (1...8).contains(ext.count), ext.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                return nil
            }
            return ext
        }
        guard let ext else { return base }
        switch mediaType {
        case "IMAGE", "VECTOR": return "\(base)~mv2.\(ext)"
        case "VIDEO": return base
        default: return "\(base).\(ext)"
        }
    }
}
