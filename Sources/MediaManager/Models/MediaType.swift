import Foundation

/// The kind of media a file holds, derived from its MIME type.
///
/// Unknown values received from the service are kept as they are, so a newer service never
/// breaks decoding.
public struct MediaType: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let unknown = MediaType(rawValue: "UNKNOWN")
    public static let image = MediaType(rawValue: "IMAGE")
    public static let video = MediaType(rawValue: "VIDEO")
    public static let audio = MediaType(rawValue: "AUDIO")
    public static let document = MediaType(rawValue: "DOCUMENT")
    public static let vector = MediaType(rawValue: "VECTOR")
    public static let archive = MediaType(rawValue: "ARCHIVE")
    public static let model3d = MediaType(rawValue: "MODEL3D")
    public static let other = MediaType(rawValue: "OTHER")

    /// The values a listing filter accepts.
    public static let filterable: [MediaType] = [.image, .video, .audio, .document, .vector, .archive, .model3d]

    public var description: String { rawValue }

    /// The media type the Media Manager assigns to a MIME type.
    public init(mimeType: String) {
        let mime = mimeType.lowercased().split(separator: ";").first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        switch mime {
        case "image/svg+xml": self = .vector
        case let m where m.hasPrefix("image/"): self = .image
        case let m where m.hasPrefix("video/"): self = .video
        case let m where m.hasPrefix("audio/"): self = .audio
        case let m where m.hasPrefix("model/"): self = .model3d
        case "application/zip", "application/x-zip-compressed", "application/x-rar-compressed",
            "application/vnd.rar", "application/x-7z-compressed", "application/gzip", "application/x-gzip",
            "application/x-tar", "application/x-bzip2", "application/x-xz", "application/zstd":
            self = .archive
        default: self = .document
        }
    }
}

/// Where a file is in its processing.
public struct OperationStatus: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let ready = OperationStatus(rawValue: "READY")
    public static let pending = OperationStatus(rawValue: "PENDING")
    public static let failed = OperationStatus(rawValue: "FAILED")

    public var description: String { rawValue }
}

/// Whether a file or folder is live (`OK`) or in the trash (`DELETED`).
public struct ItemState: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let ok = ItemState(rawValue: "OK")
    public static let deleted = ItemState(rawValue: "DELETED")

    public var description: String { rawValue }
}

