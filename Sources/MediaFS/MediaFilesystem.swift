import AsyncHTTPClient
import Foundation
import Journal
import Logging
import MediaManager
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The filesystem: Media Manager folders as directories and files as regular files.
///
/// No FUSE here: the FUSE bridge translates requests into these calls, and tests call them
/// directly. Every method either returns a result or throws a ``FilesystemError`` carrying the
/// errno to answer with. Files being written live in the ``Journal`` until the Media Manager
/// has them; the filesystem shows them in their folders meanwhile.
public final class MediaFilesystem: Sendable {
    public let configuration: FilesystemConfiguration
    let client: MediaManagerClient
    let http: HTTPClient
    /// The write journal every file being written goes through.
    public let journal: Journal
    let attributeStore: AttributeStore
    let logger: Logger
    let clock = ContinuousClock()
    let mounted = Date()
    let state: Mutex<State>
    /// Serialises the set-up of writers per inode (two `O_TRUNC` opens of one file share one
    /// record instead of racing to make two).
    let inodeLocks = KeyedLock<InodeNumber>()
    /// Where cache invalidations go (the FUSE bridge), once attached.
    let notifier = Mutex<(any KernelNotifier)?>(nil)
    /// Follows what the journal finishes.
    let eventTask = Mutex<Task<Void, Never>?>(nil)
    /// Called when a folder's listing was read, before it is applied (tests hold it there to run a
    /// change in between); `nil` otherwise.
    let listingRead = Mutex<(@Sendable (InodeNumber) async -> Void)?>(nil)
    /// Called under the filesystem's lock while a listing is applied, once the journal's pending
    /// records were read (tests complete an upload there); `nil` otherwise.
    let listingApplying = Mutex<(@Sendable (InodeNumber) -> Void)?>(nil)

    /// An open directory: its listing as of `opendir`, which `readdir` hands out from.
    struct OpenDirectory: Sendable {
        let inode: InodeNumber
        let entries: [DirectoryEntry]
    }

    struct State: ~Copyable {
        var table: InodeTable
        var refreshing: [InodeNumber: Task<Void, any Error>] = [:]
        var directoryHandles: [UInt64: OpenDirectory] = [:]
        var readers: [UInt64: FileReader] = [:]
        var files: [UInt64: OpenFile] = [:]
        var nextHandle: UInt64 = 1

        mutating func newHandle() -> UInt64 {
            defer { nextHandle += 1 }
            return nextHandle
        }
    }

    /// - Parameters:
    ///   - client: The Media Manager API client.
    ///   - http: The HTTP client for content (Range reads); shared with `client` or not.
    ///   - journal: Where files being written are kept until the Media Manager has them.
    ///   - attributes: Where mode, owner and times are kept across mounts.
    public init(
        client: MediaManagerClient,
        http: HTTPClient,
        journal: Journal,
        attributes: AttributeStore,
        configuration: FilesystemConfiguration,
        logger: Logger
    ) {
        self.client = client
        self.http = http
        self.journal = journal
        self.attributeStore = attributes
        self.configuration = configuration
        self.logger = logger
        let now = clock.now
        self.state = Mutex(State(table: InodeTable(root: .root(id: configuration.rootFolderId, mounted: mounted), now: now)))
        let events = journal.events
        eventTask.withLock { task in
            task = Task { [weak self] in
                for await event in events {
                    guard let self else { return }
                    self.handle(event)
                }
            }
        }
        journal.start()
    }

    /// Attaches what tells the kernel to drop cached names and attributes (the FUSE bridge
    /// calls this once the session exists).
    public func attach(notifier: some KernelNotifier) {
        self.notifier.withLock { $0 = notifier }
    }

    /// Stops background work at unmount: listing refreshes are cancelled, and the upload queue
    /// is drained for at most `timeout` (what is left resumes at the next mount with the same
    /// cache directory; the log says how much).
    public func shutdown(timeout: Duration) async {
        let refreshes = state.withLock { state in
            defer { state.refreshing = [:] }
            return Array(state.refreshing.values)
        }
        refreshes.forEach { $0.cancel() }
        let queued = journal.status()
        if queued.queued + queued.inFlight > 0 {
            logger.info("Waiting up to \(timeout) for \(queued.queued + queued.inFlight) upload(s) to finish")
        }
        _ = await journal.drain(timeout: timeout)
        await journal.stop()
        let task = eventTask.withLock { $0 }
        await task?.value
        // Attribute changes are written in the background: all of them before the mount ends.
        await attributeStore.flushed()
    }

    // MARK: Attributes

