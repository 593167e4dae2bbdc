import Synchronization
import Logging
import Foundation
import Journal
import MediaManager

#if canImport(Glibc)
import Glibc
#endif

extension MediaFilesystem {
    /// A folder's listing, fetched again when older than the directory TTL. Concurrent callers
    /// share one fetch.
    func listing(_ directory: InodeNumber) async throws -> Listing {
        while true {
            let (cached, task) = state.withLock { state -> (Listing?, Task<Void, any Error>?) in
                if let listing = state.table.listing(directory), clock.now - listing.fetched < configuration.directoryTTL {
                    return (listing, nil)
                }
                if let running = state.refreshing[directory] { return (nil, running) }
                let task = Task { try await self.fetchListing(directory) }
                state.refreshing[directory] = task
                return (nil, task)
            }
            if let cached { return cached }
            do {
                try await task!.value
            } catch {
                throw FilesystemError.remote(error, "Listing a folder")
            }
            if let listing = state.withLock({ $0.table.listing(directory) }) { return listing }
        }
    }

    /// Fetches every page of a folder's subfolders and files and names them.
    private func fetchListing(_ directory: InodeNumber) async throws {
        defer { _ = state.withLock { $0.refreshing.removeValue(forKey: directory) } }
        let folderId = try self.directory(directory).item.id
        for _ in 0..<5 {
            let generation = state.withLock { $0.table.generation(directory) }
            let mark = journal.placementMark()
            var items: [RemoteItem] = []
            var cursor: String?
            repeat {
                let page = try await listPage { limit in
                    try await self.client.folders.list(parentFolderId: folderId, sort: nil, limit: limit, cursor: cursor)
                }
                items += page.folders.map(RemoteItem.init(folder:))
                cursor = page.nextCursor.nextCursor
            } while cursor != nil
            repeat {
                let page = try await listPage { limit in
                    try await self.client.files.list(parentFolderId: folderId, sort: nil, limit: limit, cursor: cursor)
                }
                items += page.files.map(RemoteItem.init(file:))
                cursor = page.nextCursor.nextCursor
            } while cursor != nil
            if let hook = listingRead.withLock({ $0 }) { await hook(directory) }
            let now = clock.now
            let (applied, changes) = state.withLock { state -> (Bool, [InodeTable.Change]) in
                // A change of a saved item here during the fetch makes this listing stale: fetch
                // again. (Files being written come from the journal, as of now.)
                guard state.table.generation(directory) == generation else { return (false, []) }
                // Files saved since they were shown take their ids now, so that the listing
                // finds them under their inodes; one saved after the listing was read is kept.
                // The journal's pending records are read first, once: a record leaves that set only
                // forward (saved, or given up), so a file being written here is either among them or
                // has its saved file below, even when its upload completes during this apply.
                let pending = journal.entries()
                let pendingIds = Set(pending.map(\.id))
                if let hook = listingApplying.withLock({ $0 }) { hook(directory) }
                var saved: [RemoteItem] = state.table.takeSaved(directory).compactMap { state.table[$0] }.filter { $0.parent == directory && !$0.detached && !$0.item.isPending }.map(\.item)
                for (_, inode) in state.table.pendingChildren(directory) {
                    guard let record = state.table[inode]?.item.record, !pendingIds.contains(record), let file = journal.savedFile(record)
                    else { continue }
                    state.table.rekey(inode, to: RemoteItem(file: file), now: now)
                    saved.append(RemoteItem(file: file))
                }
                // Renames of saved files not yet sent: the files show under their new names, and
                // what those renames replaced is gone.
                let renames = journal.pendingRenames(in: folderId)
                // What saved files replaced is in the trash, or about to be: a listing read before it
                // was trashed must not show it.
                // A file whose finalize went through but whose answer has not arrived shows once, as the
                // file being written.
                let replaced = Set(pending.flatMap(\.replacing) + renames.values.flatMap(\.replacing) + pending.compactMap(\.expectedFileId))
                    .union(journal.recentlyReplaced())
                // Saved files the journal moved or renamed since this listing was read: where they
                // are now (a file moved away is not here).
                let placed = journal.placed(since: mark)
                var remote = items.filter { !replaced.contains($0.id) }.compactMap { item -> RemoteItem? in
                    var item = item
                    if item.kind == .file, let place = placed[item.id] {
                        guard place.folderId == folderId else { return nil }
                        item.displayName = place.displayName
                    }
                    if let rename = renames[item.id] { item.displayName = rename.displayName }
                    return item
                }
                var listed = Set(remote.map(\.id))
                // A file saved a moment ago that a new record already replaces (its writer is
                // starting it) shows as that record, not twice; one saved twice shows once.
                for item in saved where !replaced.contains(item.id) && listed.insert(item.id).inserted {
                    remote.append(item)
                }
                remote.sort { ($0.created, $0.id) < ($1.created, $1.id) }
                // Files being written here keep their names; an item the Media Manager lists
                // under the same name is numbered.
                let local = pending.filter { $0.parentFolderId == folderId }.map(RemoteItem.pending)
                let localNames = NameMapping.uniqueNames(local.map(\.displayName))
                let names = NameMapping.uniqueNames(remote.map(\.displayName), reserved: Set(localNames))
                let entries = Array(zip(names, remote)) + Array(zip(localNames, local))
                return (true, state.table.setListing(directory, entries: entries, now: now))
            }
            if !changes.isEmpty { invalidateKernelCaches(changes) }
            if applied { return }
        }
        throw FilesystemError(EAGAIN, "The folder kept changing while it was listed; try again")
    }

