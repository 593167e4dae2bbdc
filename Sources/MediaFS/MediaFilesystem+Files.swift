import Synchronization
import Logging
import Foundation
import MediaManager
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension MediaFilesystem {
    /// `open` for reading. (Writing is handled by the write path.)
    public func open(_ inode: InodeNumber, flags: Int32) async throws -> UInt64 {
        let node = try node(inode)
        guard node.item.kind == .file else { throw FilesystemError(EISDIR, "'\(node.name)' is a directory") }
        let accessMode = flags & O_ACCMODE
        guard accessMode == O_RDONLY else {
            try checkWritable("opening '\(node.name)' for writing")
            throw FilesystemError(EROFS, "Writing to '\(node.name)' is not supported yet")
        }
        let item = node.item
        let client = self.client
        let urlProvider: FileReader.URLProvider
        if item.isPrivate {
            let cached = DownloadURLCache()
            urlProvider = {
                try await cached.url {
                    do {
                        return try await client.files.generateDownloadUrl(id: item.id).downloadUrls.first?.url ?? ""
                    } catch {
                        throw FilesystemError.remote(error, "Getting a download URL for '\(item.displayName)'")
                    }
                }
            }
        } else {
            urlProvider = { item.url }
        }
        let reader = FileReader(
            http: http, size: item.size, name: item.displayName,
            initialWindow: configuration.readAheadInitial, maximumWindow: configuration.readAheadMaximum,
            timeout: configuration.readTimeout, logger: logger, url: urlProvider)
        return state.withLock { state in
            let handle = state.newHandle()
            state.readers[handle] = reader
            return handle
        }
    }

    /// `read`: up to `size` bytes at `offset`.
    public func read(handle: UInt64, offset: Int64, size: Int) async throws -> ByteBuffer {
        guard let reader = state.withLock({ $0.readers[handle] }) else {
            throw FilesystemError(EBADF, "file handle \(handle) is not open")
        }
        return try await reader.read(offset: offset, count: size)
    }

    /// `release`: the last close of an open file.
    public func release(handle: UInt64) async {
        let reader = state.withLock { $0.readers.removeValue(forKey: handle) }
        await reader?.close()
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

extension MediaFilesystem {
    /// `setattr`. chmod and chown succeed and are kept for the life of the mount (the Media
    /// Manager has no permissions to store them in); times are kept likewise. A size change of
    /// a finished file is refused: the Media Manager cannot change a file's bytes in place.
    public func setattr(_ inode: InodeNumber, _ changes: SetAttributes, handle: UInt64?) async throws -> NodeAttributes {
        let node = try node(inode)
        if let size = changes.size, size != node.item.size || node.item.kind == .folder {
            throw FilesystemError(node.item.kind == .folder ? EISDIR : EPERM, "Changing the size of '\(node.name)' is not supported")
        }
        return state.withLock { state in
            guard var current = state.table[inode] else { return attributes(of: node) }
            if let mode = changes.mode { current.mode = mode & 0o7777 }
            if let modified = changes.modified { current.localModified = modified }
            state.table[inode] = current
            return attributes(of: current)
        }
    }
}
