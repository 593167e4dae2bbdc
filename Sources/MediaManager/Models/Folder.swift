import Foundation

/// Well-known folder ids.
public enum FolderID {
    /// The top of the site's media ("Site Files").
    public static let mediaRoot = "media-root"
    /// The top of the trash.
    public static let trashRoot = "trash-root"
    /// The top of visitor uploads.
    public static let visitorUploads = "visitor-uploads"
}

/// A folder in the Media Manager.
public struct Folder: Sendable, Hashable, Codable {
    public var id: String
    public var displayName: String
    public var parentFolderId: String
    public var createdDate: Date
    public var updatedDate: Date
    public var state: ItemState?

    public init(
        id: String,
        displayName: String,
        parentFolderId: String,
        createdDate: Date,
        updatedDate: Date,
        state: ItemState? = .ok
    ) {
        self.id = id
        self.displayName = displayName
        self.parentFolderId = parentFolderId
        self.createdDate = createdDate
        self.updatedDate = updatedDate
        self.state = state
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
        self.parentFolderId = try c.decodeIfPresent(String.self, forKey: .parentFolderId) ?? FolderID.mediaRoot
        self.createdDate = try c.decodeIfPresent(Date.self, forKey: .createdDate) ?? Date(timeIntervalSince1970: 0)
        self.updatedDate = try c.decodeIfPresent(Date.self, forKey: .updatedDate) ?? self.createdDate
        self.state = try c.decodeIfPresent(ItemState.self, forKey: .state)
    }
}
