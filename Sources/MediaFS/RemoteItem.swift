import Foundation
import Journal
import MediaManager
import Synchronization

/// What the filesystem keeps of a Media Manager folder or file (not the whole descriptor).
///
/// Kept small, because the filesystem holds one for every item the kernel remembers (a `find`
/// over a large library remembers them all): the content URL is stored as an interned prefix
/// plus the id when it has that shape, and the MD5 as 16 bytes.
struct RemoteItem: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case folder, file }

    var kind: Kind
    var id: String
    var displayName: String
    var size: Int64
    var created: Date
    var updated: Date
    private var urlStorage = CompactURL.none
    var isPrivate = false
    private var hashStorage = CompactHash.empty
    var labels: [String] = []
    var mediaType = ""
    var operationStatus = ""

    /// Where the content is served.
    var url: String {
        get { urlStorage.url(id: id) }
        set { urlStorage = CompactURL(newValue, id: id) }
    }

    /// MD5 of the content as lower-case hex (empty while unknown).
    var hash: String {
        get { hashStorage.text }
        set { hashStorage = CompactHash(newValue) }
    }

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
    var key: ItemKey { ItemKey(folder: kind == .folder, id: id) }

    /// The key of a pending file's item.
    static func pendingKey(_ record: String) -> ItemKey { ItemKey(folder: false, id: pendingPrefix + record) }

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

/// The key of an item in the id → inode map (folder and file ids live in separate spaces); it
/// shares the id's storage.
struct ItemKey: Hashable, Sendable {
    let folder: Bool
    let id: String
}

/// A content URL: most are a common prefix followed by the file id.
private enum CompactURL: Sendable, Equatable {
    case none
    case prefixed(UInt8)
    case full(String)

    init(_ url: String, id: String) {
        guard !url.isEmpty else {
            self = .none
            return
        }
        if !id.isEmpty, url.hasSuffix(id), let index = URLPrefixes.intern(String(url.dropLast(id.utf8.count))) {
            self = .prefixed(index)
        } else {
            self = .full(url)
        }
    }

    func url(id: String) -> String {
        switch self {
        case .none: ""
        case .prefixed(let index): URLPrefixes.prefix(index) + id
        case .full(let url): url
        }
    }
}

/// The URL prefixes seen (a handful per Media Manager), shared by every item.
private enum URLPrefixes {
    private static let table = Mutex<[String]>([])

    static func intern(_ prefix: String) -> UInt8? {
        table.withLock { table in
            if let index = table.firstIndex(of: prefix) { return UInt8(index) }
            guard table.count < 64 else { return nil }
            table.append(prefix)
            return UInt8(table.count - 1)
        }
    }

    static func prefix(_ index: UInt8) -> String {
        table.withLock { $0[Int(index)] }
    }
}

/// An MD5 in 16 bytes (other text kept as it is).
private enum CompactHash: Sendable, Equatable {
    case empty
    case md5(UInt64, UInt64)
    case text(String)

    init(_ text: String) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else {
            self = .empty
            return
        }
        guard bytes.count == 32, let high = UInt64(text.prefix(16), radix: 16), let low = UInt64(text.suffix(16), radix: 16),
            text == text.lowercased()
        else {
            self = .text(text)
            return
        }
        self = .md5(high, low)
    }

    var text: String {
        switch self {
        case .empty: return ""
        case .md5(let high, let low):
            let a = String(high, radix: 16)
            let b = String(low, radix: 16)
            return String(repeating: "0", count: 16 - a.count) + a + String(repeating: "0", count: 16 - b.count) + b
        case .text(let text): return text
        }
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
    /// What was set here (chmod, chown, utimensat): rare, so kept out of line.
    private var local: LocalAttributes?

    init(inode: InodeNumber, item: RemoteItem, parent: InodeNumber, name: String, lookups: UInt64 = 0, fetched: ContinuousClock.Instant) {
        self.inode = inode
        self.item = item
        self.parent = parent
        self.name = name
        self.lookups = lookups
        self.fetched = fetched
    }

    /// Permission bits set by chmod.
    var mode: UInt32? {
        get { local?.mode }
        set { change { $0.mode = newValue } }
    }
    var uid: UInt32? {
        get { local?.uid }
        set { change { $0.uid = newValue } }
    }
    var gid: UInt32? {
        get { local?.gid }
        set { change { $0.gid = newValue } }
    }
    /// Modification and access times set by utimensat, shown instead of the service's.
    var localModified: Date? {
        get { local?.modified }
        set { change { $0.modified = newValue } }
    }
    var localAccessed: Date? {
        get { local?.accessed }
        set { change { $0.accessed = newValue } }
    }
    /// When its attributes last changed here (ctime), if they did.
    var changed: Date? {
        get { local?.changed }
        set { change { $0.changed = newValue } }
    }

    private mutating func change(_ body: (inout LocalAttributes.Values) -> Void) {
        var values = local?.values ?? LocalAttributes.Values()
        body(&values)
        local = LocalAttributes(values)
    }
}

/// Attributes set through the mount (immutable; a change makes a new one).
final class LocalAttributes: Sendable {
    struct Values: Sendable {
        var mode: UInt32?
        var uid: UInt32?
        var gid: UInt32?
        var modified: Date?
        var accessed: Date?
        var changed: Date?
    }

    let values: Values
    var mode: UInt32? { values.mode }
    var uid: UInt32? { values.uid }
    var gid: UInt32? { values.gid }
    var modified: Date? { values.modified }
    var accessed: Date? { values.accessed }
    var changed: Date? { values.changed }

    init(_ values: Values) { self.values = values }
}

/// A folder's entries as last listed, in listing order. Removals leave a gap in `order` that
/// is skipped (and compacted once gaps are many), so that deleting many files of a large folder
/// stays linear.
struct Listing: Sendable {
    private var order: [String]
    private(set) var children: [String: InodeNumber]
    var fetched: ContinuousClock.Instant
    private var gaps = 0

    init(names: [String], children: [String: InodeNumber], fetched: ContinuousClock.Instant) {
        self.order = names
        self.children = children
        self.fetched = fetched
    }

    /// The names, in order.
    var names: [String] {
        guard gaps > 0 else { return order }
        var seen = Set<String>()
        return order.filter { children[$0] != nil && seen.insert($0).inserted }
    }

    var count: Int { children.count }

    mutating func add(_ name: String, _ inode: InodeNumber) {
        if children.updateValue(inode, forKey: name) == nil { order.append(name) }
    }

    @discardableResult
    mutating func remove(_ name: String) -> InodeNumber? {
        guard let inode = children.removeValue(forKey: name) else { return nil }
        gaps += 1
        if gaps > 64 && gaps > order.count / 2 {
            order = names
            gaps = 0
        }
        return inode
    }
}