    /// Tells the kernel to forget names and attributes a refresh found changed (so that long
    /// attribute and entry TTLs stay safe). Delivered off the request path by the bridge.
    func invalidateKernelCaches(_ changes: [InodeTable.Change]) {
        guard let notifier = notifier.withLock({ $0 }) else { return }
        for change in changes {
            switch change {
            case .entry(let parent, let name): notifier.invalidateEntry(parent: parent, name: name)
            case .inode(let inode): notifier.invalidateInode(inode)
            }
        }
    }

    /// Calls a list endpoint with the configured page size, falling back to smaller pages if
    /// the service refuses the size.
    private func listPage<T>(_ call: (Int) async throws -> T) async throws -> T {
        var limit = configuration.listPageSize
        while true {
            do {
                return try await call(limit)
            } catch let error as MediaManagerError where error.code == .badRequest && limit > 50 {
                logger.notice("The Media Manager refused paging.limit=\(limit); using smaller pages", metadata: ["error": "\(error)"])
                limit = limit > 200 ? 200 : (limit > 100 ? 100 : 50)
            }
        }
    }

    /// What ``lookupNow(parent:name:)`` found.
    public enum Lookup: Sendable {
        case found(EntryReply)
        case missing
    }

    /// `lookup` answered at once from a listing that is still fresh; `nil` when the listing must be
    /// fetched (then call ``lookup(parent:name:)``).
    public func lookupNow(parent: InodeNumber, name: String) -> Lookup? {
        guard name.utf8.count <= 255 else { return nil }
        // The attributes are made outside the lock: they may read the attribute store.
        let found = state.withLock { state -> Node?? in
            guard state.table[parent]?.item.kind == .folder, let listing = state.table.listing(parent),
                clock.now - listing.fetched < configuration.directoryTTL
            else { return nil }
            guard let inode = listing.children[name], let node = state.table[inode] else { return .some(nil) }
            state.table.lookedUp(inode)
            return .some(node)
        }
        switch found {
        case nil: return nil
        case .some(nil): return .missing
        case .some(let node?): return .found(entry(node))
        }
    }

    /// `lookup`: the child `name` of `parent`, counted as one kernel reference.
    public func lookup(parent: InodeNumber, name: String) async throws -> EntryReply {
        try Self.checkName(name)
        _ = try directory(parent)
        // No name this long can exist: say so (rmdir, unlink, rename and stat of it look it up).
        try Self.checkName(name)
        let listing = try await listing(parent)
        guard let inode = listing.children[name] else { throw FilesystemError.notFound("'\(name)'") }
        let node = try state.withLock { state throws(FilesystemError) -> Node in
            guard let node = state.table[inode] else { throw FilesystemError.notFound("'\(name)'") }
            state.table.lookedUp(inode)
            return node
        }
        return entry(node)
    }

