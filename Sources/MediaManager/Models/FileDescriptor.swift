import Foundation

/// A file in the Media Manager, as the REST API describes it.
public struct FileDescriptor: Sendable, Hashable, Codable {
    /// The file's id, e.g. `2acbb8_86485e224dd84143ba2f228777217bb7~mv2.jpeg`.
    public var id: String
    /// The name shown in the Media Manager; not unique, and may contain any character.
    public var displayName: String
    /// Where the file's bytes are served (a private file answers 403 there; see download URLs).
    public var url: String
    /// The folder that holds the file (`media-root` at the top, `trash-root` once deleted).
    public var parentFolderId: String
    /// MD5 of the content as lower-case hex; empty while the file is pending.
    public var hash: String
    /// Size of the content in bytes (a string on the wire).
    public var sizeInBytes: Int64
    /// Whether the file is only reachable through signed download URLs.
    public var `private`: Bool
    public var mediaType: MediaType
    /// Type-specific media details, passed through as JSON.
    public var media: JSONValue?
    public var operationStatus: OperationStatus
    public var thumbnailUrl: String?
    public var sourceUrl: String?
    public var labels: [String]
    public var createdDate: Date
    public var updatedDate: Date
    public var siteId: String?
    public var state: ItemState?
    public var internalTags: [String]?

    public init(
        id: String,
        displayName: String,
        url: String,
        parentFolderId: String,
        hash: String,
        sizeInBytes: Int64,
        private: Bool,
        mediaType: MediaType,
        media: JSONValue? = nil,
        operationStatus: OperationStatus,
        thumbnailUrl: String? = nil,
        sourceUrl: String? = nil,
        labels: [String] = [],
        createdDate: Date,
        updatedDate: Date,
        siteId: String? = nil,
        state: ItemState? = .ok,
        internalTags: [String]? = nil
    ) {
        self.id = id
        self.displayName = displayName
        self.url = url
        self.parentFolderId = parentFolderId
        self.hash = hash
        self.sizeInBytes = sizeInBytes
        self.private = `private`
        self.mediaType = mediaType
        self.media = media
        self.operationStatus = operationStatus
        self.thumbnailUrl = thumbnailUrl
        self.sourceUrl = sourceUrl
        self.labels = labels
        self.createdDate = createdDate
        self.updatedDate = updatedDate
        self.siteId = siteId
        self.state = state
        self.internalTags = internalTags
    }

    enum CodingKeys: String, CodingKey {
        case id, displayName, url, parentFolderId, hash, sizeInBytes, `private`, mediaType, media
        case operationStatus, thumbnailUrl, sourceUrl, labels, createdDate, updatedDate, siteId, state
        case internalTags
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
        self.url = try c.decodeIfPresent(String.self, forKey: .url) ?? ""
        self.parentFolderId = try c.decodeIfPresent(String.self, forKey: .parentFolderId) ?? FolderID.mediaRoot
        self.hash = try c.decodeIfPresent(String.self, forKey: .hash) ?? ""
        self.sizeInBytes = try c.decodeInt64StringIfPresent(forKey: .sizeInBytes) ?? 0
        self.private = try c.decodeIfPresent(Bool.self, forKey: .private) ?? false
        self.mediaType = try c.decodeIfPresent(MediaType.self, forKey: .mediaType) ?? .unknown
        self.media = try c.decodeIfPresent(JSONValue.self, forKey: .media)
        self.operationStatus = try c.decodeIfPresent(OperationStatus.self, forKey: .operationStatus) ?? .ready
        self.thumbnailUrl = try c.decodeIfPresent(String.self, forKey: .thumbnailUrl)
        self.sourceUrl = try c.decodeIfPresent(String.self, forKey: .sourceUrl)
        self.labels = try c.decodeIfPresent([String].self, forKey: .labels) ?? []
        self.createdDate = try c.decodeIfPresent(Date.self, forKey: .createdDate) ?? Date(timeIntervalSince1970: 0)
        self.updatedDate = try c.decodeIfPresent(Date.self, forKey: .updatedDate) ?? self.createdDate
        self.siteId = try c.decodeIfPresent(String.self, forKey: .siteId)
        self.state = try c.decodeIfPresent(ItemState.self, forKey: .state)
        self.internalTags = try c.decodeIfPresent([String].self, forKey: .internalTags)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(displayName, forKey: .displayName)
        try c.encode(url, forKey: .url)
        try c.encode(parentFolderId, forKey: .parentFolderId)
        try c.encode(hash, forKey: .hash)
        try c.encode(String(sizeInBytes), forKey: .sizeInBytes)
        try c.encode(`private`, forKey: .private)
        try c.encode(mediaType, forKey: .mediaType)
        try c.encode(media ?? .null, forKey: .media)
        try c.encode(operationStatus, forKey: .operationStatus)
        try c.encode(thumbnailUrl, forKey: .thumbnailUrl)
        try c.encode(sourceUrl, forKey: .sourceUrl)
        try c.encode(labels, forKey: .labels)
        try c.encode(createdDate, forKey: .createdDate)
        try c.encode(updatedDate, forKey: .updatedDate)
        try c.encodeIfPresent(siteId, forKey: .siteId)
        try c.encodeIfPresent(state, forKey: .state)
        try c.encodeIfPresent(internalTags, forKey: .internalTags)
    }
}
