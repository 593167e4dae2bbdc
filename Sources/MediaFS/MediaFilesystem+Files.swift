import Foundation
import Journal
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension MediaFilesystem {
    /// `open`. Reading streams a saved file with Range requests, and reads a file being written
    /// from the journal. Writing goes through the journal (see ``openForWriting(_:flags:context:)``).
    public func open(_ inode: InodeNumber, flags: Int32, context: RequestContext? = nil) async throws -> UInt64 {
        let node = try node(inode)
        guard node.item.kind == .file else { throw FilesystemError(EISDIR, "'\(node.name)' is a directory") }
        if flags & O_ACCMODE != O_RDONLY {
            return try await openForWriting(node, flags: flags, context: context)
        }
        if let record = node.item.record {
            if let data = try? await journal.readable(record) {
                return register(OpenFile(inode: inode, writable: false, record: record, data: data, opener: nil))
            }
            // The record left the journal: saved (take the saved file now rather than wait for
            // the journal's event), or given up.
            if let saved = journal.savedFile(record) { adopt(record: record, file: saved) }
        }
        let current = try self.node(inode)
        guard !current.item.isPending else { throw FilesystemError.notFound("'\(current.name)'") }
        let reader = makeReader(current.item)
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
    /// buffers they arrived in, to send in order without copying. A file being written is read
    /// from the journal. Cancelling the calling task ends a wait with EINTR.
    public func readBuffers(handle: UInt64, offset: Int64, size: Int) async throws -> [ByteBuffer] {
        let (reader, file) = state.withLock { ($0.readers[handle], $0.files[handle]) }
        if let file {
            if let record = file.record, !file.discarded {
                do throws(JournalError) {
                    return [try await journal.read(record, at: offset, count: size)]
                } catch where error.errno == EBADF && file.data != nil {
                    // Saved meanwhile: the bytes this handle opened are still here.
                } catch {
                    throw FilesystemError(error.errno, error.message)
                }
            }
            if let data = file.data {
                do {
                    return [try data.read(at: offset, count: size)]
                } catch {
                    throw FilesystemError(error.errno, error.message)
                }
            }
        }
        if let reader { return try await reader.read(offset: offset, count: size) }
        if let existing = file?.existing {
            // A write handle on a saved file that has not changed it yet reads the saved file.
            let reader = makeReader(existing)
            state.withLock { $0.readers[handle] = reader }
            return try await reader.read(offset: offset, count: size)
        }
        if file != nil { return [] }
        throw FilesystemError(EBADF, "file handle \(handle) is not open")
    }

    /// The same read answered at once, on the calling thread, when its bytes are already here
    /// (read ahead, or in the journal); `nil` when it has to wait (then call
    /// ``readBuffers(handle:offset:size:)``; the fetch it needs has started).
    public func readNow(handle: UInt64, offset: Int64, size: Int) -> [ByteBuffer]? {
        let (reader, file) = state.withLock { ($0.readers[handle], $0.files[handle]) }
        if let file {
            // A pending file opened read-only: its bytes are on local disk.
            guard file.record == nil || !file.writable, let data = file.data else { return nil }
            return (try? data.read(at: offset, count: size)).map { [$0] }
        }
        return reader?.readNow(offset: offset, count: size)
    }

    /// `release`: the last close of an open file. A write handle's release may seal the file (when
    /// it is the last one writing it).
    public func release(handle: UInt64) async {
        let (reader, file) = state.withLock { state in
            (state.readers.removeValue(forKey: handle), state.files.removeValue(forKey: handle))
        }
        await reader?.close()
        if let file { await releaseWriter(file) }
    }

    /// `setattr`. chmod, chown and times succeed and are kept (the Media Manager has no field
    /// for them): with the record of a file being written, else in the attribute store, which
    /// survives remounts. A size change goes through the journal: a file being written changes
    /// there, a saved file is rewritten from its current content.
    public func setattr(_ inode: InodeNumber, _ changes: SetAttributes, handle: UInt64?, context: RequestContext? = nil) async throws -> NodeAttributes {
        let node = try node(inode)
        if changes.mode != nil || changes.uid != nil || changes.gid != nil || changes.size != nil || changes.modified != nil || changes.accessed != nil {
            try checkWritable("changing '\(node.name)'")
        }
        if let size = changes.size {
            guard node.item.kind == .file else { throw FilesystemError(EISDIR, "'\(node.name)' is a directory") }
            guard size >= 0 else { throw FilesystemError(EINVAL, "A size cannot be negative") }
            let writeHandle = handle.flatMap { handle in state.withLock { $0.files[handle] }.flatMap { $0.writable ? handle : nil } }
            if let writeHandle {
                if let record = try await record(for: writeHandle, change: .truncate(size)) {
                    try await journaled { try await journal.truncate(record, to: size) }
                }
            } else {
                try await truncateUnopened(node, to: size)
            }
        }
        return try applyAttributes(inode, changes, node: node)
    }

    /// `setattr` answered at once (no size change: nothing to wait for); `nil` when it must take
    /// the asynchronous path.
    public func setattrNow(_ inode: InodeNumber, _ changes: SetAttributes) throws -> NodeAttributes? {
        guard changes.size == nil, let node = state.withLock({ $0.table[inode] }) else { return nil }
        if changes.mode != nil || changes.uid != nil || changes.gid != nil || changes.modified != nil || changes.accessed != nil {
            try checkWritable("changing '\(node.name)'")
        }
        return try applyAttributes(inode, changes, node: node)
    }

    /// Applies mode, owner and times: kept on the node, with the record of a file being written
    /// or in the attribute store.
    private func applyAttributes(_ inode: InodeNumber, _ changes: SetAttributes, node: Node) throws -> NodeAttributes {
        let now = Date()
        let updated = state.withLock { state -> Node? in
            guard var current = state.table[inode] else { return nil }
            if let mode = changes.mode { current.mode = mode & 0o7777 }
            if let uid = changes.uid { current.uid = uid }
            if let gid = changes.gid { current.gid = gid }
            if let modified = changes.modified { current.localModified = modified }
            if let accessed = changes.accessed { current.localAccessed = accessed }
            current.changed = now
            state.table[inode] = current
            return current
        } ?? node
        if changes.mode != nil || changes.uid != nil || changes.gid != nil || changes.modified != nil || changes.accessed != nil {
            if let record = updated.item.record {
                journal.setAttributes(
                    record, mode: updated.mode, uid: updated.uid, gid: updated.gid, modified: updated.localModified,
                    accessed: updated.localAccessed)
            } else {
                persistAttributes(of: updated)
            }
        }
        return attributes(of: updated)
    }

    /// Stores a node's local attributes under its id and content hash (folders: an empty hash).
    func persistAttributes(of node: Node) {
        guard !node.item.isPending else { return }
        attributeStore.update(id: node.item.id, hash: node.item.hash) { stored in
            if let mode = node.mode { stored.mode = mode }
            if let uid = node.uid { stored.uid = uid }
            if let gid = node.gid { stored.gid = gid }
            if let modified = node.localModified { stored.modified = modified.timeIntervalSince1970 }
            if let accessed = node.localAccessed { stored.accessed = accessed.timeIntervalSince1970 }
        }
    }
}

extension MediaFilesystem {
    /// Where a saved file's bytes are: its URL, or a signed download URL for a private file.
    func contentURL(of item: RemoteItem) async throws -> String {
        guard item.isPrivate else { return item.url }
        do {
            return try await client.files.generateDownloadUrl(id: item.id).downloadUrls.first?.url ?? item.url
        } catch {
            throw FilesystemError.remote(error, "Getting a download URL for '\(item.displayName)'")
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
