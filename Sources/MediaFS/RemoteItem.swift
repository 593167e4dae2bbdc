import Foundation
import Journal
import MediaManager

/// What the filesystem keeps of a Media Manager folder or file (not the whole descriptor).
struct RemoteItem: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case folder, file }

    var kind: Kind
    var id: String
    var displayName: String
    var size: Int64
    var created: Date
    var updated: Date
    var url: String = ""
    var isPrivate = false
    var hash = ""
    var labels: [String] = []
    var mediaType = ""
    var operationStatus = ""

    /// A file being written: not in the Media Manager until it is finalized.
    var isPending: Bool { id.hasPrefix(RemoteItem.pendingPrefix) }
    static let pendingPrefix = "pending:"

    /// The journal record of a file being written.
    var record: String? { isPending ? String(id.dropFirst(Self.pendingPrefix.count)) : nil }

    /// A file being written, known by its journal record.
    static func pending(_ entry: Journal.Entry) -> RemoteItem {
        var item = RemoteItem(
            folder: Folder(id: "", displayName: entry.displayName, parentFolderId: entry.parentFolderId, createdDate: entry.created, updatedDate: entry.modified ?? entry.created))
        item.kind = .file
        item.id = pendingPrefix + entry.id
        item.size = entry.size
        return item
    }

    /// Key of the id → inode map; folder and file ids live in separate spaces.
    var key: String { (kind == .folder ? "d:" : "f:") + id }

    /// The key of a pending file's item.
    static func pendingKey(_ record: String) -> String { "f:" + pendingPrefix + record }

    init(folder: Folder) {
        self.kind = .folder
        self.id = folder.id
        self.displayName = folder.displayName
        self.size = 0
        self.created = folder.createdDate
        self.updated = folder.updatedDate
    }

    init(file: FileDescriptor) {
        self.kind = .file
        self.id = file.id
        self.displayName = file.displayName
        self.size = file.sizeInBytes
        self.created = file.createdDate
        self.updated = file.updatedDate
        self.url = file.url
        self.isPrivate = file.private
        self.hash = file.hash
        self.labels = file.labels
        self.mediaType = file.mediaType.rawValue
        self.operationStatus = file.operationStatus.rawValue
    }

    /// The mount's root folder, whose details are not listed anywhere.
    static func root(id: String, mounted: Date) -> RemoteItem {
        var item = RemoteItem(folder: Folder(id: id, displayName: "", parentFolderId: "", createdDate: mounted, updatedDate: mounted))
        item.kind = .folder
        return item
    }
}

/// An inode: a remote item and where it is in the tree.
struct Node: Sendable {
    let inode: InodeNumber
    var item: RemoteItem
    var parent: InodeNumber
    var name: String
    /// Lookups the kernel holds (entries replied minus forgets).
    var lookups: UInt64 = 0
    /// When `item` was last fetched.
    var fetched: ContinuousClock.Instant
    /// Removed from its folder here (deleted or replaced); kept while the kernel holds it.
    var detached = false
    /// Permission bits set by chmod, kept for the life of the mount.
    var mode: UInt32?
    /// Modification and access times set by utimensat, shown instead of the service's.
    var localModified: Date?
    var localAccessed: Date?
    /// When its attributes last changed here (ctime), if they did.
    var changed: Date?
    var uid: UInt32?
    var gid: UInt32?
}

/// A folder's entries as last listed.
struct Listing: Sendable {
    var names: [String]
    var children: [String: InodeNumber]
    var fetched: ContinuousClock.Instant
}