    /// The attributes the kernel sees. `preloaded` holds stored attributes fetched in bulk for a
    /// listing (by id, whatever their hash), so that listing a large folder is not one store
    /// query per file.
    func attributes(of node: Node, preloaded: [String: AttributeStore.Stored]? = nil) -> NodeAttributes {
        var item = node.item
        let isDirectory = item.kind == .folder
        var stored: AttributeStore.Stored?
        var pending: Journal.Entry?
        if let record = item.record {
            pending = journal.entry(record)
            if let pending {
                item.size = pending.size
            } else if let saved = journal.savedFile(record) {
                // Saved, and the journal's event not handled yet: show the saved file.
                item.size = saved.sizeInBytes
                item.updated = saved.updatedDate
                stored = attributeStore.attributes(id: saved.id, hash: saved.hash)
            }
        } else if let preloaded {
            stored = preloaded[item.id].flatMap { $0.hash == item.hash ? $0 : nil }
        } else {
            stored = attributeStore.attributes(id: item.id, hash: item.hash)
        }
        let modified =
            node.localModified ?? pending?.modified ?? stored?.modified.map(Date.init(timeIntervalSince1970:))
            ?? (node.inode == InodeTable.root ? mounted : item.updated)
        let accessed = node.localAccessed ?? pending?.accessed ?? stored?.accessed.map(Date.init(timeIntervalSince1970:)) ?? modified
        return NodeAttributes(
            inode: node.inode,
            kind: isDirectory ? .directory : .file,
            size: isDirectory ? 0 : item.size,
            permissions: node.mode ?? pending?.mode ?? stored?.mode ?? (isDirectory ? configuration.directoryMode : configuration.fileMode),
            links: isDirectory ? 2 : 1,
            uid: node.uid ?? pending?.uid ?? stored?.uid ?? configuration.uid,
            gid: node.gid ?? pending?.gid ?? stored?.gid ?? configuration.gid,
            modified: modified,
            changed: node.changed ?? modified,
            accessed: accessed
        )
    }

    func entry(_ node: Node) -> EntryReply {
        EntryReply(attributes: attributes(of: node), entryTTL: configuration.entryTTL, attributeTTL: configuration.attributeTTL)
    }

    func node(_ inode: InodeNumber) throws(FilesystemError) -> Node {
        guard let node = state.withLock({ $0.table[inode] }) else {
            throw FilesystemError(ESTALE, "inode \(inode) is no longer known")
        }
        return node
    }

    func directory(_ inode: InodeNumber) throws(FilesystemError) -> Node {
        let node = try node(inode)
        guard node.item.kind == .folder else { throw FilesystemError(ENOTDIR, "'\(node.name)' is not a directory") }
        return node
    }

    /// `getattr` answered at once while the attributes are fresh (or local); `nil` when they must be
    /// fetched (then call ``getattr(_:)``).
    public func getattrNow(_ inode: InodeNumber) -> NodeAttributes? {
        guard let node = state.withLock({ $0.table[inode] }) else { return nil }
        guard inode == InodeTable.root || node.detached || node.item.isPending || clock.now - node.fetched < configuration.attributeTTL
        else { return nil }
        return attributes(of: node)
    }

    /// `getattr`: cached within the attribute TTL, fetched again after it — with its folder's
    /// listing when that folder was listed (one request for all the files a `stat` of each, as
    /// rsync and find do, would ask about), else by itself.
    public func getattr(_ inode: InodeNumber) async throws -> NodeAttributes {
        let node = try node(inode)
        guard inode != InodeTable.root, !node.detached, !node.item.isPending, clock.now - node.fetched >= configuration.attributeTTL else {
            return attributes(of: node)
        }
        if state.withLock({ $0.table.listings[node.parent] != nil }) {
            _ = try await listing(node.parent)
            return attributes(of: try self.node(inode))
        }
        let item: RemoteItem
        do {
            switch node.item.kind {
            case .folder: item = RemoteItem(folder: try await client.folders.get(id: node.item.id))
            case .file: item = RemoteItem(file: try await client.files.get(id: node.item.id))
            }
        } catch let error as MediaManagerError where error.code == .notFound {
            // Gone remotely: keep answering from what we had until the kernel forgets it.
            return attributes(of: node)
        } catch {
            throw FilesystemError.remote(error, "Getting '\(node.name)'")
        }
        let now = clock.now
        let updated = state.withLock { state -> Node? in
            guard var current = state.table[inode] else { return nil }
            // The inode may hold another item by now (a save completed into it meanwhile): what
            // was fetched describes the one it held, and must not overwrite the new one.
            guard current.item.id == node.item.id, !current.item.isPending else { return current }
            current.item.size = item.size
            current.item.updated = item.updated
            current.item.url = item.url
            current.item.hash = item.hash
            current.item.labels = item.labels
            current.item.operationStatus = item.operationStatus
            current.fetched = now
            state.table[inode] = current
            return current
        }
        return attributes(of: updated ?? node)
    }

    /// `statfs`: the Media Manager has no fixed size; report a large, mostly free volume.
    public func statfs() -> FilesystemStatistics { FilesystemStatistics() }

    // MARK: Read-only mode

    func checkWritable(_ operation: String) throws(FilesystemError) {
        guard configuration.readOnly else { return }
        let reason = configuration.readOnlyReason ?? "the mount is read-only"
        logger.notice("Refused \(operation): \(reason)")
        throw FilesystemError(EROFS, "\(operation) refused: \(reason)")
    }
}
