import Foundation

/// How the filesystem maps and caches the Media Manager.
public struct FilesystemConfiguration: Sendable {
    /// The folder shown as the mount's root (`media-root`, or a sub-folder's id).
    public var rootFolderId: String
    /// How long the kernel may cache a name → inode answer.
    public var entryTTL: Duration
    /// How long the kernel (and we) may cache attributes.
    public var attributeTTL: Duration
    /// How long a folder listing is reused before it is fetched again; changes made by others
    /// show up after at most this long.
    public var directoryTTL: Duration
    /// How long the kernel may remember that a name does not exist.
    public var negativeTTL: Duration
    /// Owner of files and directories that have no stored owner.
    public var uid: UInt32
    public var gid: UInt32
    /// Permission bits of files and directories that have no stored mode.
    public var fileMode: UInt32
    public var directoryMode: UInt32
    /// Refuse every change with EROFS (a key with only the Read scope).
    public var readOnly: Bool
    /// Why the mount is read-only, for the log line of each refused change.
    public var readOnlyReason: String?
    /// Page size of folder listings.
    public var listPageSize: Int
    /// First and largest read-ahead window of a sequential reader.
    public var readAheadInitial: Int
    public var readAheadMaximum: Int
    /// Timeout of one content request.
    public var readTimeout: Duration
    /// Called (off the request path) when the kernel forgot a large part of the tree and the
    /// inode table shrank: the composition root may hand freed memory back to the system
    /// (e.g. glibc's `malloc_trim`), which the allocator does not do by itself for small blocks.
    public var releaseMemory: (@Sendable () -> Void)?

    public init(
        rootFolderId: String = "media-root",
        entryTTL: Duration = .seconds(10),
        attributeTTL: Duration = .seconds(10),
        directoryTTL: Duration = .seconds(10),
        negativeTTL: Duration = .milliseconds(500),
        uid: UInt32 = UInt32(getuid()),
        gid: UInt32 = UInt32(getgid()),
        fileMode: UInt32 = 0o644,
        directoryMode: UInt32 = 0o755,
        readOnly: Bool = false,
        readOnlyReason: String? = nil,
        listPageSize: Int = 1000,
        readAheadInitial: Int = 1 << 20,
        readAheadMaximum: Int = 8 << 20,
        readTimeout: Duration = .seconds(60)
    ) {
        self.rootFolderId = rootFolderId
        self.entryTTL = entryTTL
        self.attributeTTL = attributeTTL
        self.directoryTTL = directoryTTL
        self.negativeTTL = negativeTTL
        self.uid = uid
        self.gid = gid
        self.fileMode = fileMode
        self.directoryMode = directoryMode
        self.readOnly = readOnly
        self.readOnlyReason = readOnlyReason
        self.listPageSize = listPageSize
        self.readAheadInitial = readAheadInitial
        self.readAheadMaximum = readAheadMaximum
        self.readTimeout = readTimeout
    }
}
