import Foundation

/// Inodes, names and listings, bounded: a node lives while the kernel holds it (its lookups) or
/// a cached listing names it; listings are kept for the most recently used folders only. What
/// the kernel forgot and no listing holds is dropped, so a `find` over a large library costs
/// memory only while the kernel remembers it. Inode numbers are stable while the kernel holds
/// them; an item met again after it was dropped gets a new number.
struct InodeTable: Sendable {
    static let root: InodeNumber = 1

    private(set) var nodes: [InodeNumber: Node] = [:]
    private var inodeByKey: [ItemKey: InodeNumber] = [:]
    private var nextInode: InodeNumber = 2
    private(set) var listings: [InodeNumber: Listing] = [:]
    /// When each cached listing was last used (a tick), for dropping the least recently used.
    private var listingUse: [InodeNumber: UInt64] = [:]
    private var tick: UInt64 = 0
    /// Entries over all cached listings.
    private var listedEntries = 0
    /// Most listings, and most entries over all listings, kept.
    let maximumListings: Int
    let maximumListedEntries: Int
    /// Files of each folder saved (pending → saved) since its listing was last set: a listing read
    /// before they were saved keeps them.
    /// A set: a file saved twice between two listings is one file.
    private var saved: [InodeNumber: Set<InodeNumber>] = [:]
    /// Bumped on every local change of a saved item in a folder, so that a listing fetched
    /// meanwhile is not taken as the truth (it may predate the change).
    private var generations: [InodeNumber: UInt64] = [:]
    /// How many times the maps were rebuilt smaller (the kernel forgot most of the tree).
    private(set) var compactions = 0

    init(root: RemoteItem, now: ContinuousClock.Instant, maximumListings: Int = 1024, maximumListedEntries: Int = 100_000) {
        self.maximumListings = max(2, maximumListings)
        self.maximumListedEntries = max(1000, maximumListedEntries)
        nodes[Self.root] = Node(inode: Self.root, item: root, parent: Self.root, name: "", lookups: 1, fetched: now)
        inodeByKey[root.key] = Self.root
    }

    subscript(inode: InodeNumber) -> Node? {
        get { nodes[inode] }
        set { nodes[inode] = newValue }
    }

    /// The inode an item key has, if any.
    func inode(forKey key: ItemKey) -> InodeNumber? { inodeByKey[key] }

