import Foundation
import Logging
import MediaManager
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension MediaFilesystem {
    /// `open`. Reading streams the file with Range requests. Writing with O_TRUNC replaces the
    /// file with a new upload; writing an existing file in place needs spool mode.
    public func open(_ inode: InodeNumber, flags: Int32, context: RequestContext? = nil) async throws -> UInt64 {
        let node = try await settled(try node(inode))
        guard node.item.kind == .file else { throw FilesystemError(EISDIR, "'\(node.name)' is a directory") }
        if flags & O_ACCMODE != O_RDONLY {
            return try await openForWriting(node, flags: flags, context: context)
        }
        if node.item.isPending {
            // Being written through another handle: readable only when staged.
            guard let writer = state.withLock({ $0.writers.values.first { $0.inode == inode }?.writer }) else {
                throw FilesystemError(EBUSY, "'\(node.name)' is being written")
            }
            return state.withLock { state in
                let handle = state.newHandle()
                state.writers[handle] = WriteHandle(writer: writer, inode: inode, opener: nil, readOnly: true)
                return handle
            }
        }
        let reader = makeReader(node.item)
        return state.withLock { state in
            let handle = state.newHandle()
            state.readers[handle] = reader
            return handle
        }
    }

    /// A reader of a file's content (through a signed download URL for a private file), over
    /// the Media Manager client's content requests.
    func makeReader(_ item: RemoteItem) -> FileReader {
        let urlProvider: FileReader.URLProvider
        if item.isPrivate {
            let cached = DownloadURLCache()
            urlProvider = { try await cached.url { try await self.contentURL(of: item) } }
        } else {
            urlProvider = { item.url }
        }
        let content = client.content.with(timeouts: .init(response: configuration.readTimeout, idle: configuration.readTimeout))
        return FileReader(
            content: content, size: item.size, name: item.displayName,
            initialWindow: configuration.readAheadInitial, readAhead: configuration.readAheadMaximum,
            logger: logger, url: urlProvider)
    }

    /// `read`: up to `size` bytes at `offset`, in one buffer (a copy when the bytes arrived in
    /// several; the FUSE bridge uses ``readBuffers(handle:offset:size:)``).
    public func read(handle: UInt64, offset: Int64, size: Int) async throws -> ByteBuffer {
        let buffers = try await readBuffers(handle: handle, offset: offset, size: size)
        guard buffers.count != 1 else { return buffers[0] }
        var joined = ByteBuffer()
        joined.reserveCapacity(buffers.reduce(0) { $0 + $1.readableBytes })
        for var buffer in buffers { joined.writeBuffer(&buffer) }
        return joined
    }

    /// `read`: up to `size` bytes at `offset` (fewer only at the end of the file), as the
    /// buffers they arrived in, to send in order without copying. Cancelling the calling task
    /// ends a wait with EINTR.
    public func readBuffers(handle: UInt64, offset: Int64, size: Int) async throws -> [ByteBuffer] {
        let (reader, writer) = state.withLock { ($0.readers[handle], $0.writers[handle]?.writer) }
        if let writer { return [try await writer.read(at: offset, count: size)] }
        if let reader { return try await reader.read(offset: offset, count: size) }
        throw FilesystemError(EBADF, "file handle \(handle) is not open")
    }

    /// The same read answered at once, on the calling thread, when its bytes are already here
    /// (read ahead); `nil` when it has to wait (then call ``readBuffers(handle:offset:size:)``;
    /// the fetch it needs has started).
    public func readNow(handle: UInt64, offset: Int64, size: Int) -> [ByteBuffer]? {
        let reader = state.withLock { $0.writers[handle] == nil ? $0.readers[handle] : nil }
        return reader?.readNow(offset: offset, count: size)
    }

    /// `release`: the last close of an open file. A file written but not finalized by a flush
    /// (no bytes, or closed from another process) is finalized here.
    public func release(handle: UInt64) async {
        let reader = state.withLock { $0.readers.removeValue(forKey: handle) }
        await reader?.close()
        // The handle stays registered while it is finalized, so that a rename arriving
        // meanwhile (rsync renames right after close) finds the writer and waits for it.
        guard let writer = state.withLock({ state -> WriteHandle? in
            state.writers[handle]?.closing = true
            return state.writers[handle]
        }) else { return }
        if !writer.readOnly { await finishWriting(writer) }
        _ = state.withLock { $0.writers.removeValue(forKey: handle) }
    }

    /// `setattr`. chmod, chown and times succeed and are kept (the Media Manager has no field
    /// for them) in the attribute store, which survives remounts. A size change applies to a
    /// file being written; a finished file can only be truncated in spool mode.
    public func setattr(_ inode: InodeNumber, _ changes: SetAttributes, handle: UInt64?) async throws -> NodeAttributes {
        let node = try node(inode)
        if let size = changes.size {
            guard node.item.kind == .file else { throw FilesystemError(EISDIR, "'\(node.name)' is a directory") }
            let writeHandle = state.withLock { state in
                handle.flatMap { state.writers[$0] }.flatMap { $0.readOnly ? nil : $0 }
            }
            if let handle, writeHandle != nil {
                try await writer(for: handle).truncate(to: size)
                state.withLock { $0.table[inode]?.item.size = size }
            } else if let writer = pendingWriter(inode) {
                try await writer.truncate(to: size)
                state.withLock { $0.table[inode]?.item.size = size }
            } else if size != node.item.size {
                try await truncateFinished(node, to: size)
            }
        }
        let updated = state.withLock { state -> Node? in
            guard var current = state.table[inode] else { return nil }
            if let mode = changes.mode { current.mode = mode & 0o7777 }
            if let uid = changes.uid { current.uid = uid }
            if let gid = changes.gid { current.gid = gid }
            if let modified = changes.modified { current.localModified = modified }
            state.table[inode] = current
            return current
        } ?? node
        if !updated.item.isPending, changes.mode != nil || changes.uid != nil || changes.gid != nil || changes.modified != nil {
            persistAttributes(of: updated)
        }
        return attributes(of: updated)
    }

    /// Stores a node's local attributes under its id and content hash.
    func persistAttributes(of node: Node) {
        guard !node.item.isPending else { return }
        attributeStore.update(id: node.item.id, hash: node.item.hash) { stored in
            if let mode = node.mode { stored.mode = mode }
            if let uid = node.uid { stored.uid = uid }
            if let gid = node.gid { stored.gid = gid }
            if let modified = node.localModified { stored.modified = modified.timeIntervalSince1970 }
        }
    }
}

/// A private file's signed download URL, fetched once and reused until shortly before it
/// expires (they are valid for 10 hours).
actor DownloadURLCache {
    private var value: (url: String, fetched: ContinuousClock.Instant)?

    func url(_ fetch: @Sendable () async throws -> String) async throws -> String {
        if let value, ContinuousClock.now - value.fetched < .seconds(3600) { return value.url }
        let url = try await fetch()
        value = (url, .now)
        return url
    }
}
