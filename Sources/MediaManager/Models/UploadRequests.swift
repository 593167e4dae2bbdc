/// The upload protocol of a resumable upload URL. The service knows one: `TUS`.
public struct UploadProtocol: RawRepresentable, Sendable, Hashable, Codable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let tus = UploadProtocol(rawValue: "TUS")
}

/// Options shared by both upload URL requests.
public struct UploadOptions: Sendable, Hashable {
    /// A name that tells the file type; the display name unless the upload gives another.
    public var fileName: String?
    /// The expected size, if known.
    public var sizeInBytes: Int64?
    /// The target folder (default `media-root`).
    public var parentFolderId: String?
    /// Whether the file is private. It cannot be changed after the upload.
    public var `private`: Bool?
    public var labels: [String]?
    /// A folder path such as `/videos/2024` under `parentFolderId`; missing folders are created.
    public var filePath: String?

    public init(
        fileName: String? = nil,
        sizeInBytes: Int64? = nil,
        parentFolderId: String? = nil,
        private: Bool? = nil,
        labels: [String]? = nil,
        filePath: String? = nil
    ) {
        self.fileName = fileName
        self.sizeInBytes = sizeInBytes
        self.parentFolderId = parentFolderId
        self.private = `private`
        self.labels = labels
        self.filePath = filePath
    }
}

/// `POST /site-media/v1/files/generate-upload-url` and `…/generate-resumable-upload-url` body.
public struct GenerateUploadUrlRequest: Sendable, Hashable, Codable {
    public var mimeType: String
    public var fileName: String?
    public var sizeInBytes: Int64?
    public var parentFolderId: String?
    public var `private`: Bool?
    public var labels: [String]?
    public var filePath: String?
    /// Only on the resumable request.
    public var uploadProtocol: UploadProtocol?

    public init(mimeType: String, options: UploadOptions = UploadOptions(), uploadProtocol: UploadProtocol? = nil) {
        self.mimeType = mimeType
        self.fileName = options.fileName
        self.sizeInBytes = options.sizeInBytes
        self.parentFolderId = options.parentFolderId
        self.private = options.private
        self.labels = options.labels
        self.filePath = options.filePath
        self.uploadProtocol = uploadProtocol
    }

    enum CodingKeys: String, CodingKey {
        case mimeType, fileName, sizeInBytes, parentFolderId, `private`, labels, filePath, uploadProtocol
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.mimeType = try c.decode(String.self, forKey: .mimeType)
        self.fileName = try c.decodeIfPresent(String.self, forKey: .fileName)
        self.sizeInBytes = try c.decodeInt64StringIfPresent(forKey: .sizeInBytes)
        self.parentFolderId = try c.decodeIfPresent(String.self, forKey: .parentFolderId)
        self.private = try c.decodeIfPresent(Bool.self, forKey: .private)
        self.labels = try c.decodeIfPresent([String].self, forKey: .labels)
        self.filePath = try c.decodeIfPresent(String.self, forKey: .filePath)
        self.uploadProtocol = try c.decodeIfPresent(UploadProtocol.self, forKey: .uploadProtocol)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mimeType, forKey: .mimeType)
        try c.encodeIfPresent(fileName, forKey: .fileName)
        try c.encodeIfPresent(sizeInBytes.map(String.init), forKey: .sizeInBytes)
        try c.encodeIfPresent(parentFolderId, forKey: .parentFolderId)
        try c.encodeIfPresent(`private`, forKey: .private)
        try c.encodeIfPresent(labels, forKey: .labels)
        try c.encodeIfPresent(filePath, forKey: .filePath)
        try c.encodeIfPresent(uploadProtocol, forKey: .uploadProtocol)
    }
}

/// Response of `generate-upload-url`.
public struct GenerateUploadUrlResponse: Sendable, Hashable, Codable {
    /// Where to `PUT` the bytes (`?filename=NAME`); carries its own single-use token.
    public var uploadUrl: String
    public init(uploadUrl: String) { self.uploadUrl = uploadUrl }
}

/// Response of `generate-resumable-upload-url`.
public struct GenerateResumableUploadUrlResponse: Sendable, Hashable, Codable {
    public var uploadProtocol: UploadProtocol
    /// The tus creation URL; also the base of the finalize URL `uploadUrl/uploadToken`.
    public var uploadUrl: String
    /// Single-use token, sent as `token` in tus `Upload-Metadata` and in the finalize path.
    public var uploadToken: String

    public init(uploadProtocol: UploadProtocol = .tus, uploadUrl: String, uploadToken: String) {
        self.uploadProtocol = uploadProtocol
        self.uploadUrl = uploadUrl
        self.uploadToken = uploadToken
    }
}

/// Body of the upload host's answers: `{"file": descriptor}`, also used by get and update.
public struct FileResponse: Sendable, Hashable, Codable {
    public var file: FileDescriptor
    public init(file: FileDescriptor) { self.file = file }
}

/// `{"files": [...]}` of `get-files`.
public struct FilesResponse: Sendable, Hashable, Codable {
    public var files: [FileDescriptor]
    public init(files: [FileDescriptor]) { self.files = files }
}
