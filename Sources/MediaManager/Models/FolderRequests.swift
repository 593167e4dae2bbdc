/// `POST /site-media/v1/folders` body.
public struct CreateFolderRequest: Sendable, Hashable, Codable {
    public var displayName: String
    public var parentFolderId: String?
    public init(displayName: String, parentFolderId: String? = nil) {
        self.displayName = displayName
        self.parentFolderId = parentFolderId
    }
}

/// `{"folder": folder}`: the answer of create, get and update.
public struct FolderResponse: Sendable, Hashable, Codable {
    public var folder: Folder
    public init(folder: Folder) { self.folder = folder }
}

/// The writable part of a folder in an update.
public struct FolderUpdate: Sendable, Hashable, Codable {
    public var id: String?
    public var displayName: String?
    public var parentFolderId: String?
    public init(id: String? = nil, displayName: String? = nil, parentFolderId: String? = nil) {
        self.id = id
        self.displayName = displayName
        self.parentFolderId = parentFolderId
    }
}

/// `PATCH /site-media/v1/folders/{id}` body.
public struct UpdateFolderRequest: Sendable, Hashable, Codable {
    public var folder: FolderUpdate
    public var fieldMask: FieldMask?
    public init(folder: FolderUpdate, fieldMask: FieldMask?) {
        self.folder = folder
        self.fieldMask = fieldMask
    }
}

/// `POST /site-media/v1/bulk/folders/delete` body.
public struct BulkDeleteFoldersRequest: Sendable, Hashable, Codable {
    public var folderIds: [String]
    public var permanent: Bool?
    public init(folderIds: [String], permanent: Bool? = nil) {
        self.folderIds = folderIds
        self.permanent = permanent
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.folderIds = try c.decode([String].self, forKey: .folderIds)
        self.permanent = try c.decodeLenientBoolIfPresent(forKey: .permanent)
    }
}

/// `POST /site-media/v1/bulk/trash-bin/folders/restore` body.
public struct BulkRestoreFoldersRequest: Sendable, Hashable, Codable {
    public var folderIds: [String]
    public init(folderIds: [String]) { self.folderIds = folderIds }
}