    // MARK: Items

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
        let inode = nextInode
        nextInode += 1
        inodeByKey[item.key] = inode
        nodes[inode] = Node(inode: inode, item: item, parent: parent, name: name, fetched: now)
        return inode
    }

    /// Gives an inode a new remote item (a file being written, finalized) under the same number.
    /// Returns the name whose inode changed, for the kernel's caches.
    @discardableResult
    mutating func rekey(_ inode: InodeNumber, to item: RemoteItem, now: ContinuousClock.Instant) -> Change? {
        guard var node = nodes[inode] else { return nil }
        var change: Change?
        if inodeByKey[node.item.key] == inode { inodeByKey[node.item.key] = nil }
        if let other = inodeByKey[item.key], other != inode, let stale = nodes[other] {
            // A listing met the item under another inode first. If this inode is still listed,
            // that entry goes; if the listing dropped it (it met the item, not this inode), this
            // inode takes the entry's place: the name stays, under the number the kernel holds.
            if var listing = listings[stale.parent], listing.children[stale.name] == other {
                if !node.detached, listings[node.parent]?.children[node.name] == inode {
                    listing.remove(stale.name)
                    listedEntries -= 1
                } else {
                    listing.add(stale.name, inode)
                    node.parent = stale.parent
                    node.name = stale.name
                    node.detached = false
                }
                listings[stale.parent] = listing
                change = .entry(parent: stale.parent, name: stale.name)
            }
            detach(other)
        }
        inodeByKey[item.key] = inode
        node.item = item
        node.fetched = now
        nodes[inode] = node
        return change
    }

    // MARK: Listings

    /// A folder's cached listing (marked as used).
    mutating func listing(_ directory: InodeNumber) -> Listing? {
        guard let listing = listings[directory] else { return nil }
        tick += 1
        listingUse[directory] = tick
        return listing
    }

    /// Makes a folder's listing stale, so that the next access fetches it again.
    mutating func invalidate(_ directory: InodeNumber, now: ContinuousClock.Instant) {
        listings[directory]?.fetched = now - .seconds(86_400)
    }

    /// A file of its folder was saved.
    mutating func noteSaved(_ inode: InodeNumber) {
        guard let parent = nodes[inode]?.parent, listings[parent] != nil else { return }
        saved[parent, default: []].insert(inode)
    }

    /// The files saved in `directory` since its listing was last set.
    mutating func takeSaved(_ directory: InodeNumber) -> [InodeNumber] {
        Array(saved.removeValue(forKey: directory) ?? [])
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
        children.reserveCapacity(entries.count)
        for entry in entries {
            let before = inodeByKey[entry.item.key].flatMap { nodes[$0] }
            let inode = upsert(entry.item, parent: directory, name: entry.name, now: now)
            if let before, before.item.size != entry.item.size || before.item.updated != entry.item.updated || before.item.hash != entry.item.hash {
                changes.append(.inode(inode))
            }
            names.append(entry.name)
            children[entry.name] = inode
        }
        listings[directory] = Listing(names: names, children: children, fetched: now)
        listedEntries += children.count - (previous?.count ?? 0)
        tick += 1
        listingUse[directory] = tick
        if let previous {
            var kept: Set<InodeNumber>?
            for (name, inode) in previous.children where children[name] != inode {
                changes.append(.entry(parent: directory, name: name))
                if kept == nil { kept = Set(children.values) }
                if nodes[inode]?.parent == directory, !kept!.contains(inode) { detach(inode) }
            }
        }
        trimListings(keeping: directory)
        return changes
    }

    /// Adds one child to a cached listing (after a local create). A saved item makes a listing
    /// being fetched stale; a file being written does not (listings take those from the
    /// journal).
    mutating func addChild(_ directory: InodeNumber, name: String, item: RemoteItem, now: ContinuousClock.Instant) -> InodeNumber {
        let inode = upsert(item, parent: directory, name: name, now: now)
        if var listing = listings[directory] {
            let before = listing.count
            listing.add(name, inode)
            listedEntries += listing.count - before
            listings[directory] = listing
        }
        if !item.isPending { bumpGeneration(directory) }
        return inode
    }

    /// Removes one child from a cached listing (after a local delete or a move away).
    mutating func removeChild(_ directory: InodeNumber, name: String, detach shouldDetach: Bool) {
        var pending = false
        if var listing = listings[directory], let inode = listing.remove(name) {
            listedEntries -= 1
            listings[directory] = listing
            pending = nodes[inode]?.item.isPending ?? false
            if shouldDetach { detach(inode) } else { dropIfUnused(inode) }
        }
        if !pending { bumpGeneration(directory) }
    }

    /// Children of `directory` that are files being written (not in the Media Manager yet).
    func pendingChildren(_ directory: InodeNumber) -> [(String, InodeNumber)] {
        guard let listing = listings[directory] else { return [] }
        return listing.children.compactMap { name, inode in
            nodes[inode]?.item.isPending == true ? (name, inode) : nil
        }
    }

    // MARK: The kernel's references

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
        dropIfUnused(inode)
    }

    mutating func lookedUp(_ inode: InodeNumber) {
        nodes[inode]?.lookups += 1
    }

    /// Drops a node the kernel does not hold and no cached listing names.
    private mutating func dropIfUnused(_ inode: InodeNumber) {
        guard inode != Self.root, let node = nodes[inode], node.lookups == 0 else { return }
        if node.detached || listings[node.parent]?.children[node.name] != inode {
            drop(inode)
        }
    }

    /// Drops the least recently used listings beyond the bounds; their children that the
    /// kernel does not hold go with them.
    private mutating func trimListings(keeping current: InodeNumber) {
        while listings.count > maximumListings || listedEntries > maximumListedEntries {
            guard let (oldest, _) = listingUse.filter({ $0.key != current }).min(by: { $0.value < $1.value }) else { return }
            dropListing(oldest)
        }
    }

    private mutating func dropListing(_ directory: InodeNumber) {
        listingUse[directory] = nil
        saved[directory] = nil
        guard let listing = listings.removeValue(forKey: directory) else { return }
        listedEntries -= listing.count
        for inode in listing.children.values {
            dropIfUnused(inode)
        }
    }

    /// Forgets a node (and, for a folder, its listing).
    private mutating func drop(_ inode: InodeNumber) {
        guard inode != Self.root, let node = nodes.removeValue(forKey: inode) else { return }
        if inodeByKey[node.item.key] == inode { inodeByKey[node.item.key] = nil }
        generations[inode] = nil
        dropListing(inode)
        compact()
    }

    /// A dictionary keeps its storage when it empties: once most of it is unused (the kernel
    /// forgot a large tree), the maps are rebuilt at their size, so that the memory goes back.
    private mutating func compact() {
        guard nodes.capacity > 4096, nodes.count < nodes.capacity / 8 else { return }
        compactions += 1
        nodes = Dictionary(uniqueKeysWithValues: nodes.map { ($0.key, $0.value) })
        inodeByKey = Dictionary(uniqueKeysWithValues: inodeByKey.map { ($0.key, $0.value) })
        generations = Dictionary(uniqueKeysWithValues: generations.map { ($0.key, $0.value) })
        listingUse = Dictionary(uniqueKeysWithValues: listingUse.map { ($0.key, $0.value) })
    }
}
