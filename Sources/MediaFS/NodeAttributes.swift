import Foundation

/// An inode number as FUSE knows it; 1 is the root.
public typealias InodeNumber = UInt64

/// What `stat` shows of a node.
public struct NodeAttributes: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case directory, file }

    public var inode: InodeNumber
    public var kind: Kind
    public var size: Int64
    /// Permission bits (e.g. 0o644).
    public var permissions: UInt32
    public var links: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var modified: Date
    public var changed: Date
    public var accessed: Date
    /// Preferred I/O size: 1 MiB, so that cp uses large writes.
    public var blockSize: UInt32 = 1 << 20

    public init(
        inode: InodeNumber, kind: Kind, size: Int64, permissions: UInt32, links: UInt32, uid: UInt32, gid: UInt32,
        modified: Date, changed: Date, accessed: Date
    ) {
        self.inode = inode
        self.kind = kind
        self.size = size
        self.permissions = permissions
        self.links = links
        self.uid = uid
        self.gid = gid
        self.modified = modified
        self.changed = changed
        self.accessed = accessed
    }
}

/// A lookup answer: attributes and how long the kernel may keep them.
public struct EntryReply: Sendable {
    public var attributes: NodeAttributes
    public var entryTTL: Duration
    public var attributeTTL: Duration

    public init(attributes: NodeAttributes, entryTTL: Duration, attributeTTL: Duration) {
        self.attributes = attributes
        self.entryTTL = entryTTL
        self.attributeTTL = attributeTTL
    }
}

/// One entry of a directory listing, with its position for the next `readdir`.
public struct DirectoryEntry: Sendable {
    public var name: String
    public var attributes: NodeAttributes
    /// Offset of the entry after this one.
    public var nextOffset: Int
    /// `.` and `..` do not count as lookups.
    public var isSelfOrParent: Bool
}

/// Filesystem statistics for `statfs`.
public struct FilesystemStatistics: Sendable {
    public var blockSize: UInt64 = 1 << 20
    public var blocks: UInt64 = 1 << 30
    public var freeBlocks: UInt64 = 1 << 30
    public var files: UInt64 = 1 << 32
    public var freeFiles: UInt64 = 1 << 32
    /// The longest name (bytes) a directory entry may have, as on local filesystems.
    public var nameMax: UInt64 = 255
}

/// The caller of an operation.
public struct RequestContext: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// The caller's umask, applied to the mode of what it creates.
    public var umask: UInt32
    public init(uid: UInt32, gid: UInt32, pid: Int32, umask: UInt32 = 0o022) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.umask = umask
    }
}
