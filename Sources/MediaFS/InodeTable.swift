import Foundation

/// Inodes, names and listings. Inode numbers are stable for the life of the mount: an id keeps
/// its number even after the kernel forgets it.
struct InodeTable: Sendable {
    static let root: InodeNumber = 1

    private(set) var nodes: [InodeNumber: Node] = [:]
    private var inodeByKey: [String: InodeNumber] = [:]
    private var nextInode: InodeNumber = 2
    var listings: [InodeNumber: Listing] = [:]
    /// Files of each folder saved (pending → saved) since its listing was last set: a listing read
    /// before they were saved keeps them.
    private var saved: [InodeNumber: [InodeNumber]] = [:]
    /// Bumped on every local change of a folder, so that a listing fetched meanwhile is not
    /// taken as the truth (it may predate the change).
    var generations: [InodeNumber: UInt64] = [:]

    init(root: RemoteItem, now: ContinuousClock.Instant) {
        nodes[Self.root] = Node(inode: Self.root, item: root, parent: Self.root, name: "", lookups: 1, fetched: now)
        inodeByKey[root.key] = Self.root
    }

    subscript(inode: InodeNumber) -> Node? {
        get { nodes[inode] }
        set { nodes[inode] = newValue }
    }

    /// The inode an item key (``RemoteItem/key``) has, if any.
    func inode(forKey key: String) -> InodeNumber? { inodeByKey[key] }

    /// The inode of `item`, created if new, updated in place otherwise.
    mutating func upsert(_ item: RemoteItem, parent: InodeNumber, name: String, now: ContinuousClock.Instant) -> InodeNumber {
        if let inode = inodeByKey[item.key], var node = nodes[inode] {
            node.item = item
            node.parent = parent
            node.name = name
            node.fetched = now
            node.detached = false
            nodes[inode] = node
            return inode
        }
        let inode = inodeByKey[item.key] ?? nextInode
        if inode == nextInode { nextInode += 1 }
        inodeByKey[item.key] = inode
        nodes[inode] = Node(inode: inode, item: item, parent: parent, name: name, fetched: now)
        return inode
    }

    /// Gives an inode a new remote item (a file being written, finalized) under the same number.
    mutating func rekey(_ inode: InodeNumber, to item: RemoteItem, now: ContinuousClock.Instant) {
        guard var node = nodes[inode] else { return }
        inodeByKey[node.item.key] = nil
        if let other = inodeByKey[item.key], other != inode, let stale = nodes[other] {
            // A listing met the file under another inode first: that entry goes.
            if var listing = listings[stale.parent], listing.children[stale.name] == other {
                listing.children[stale.name] = nil
                listing.names.removeAll { $0 == stale.name }
                listings[stale.parent] = listing
            }
            detach(other)
        }
        inodeByKey[item.key] = inode
        node.item = item
        node.fetched = now
        nodes[inode] = node
    }

    /// Makes a folder's listing stale, so that the next access fetches it again.
    mutating func invalidate(_ directory: InodeNumber, now: ContinuousClock.Instant) {
        listings[directory]?.fetched = now - .seconds(86_400)
    }

    /// A file of its folder was saved.
    mutating func noteSaved(_ inode: InodeNumber) {
        guard let parent = nodes[inode]?.parent, listings[parent] != nil else { return }
        saved[parent, default: []].append(inode)
    }

    /// The files saved in `directory` since its listing was last set.
    mutating func takeSaved(_ directory: InodeNumber) -> [InodeNumber] {
        saved.removeValue(forKey: directory) ?? []
    }

    mutating func bumpGeneration(_ directory: InodeNumber) {
        generations[directory, default: 0] += 1
    }

    func generation(_ directory: InodeNumber) -> UInt64 { generations[directory, default: 0] }