    /// `forget`: the kernel dropped `count` references.
    public func forget(_ inode: InodeNumber, count: UInt64) {
        let shrank = state.withLock { state -> Bool in
            let before = state.table.compactions
            state.table.forget(inode, count: count)
            return state.table.compactions != before
        }
        if shrank, let release = configuration.releaseMemory {
            Task.detached(priority: .background) { release() }
        }
    }

    /// Counts a reference the kernel took through `readdirplus`.
    public func lookedUp(_ inode: InodeNumber) {
        state.withLock { $0.table.lookedUp(inode) }
    }

    // MARK: Reading directories

    /// `opendir`: snapshots the listing (with `.` and `..`) for the `readdir` calls that follow.
    public func opendir(_ inode: InodeNumber) async throws -> UInt64 {
        let directory = try directory(inode)
        let listing = try await listing(inode)
        let preloaded = storedAttributes(of: Array(listing.children.values))
        let (parent, children) = state.withLock { state in
            let children = listing.names.compactMap { name -> (String, Node)? in
                guard let child = listing.children[name], let node = state.table[child] else { return nil }
                return (name, node)
            }
            return (state.table[directory.parent] ?? directory, children)
        }
        // The attributes are made outside the lock: they may read the attribute store.
        var entries: [DirectoryEntry] = []
        entries.reserveCapacity(children.count + 2)
        entries.append(DirectoryEntry(name: ".", attributes: attributes(of: directory), nextOffset: 1, isSelfOrParent: true))
        entries.append(DirectoryEntry(name: "..", attributes: attributes(of: parent), nextOffset: 2, isSelfOrParent: true))
        for (name, node) in children {
            entries.append(
                DirectoryEntry(name: name, attributes: attributes(of: node, preloaded: preloaded), nextOffset: entries.count + 1, isSelfOrParent: false))
        }
        return state.withLock { [entries] state in
            let handle = state.newHandle()
            state.directoryHandles[handle] = OpenDirectory(inode: inode, entries: entries)
            return handle
        }
    }

    /// `readdir`: the entries of an open directory from `offset` on (at most as many as a reply
    /// can hold). An entry renamed or removed since `opendir` is left out, and attributes are
    /// current: the kernel caches what `readdirplus` hands it as names, and a stale one would
    /// bring back a name that is gone. (A rename and a readdir of the same directory never run
    /// at once: the kernel holds the directory's lock for both.)
    ///
    /// `limit` bounds the entries handed out: what the kernel's buffer can hold (it asks for a
    /// few dozen at a time), so that each call costs what it returns.
    public func readdir(handle: UInt64, offset: Int, limit: Int = readdirBatch) throws(FilesystemError) -> [DirectoryEntry] {
        let limit = min(max(1, limit), Self.readdirBatch)
        // The batch's stored attributes in one query, outside the lock.
        let batch = state.withLock { state -> [InodeNumber] in
            guard let open = state.directoryHandles[handle], offset < open.entries.count else { return [] }
            return open.entries[max(0, offset)...].prefix(limit).filter { !$0.isSelfOrParent }.map(\.attributes.inode)
        }
        let preloaded = storedAttributes(of: batch)
        // The entries still listed, with their nodes; the attributes are made outside the lock
        // (they may read the attribute store).
        let current = try state.withLock { state throws(FilesystemError) -> [(DirectoryEntry, Node?)] in
            guard let open = state.directoryHandles[handle] else {
                throw FilesystemError(EBADF, "directory handle \(handle) is not open")
            }
            guard offset < open.entries.count else { return [] }
            let listing = state.table.listings[open.inode]
            var entries: [(DirectoryEntry, Node?)] = []
            for entry in open.entries[max(0, offset)...] {
                if entries.count >= limit { break }
                guard !entry.isSelfOrParent, let listing else {
                    entries.append((entry, nil))
                    continue
                }
                guard listing.children[entry.name] == entry.attributes.inode, let node = state.table[entry.attributes.inode] else { continue }
                entries.append((entry, node))
            }
            return entries
        }
        return current.map { entry, node in
            guard let node else { return entry }
            var current = entry
            current.attributes = attributes(of: node, preloaded: preloaded)
            return current
        }
    }

