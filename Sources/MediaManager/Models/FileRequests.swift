import Foundation

/// A field mask, as `update-file-descriptor` and folder update take it.
///
/// The service's documentation shows `{"paths": ["file.displayName"]}`, while the live service is
/// reported to accept only a comma-separated string (`"displayName,labels"`). This type decodes all
/// three forms (string, array, object) and encodes the string form.
public struct FieldMask: Sendable, Hashable, Codable {
    /// Top-level field names, without any `file.`/`folder.` prefix.
    public var fields: [String]

    public init(_ fields: [String]) { self.fields = fields }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw: [String]
        if let text = try? container.decode(String.self) {
            raw = text.split(separator: ",").map(String.init)
        } else if let list = try? container.decode([String].self) {
            raw = list
        } else {
            struct Paths: Decodable { var paths: [String] }
            raw = try container.decode(Paths.self).paths
        }
        self.fields = raw.map { path in
            let trimmed = path.trimmingCharacters(in: .whitespaces)
            return trimmed.split(separator: ".").last.map(String.init) ?? trimmed
        }.filter { !$0.isEmpty }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(fields.joined(separator: ","))
    }

    public func contains(_ field: String) -> Bool { fields.contains(field) }
}

/// The writable part of a file descriptor in an update.
public struct FileUpdate: Sendable, Hashable, Codable {
    public var id: String?
    public var displayName: String?
    public var parentFolderId: String?
    public var labels: [String]?
    public init(id: String? = nil, displayName: String? = nil, parentFolderId: String? = nil, labels: [String]? = nil) {
        self.id = id
        self.displayName = displayName
        self.parentFolderId = parentFolderId
        self.labels = labels
    }
}

/// `PATCH /site-media/v1/files/update-file-descriptor` (or `files/{id}/update`) body.
public struct UpdateFileDescriptorRequest: Sendable, Hashable, Codable {
    public var file: FileUpdate
    public var fieldMask: FieldMask?
    public init(file: FileUpdate, fieldMask: FieldMask?) {
        self.file = file
        self.fieldMask = fieldMask
    }
}

/// `POST /site-media/v1/files/get-files` body.
public struct GetFilesRequest: Sendable, Hashable, Codable {
    public var fileIds: [String]
    public init(fileIds: [String]) { self.fileIds = fileIds }
}

/// `POST /site-media/v1/bulk/files/delete` body.
public struct BulkDeleteFilesRequest: Sendable, Hashable, Codable {
    public var fileIds: [String]
    public var permanent: Bool?
    public init(fileIds: [String], permanent: Bool? = nil) {
        self.fileIds = fileIds
        self.permanent = permanent
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.fileIds = try c.decode([String].self, forKey: .fileIds)
        self.permanent = try c.decodeLenientBoolIfPresent(forKey: .permanent)
    }
}

/// `POST /site-media/v1/bulk/trash-bin/files/restore` body.
public struct BulkRestoreFilesRequest: Sendable, Hashable, Codable {
    public var fileIds: [String]
    public init(fileIds: [String]) { self.fileIds = fileIds }
}

/// `POST /site-media/v1/files/{id}/generate-download-url` body.
public struct GenerateFileDownloadUrlRequest: Sendable, Hashable, Codable {
    public var downloadFileName: String?
    public var expirationInMinutes: Int?
    public init(downloadFileName: String? = nil, expirationInMinutes: Int? = nil) {
        self.downloadFileName = downloadFileName
        self.expirationInMinutes = expirationInMinutes
    }
}

/// Response of `generate-download-url`.
public struct GenerateFileDownloadUrlResponse: Sendable, Hashable, Codable {
    public struct DownloadUrl: Sendable, Hashable, Codable {
        public var url: String
        public var assetKey: String
        public init(url: String, assetKey: String) {
            self.url = url
            self.assetKey = assetKey
        }
    }
    public var downloadUrls: [DownloadUrl]
    public init(downloadUrls: [DownloadUrl]) { self.downloadUrls = downloadUrls }
}

/// An empty JSON object, the answer of bulk operations.
public struct EmptyResponse: Sendable, Hashable, Codable {
    public init() {}
}

extension KeyedDecodingContainer {
    /// Decodes a boolean that some clients send as a string (`"permanent": "true"` in the docs).
    func decodeLenientBoolIfPresent(forKey key: Key) throws -> Bool? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        if let text = try? self.decode(String.self, forKey: key) {
            switch text.lowercased() {
            case "true": return true
            case "false": return false
            default:
                throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "Expected a boolean")
            }
        }
        return try self.decode(Bool.self, forKey: key)
    }
}