    /// What the kernel may have cached that a new listing changed.
    enum Change: Sendable, Equatable {
        /// The name now means another item, or nothing.
        case entry(parent: InodeNumber, name: String)
        /// The item's attributes (size, time) changed.
        case inode(InodeNumber)
    }

    /// Replaces a folder's listing; children no longer there are detached. Returns what changed
    /// since the previous listing, for the kernel's caches.
    @discardableResult
    mutating func setListing(_ directory: InodeNumber, entries: [(name: String, item: RemoteItem)], now: ContinuousClock.Instant) -> [Change] {
        let previous = listings[directory]
        var names: [String] = []
        var children: [String: InodeNumber] = [:]
        var changes: [Change] = []
        names.reserveCapacity(entries.count)
        for entry in entries {
            let before = inodeByKey[entry.item.key].flatMap { nodes[$0] }
            let inode = upsert(entry.item, parent: directory, name: entry.name, now: now)
            if let before, before.item.size != entry.item.size || before.item.updated != entry.item.updated || before.item.hash != entry.item.hash {
                changes.append(.inode(inode))
            }
            names.append(entry.name)
            children[entry.name] = inode
        }
        if let previous {
            let kept = Set(children.values)
            for (name, inode) in previous.children where children[name] != inode {
                changes.append(.entry(parent: directory, name: name))
                if !kept.contains(inode) { detach(inode) }
            }
        }
        listings[directory] = Listing(names: names, children: children, fetched: now)
        return changes
    }

    /// Adds one child to a cached listing (after a local create). A saved item makes a listing
    /// being fetched stale; a file being written does not (listings take those from the
    /// journal).
    mutating func addChild(_ directory: InodeNumber, name: String, item: RemoteItem, now: ContinuousClock.Instant) -> InodeNumber {
        let inode = upsert(item, parent: directory, name: name, now: now)
        if var listing = listings[directory] {
            if listing.children[name] == nil { listing.names.append(name) }
            listing.children[name] = inode
            listings[directory] = listing
        }
        if !item.isPending { bumpGeneration(directory) }
        return inode
    }

    /// Removes one child from a cached listing (after a local delete or a move away).
    mutating func removeChild(_ directory: InodeNumber, name: String, detach shouldDetach: Bool) {
        var pending = false
        if var listing = listings[directory], let inode = listing.children.removeValue(forKey: name) {
            listing.names.removeAll { $0 == name }
            listings[directory] = listing
            pending = nodes[inode]?.item.isPending ?? false
            if shouldDetach { detach(inode) }
        }
        if !pending { bumpGeneration(directory) }
    }

    /// Children of `directory` that are files being written (not in the Media Manager yet).
    func pendingChildren(_ directory: InodeNumber) -> [(String, InodeNumber)] {
        guard let listing = listings[directory] else { return [] }
        return listing.names.compactMap { name in
            guard let inode = listing.children[name], nodes[inode]?.item.isPending == true else { return nil }
            return (name, inode)
        }
    }

    mutating func detach(_ inode: InodeNumber) {
        guard var node = nodes[inode] else { return }
        node.detached = true
        nodes[inode] = node
        if node.lookups == 0 { drop(inode) }
    }

    /// The kernel forgot `count` lookups of `inode`.
    mutating func forget(_ inode: InodeNumber, count: UInt64) {
        guard inode != Self.root, var node = nodes[inode] else { return }
        node.lookups = node.lookups > count ? node.lookups - count : 0
        nodes[inode] = node
        if node.lookups == 0 && node.detached { drop(inode) }
    }

    mutating func lookedUp(_ inode: InodeNumber) {
        nodes[inode]?.lookups += 1
    }

    /// Frees a node's details; its number stays reserved for its id.
    private mutating func drop(_ inode: InodeNumber) {
        guard inode != Self.root else { return }
        if let node = nodes.removeValue(forKey: inode) {
            listings[inode] = nil
            generations[inode] = nil
            saved[inode] = nil
            _ = node
        }
    }
}