    /// A rename the Media Manager learns of later (or never needs): the inode moves in the table,
    /// taking the place of what it replaces.
    private func moveLocally(
        _ inode: InodeNumber, from source: (InodeNumber, String), to target: (InodeNumber, String), displayName: String, replacing: Bool
    ) {
        let now = clock.now
        state.withLock { state in
            if replacing { state.table.removeChild(target.0, name: target.1, detach: true) }
            guard var item = state.table[inode]?.item else { return }
            item.displayName = displayName
            state.table.removeChild(source.0, name: source.1, detach: false)
            _ = state.table.addChild(target.0, name: target.1, item: item, now: now)
        }
    }

    /// The stored attributes of the saved files and folders among `inodes`, in one query per 500
    /// (by id).
    func storedAttributes(of inodes: [InodeNumber]) -> [String: AttributeStore.Stored] {
        let ids = state.withLock { state in
            inodes.compactMap { inode -> String? in
                guard let item = state.table[inode]?.item, item.record == nil else { return nil }
                return item.id
            }
        }
        return ids.isEmpty ? [:] : attributeStore.attributes(ids: ids)
    }

    /// The most entries one `readdir` hands out (more than a reply buffer holds).
    public static let readdirBatch = 1024

    public func releasedir(handle: UInt64) {
        _ = state.withLock { $0.directoryHandles.removeValue(forKey: handle) }
    }

    // MARK: Changing directories

    /// `mkdir`: creates a folder, owned by the caller.
    public func mkdir(parent: InodeNumber, name: String, mode: UInt32 = 0o755, context: RequestContext? = nil) async throws -> EntryReply {
        try checkWritable("mkdir '\(name)'")
        try Self.checkName(name)
        let directory = try directory(parent)
        if try await listing(parent).children[name] != nil { throw FilesystemError.exists(name) }
        let folder: Folder
        do {
            folder = try await client.folders.create(displayName: NameMapping.displayName(for: name), parentFolderId: directory.item.id)
        } catch {
            throw FilesystemError.remote(error, "Creating folder '\(name)'")
        }
        let now = clock.now
        let permissions = mode & 0o7777 & ~(context?.umask ?? 0o022)
        let node = state.withLock { state in
            let inode = state.table.addChild(parent, name: name, item: RemoteItem(folder: folder), now: now)
            state.table[inode]?.mode = permissions
            state.table[inode]?.uid = context?.uid
            state.table[inode]?.gid = context?.gid
            state.table.lookedUp(inode)
            return state.table[inode]!
        }
        if permissions != configuration.directoryMode || (context.map { $0.uid != configuration.uid || $0.gid != configuration.gid } ?? false) {
            persistAttributes(of: node)
        }
        return entry(node)
    }

    /// The live child `name` of `parent`, or ENOENT.
    func child(_ parent: InodeNumber, _ name: String) async throws -> Node {
        _ = try directory(parent)
        guard let inode = try await listing(parent).children[name], let node = state.withLock({ $0.table[inode] }) else {
            throw FilesystemError.notFound("'\(name)'")
        }
        return node
    }

    /// Whether a folder has anything in it: files being written into it, or anything the service
    /// lists.
    func isEmpty(_ folder: Node) async throws -> Bool {
        if journal.entries().contains(where: { $0.parentFolderId == folder.item.id }) { return false }
        do {
            let folders = try await client.folders.list(parentFolderId: folder.item.id, limit: 1)
            guard folders.folders.isEmpty else { return false }
            let files = try await client.files.list(parentFolderId: folder.item.id, limit: 1)
            return files.files.isEmpty
        } catch {
            throw FilesystemError.remote(error, "Listing a folder")
        }
    }

    /// `rmdir`: moves an empty folder to the trash.
    public func rmdir(parent: InodeNumber, name: String) async throws {
        try checkWritable("rmdir '\(name)'")
        if name == "." { throw FilesystemError(EINVAL, "rmdir of '.'") }
        let node = try await child(parent, name)
        guard node.item.kind == .folder else { throw FilesystemError(ENOTDIR, "'\(name)' is not a directory") }
        guard try await isEmpty(node) else { throw FilesystemError(ENOTEMPTY, "'\(name)' is not empty") }
        do {
            try await client.folders.delete(ids: [node.item.id])
        } catch {
            throw FilesystemError.remote(error, "Deleting folder '\(name)'")
        }
        state.withLock { $0.table.removeChild(parent, name: name, detach: true) }
    }

    /// `unlink`: moves a file to the trash. A file being written is given up (its upload stops,
    /// nothing reaches the Media Manager, and a file it was replacing goes too); handles still
    /// open on it take writes and drop them.
    public func unlink(parent: InodeNumber, name: String) async throws {
        try checkWritable("unlink '\(name)'")
        let node = try await child(parent, name)
        guard node.item.kind == .file else { throw FilesystemError(EISDIR, "'\(name)' is a directory") }
        var ids: [String]
        if let record = node.item.record {
            ids = try await discard(record, inode: node.inode)
        } else {
            ids = [node.item.id]
            // Renamed here over another file, not yet sent: that file goes too.
            ids += await journal.cancelRename(of: node.item.id, hidingReplaced: true)?.replacing ?? []
        }
        try await trash(ids, what: "Deleting '\(name)'")
        state.withLock { $0.table.removeChild(parent, name: name, detach: true) }
    }

    /// Gives up a pending file; returns the files to trash (see ``Journal/discard(_:)``).
    private func discard(_ record: String, inode: InodeNumber) async throws -> [String] {
        let ids = try await journaled { try await journal.discard(record) }
        state.withLock { state in
            for (handle, file) in state.files where file.inode == inode && file.record == record {
                state.files[handle]?.discarded = true
            }
        }
        return ids
    }

    /// Moves files to the trash; ones already gone are fine.
    private func trash(_ ids: [String], what: String) async throws {
        guard !ids.isEmpty else { return }
        do {
            try await client.files.delete(ids: ids)
        } catch let error as MediaManagerError where error.code == .notFound {
            for id in ids { _ = try? await client.files.delete(ids: [id]) }
        } catch {
            throw FilesystemError.remote(error, what)
        }
    }

    /// `rename`, within and across folders. An existing target is replaced, as POSIX rename does;
    /// `RENAME_NOREPLACE` refuses that, `RENAME_EXCHANGE` is not supported. A file being written
    /// only has its record changed (no API call): it is saved under its final name in its final
    /// folder. A saved item is moved through the API first, and only then does a target it
    /// replaces go to the trash, so that a failure never loses the target.
    public func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) async throws {
        try checkWritable("rename '\(name)'")
        try Self.checkName(newName)
        let noReplace: UInt32 = 1
        let exchange: UInt32 = 2
        guard flags & exchange == 0 else { throw FilesystemError(EINVAL, "RENAME_EXCHANGE is not supported") }
        var source = try await child(parent, name)
        let targetDirectory = try directory(newParent)
        if source.item.kind == .folder {
            // A folder cannot move below itself.
            var cursor: InodeNumber? = newParent
            while let current = cursor {
                if current == source.inode { throw FilesystemError(EINVAL, "'\(name)' cannot move into itself") }
                if current == InodeTable.root { break }
                cursor = state.withLock { $0.table[current]?.parent }
            }
        }
        let existing = try await listing(newParent).children[newName].flatMap { inode in state.withLock { $0.table[inode] } }
        if let existing {
            if existing.inode == source.inode { return }
            guard flags & noReplace == 0 else { throw FilesystemError.exists(newName) }
            switch (source.item.kind, existing.item.kind) {
            case (.folder, .file): throw FilesystemError(ENOTDIR, "'\(newName)' is not a directory")
            case (.file, .folder): throw FilesystemError(EISDIR, "'\(newName)' is a directory")
            case (.folder, .folder):
                guard try await isEmpty(existing) else { throw FilesystemError(ENOTEMPTY, "'\(newName)' is not empty") }
            case (.file, .file): break
            }
        }
        let newDisplayName = NameMapping.displayName(for: newName)
        // What the rename replaces: trashed (or, being written, given up) once the source is in
        // place.
        var targetRecord = existing?.item.record
        var replaced: [String] = existing.map { $0.item.isPending ? [] : [$0.item.id] } ?? []
        if let record = source.item.record {
            if let pending = targetRecord {
                replaced += try await discard(pending, inode: existing!.inode)
                targetRecord = nil
            }
            switch try await journaled({
                try await journal.retarget(record, parentFolderId: targetDirectory.item.id, displayName: newDisplayName, replacing: replaced)
            }) {
            case .local:
                moveLocally(source.inode, from: (parent, name), to: (newParent, newName), displayName: newDisplayName, replacing: existing != nil)
                return
            case .saved(let file):
                // Saved meanwhile: it is renamed through the API like any saved file.
                adopt(record: record, file: file)
                source = try node(source.inode)
            }
        }
        if source.item.kind == .file, newParent == parent {
            // A saved file renamed within its folder: recorded here, sent in the background
            // (rsync renames every file it writes).
            if let pending = targetRecord {
                replaced += try await discard(pending, inode: existing!.inode)
            }
            try await journaled {
                try await journal.renameSaved(fileId: source.item.id, folderId: targetDirectory.item.id, displayName: newDisplayName, replacing: replaced)
            }
            moveLocally(source.inode, from: (parent, name), to: (newParent, newName), displayName: newDisplayName, replacing: existing != nil)
            return
        }
        // A rename not yet sent is superseded by this one (which names the file explicitly).
        let unsent = await journal.cancelRename(of: source.item.id, hidingReplaced: true)
        replaced += unsent?.replacing ?? []
        let displayName = newDisplayName == source.item.displayName && unsent == nil ? nil : newDisplayName
        let folderId = newParent == parent ? nil : targetDirectory.item.id
        var item = source.item
        // What the rename replaces is hidden from listings from now on: one read between the
        // move and the trash must not show both under one name (a target being written is
        // given up after the move, or trashed once saved: the file it becomes is hidden too).
        let hidden = replaced + (targetRecord.flatMap { journal.entry($0)?.expectedFileId }.map { [$0] } ?? [])
        journal.hideTrashed(hidden)
        if displayName != nil || folderId != nil {
            do {
                switch source.item.kind {
                case .file:
                    item = RemoteItem(file: try await client.files.update(id: source.item.id, displayName: displayName, parentFolderId: folderId))
                case .folder:
                    item = RemoteItem(folder: try await client.folders.update(id: source.item.id, displayName: displayName, parentFolderId: folderId))
                }
            } catch {
                journal.unhideTrashed(hidden)
                throw FilesystemError.remote(error, "Renaming '\(name)' to '\(newName)'")
            }
        }
        if let pending = targetRecord {
            replaced += try await discard(pending, inode: existing!.inode)
            journal.hideTrashed(replaced)
        }
        if !replaced.isEmpty {
            do {
                switch existing?.item.kind {
                case .folder?: try await client.folders.delete(ids: replaced)
                default: try await trash(replaced, what: "Replacing '\(newName)'")
                }
            } catch {
                journal.unhideTrashed(replaced)
                logger.error(
                    "'\(name)' was renamed to '\(newName)', but what it replaces could not be moved to the trash; both are in the folder",
                    metadata: ["error": "\(error)"])
            }
        }
        let now = clock.now
        state.withLock { state in
            if existing != nil { state.table.removeChild(newParent, name: newName, detach: true) }
            state.table.removeChild(parent, name: name, detach: false)
            _ = state.table.addChild(newParent, name: newName, item: item, now: now)
        }
    }
}
