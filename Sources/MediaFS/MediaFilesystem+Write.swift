import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An open handle on a file being written.
struct WriteHandle: Sendable {
    /// `nil` until the first change of a file opened for writing without O_TRUNC.
    var writer: FileWriter?
    let inode: InodeNumber
    /// The process (thread-group id) that opened it: its close finalizes the upload.
    let opener: Int32?
    /// A read handle on a file being written (spool mode).
    var readOnly = false
    /// Released: the upload is being finalized; a rename or open of the file waits for it.
    var closing = false
    /// The file as it was, when opened without O_TRUNC (it stays as it is unless changed).
    var existing: RemoteItem?
}

extension MediaFilesystem {
    // MARK: Opening for writing

    /// `create`: a new file, visible at once (with its size so far) but in the Media Manager
    /// only once finalized. Its resumable upload URL is obtained now, so that a refusal shows at
    /// open rather than at close.
    public func create(parent: InodeNumber, name: String, mode: UInt32 = 0o644, flags: Int32, context: RequestContext?) async throws -> (EntryReply, UInt64) {
        try checkWritable("creating '\(name)'")
        try checkWriterBudget(name)
        let directory = try directory(parent)
        var existing = try await listing(parent).children[name].flatMap { inode in state.withLock { $0.table[inode] } }
        if let found = existing { existing = try await settled(found) }
        if let existing {
            if flags & O_EXCL != 0 { throw FilesystemError.exists(name) }
            if existing.item.kind == .folder { throw FilesystemError(EISDIR, "'\(name)' is a directory") }
            if existing.item.isPending { throw FilesystemError(EBUSY, "'\(name)' is being written") }
        }
        let writer = try await startWriter(
            displayName: NameMapping.displayName(for: name), parentFolderId: directory.item.id,
            replacing: existing.map { [$0.item.id] } ?? [], mode: configuration.writeMode)
        let item = RemoteItem.pending(displayName: NameMapping.displayName(for: name), now: Date())
        let now = clock.now
        let opener = Self.threadGroup(of: context?.pid)
        let permissions = mode & 0o7777 & ~(context?.umask ?? 0o022)
        return state.withLock { state in
            let inode: InodeNumber
            if let existing {
                inode = existing.inode
                state.replaced.insert(existing.item.id)
                state.table.rekey(inode, to: item, now: now)
                state.table.bumpGeneration(parent)
            } else {
                inode = state.table.addChild(parent, name: name, item: item, now: now)
            }
            state.table[inode]?.mode = permissions
            state.table.lookedUp(inode)
            let handle = state.newHandle()
            state.writers[handle] = WriteHandle(writer: writer, inode: inode, opener: opener)
            return (entry(state.table[inode]!), handle)
        }
    }

    /// `open` for writing an existing file. O_TRUNC replaces it with a new upload (the old file
    /// goes to the trash when the new one is finalized). Without O_TRUNC nothing changes until
    /// the first write or truncate (so `touch` works in either mode); changing a file in place
    /// then needs spool mode.
    func openForWriting(_ node: Node, flags: Int32, context: RequestContext?) async throws -> UInt64 {
        try checkWritable("opening '\(node.name)' for writing")
        let node = try await settled(node)
        if node.item.isPending { throw FilesystemError(EBUSY, "'\(node.name)' is already being written") }
        try checkWriterBudget(node.name)
        let opener = Self.threadGroup(of: context?.pid)
        guard flags & O_TRUNC != 0 else {
            let reader = makeReader(node.item)
            return state.withLock { state in
                let handle = state.newHandle()
                state.writers[handle] = WriteHandle(writer: nil, inode: node.inode, opener: opener, existing: node.item)
                state.readers[handle] = reader
                return handle
            }
        }
        guard let parent = state.withLock({ $0.table[node.parent] }) else { throw FilesystemError.notFound("'\(node.name)'") }
        let writer = try await startWriter(
            displayName: node.item.displayName, parentFolderId: parent.item.id, replacing: [node.item.id], mode: configuration.writeMode)
        let pending = RemoteItem.pending(displayName: node.item.displayName, now: Date())
        let now = clock.now
        return state.withLock { state in
            state.replaced.insert(node.item.id)
            state.table.rekey(node.inode, to: pending, now: now)
            state.table.bumpGeneration(node.parent)
            let handle = state.newHandle()
            state.writers[handle] = WriteHandle(writer: writer, inode: node.inode, opener: opener)
            return handle
        }
    }

    /// The writer of a handle, made at its first change when the file was opened without
    /// O_TRUNC: in spool mode the file is staged with its current content; stream mode cannot
    /// change a file in place.
    func writer(for handle: UInt64) async throws -> FileWriter {
        guard let writeHandle = state.withLock({ $0.writers[handle] }), !writeHandle.readOnly else {
            throw FilesystemError(EBADF, "file handle \(handle) is not open for writing")
        }
        if let writer = writeHandle.writer { return writer }
        guard let original = writeHandle.existing else { throw FilesystemError(EBADF, "file handle \(handle) has no file") }
        guard configuration.writeMode == .spool else {
            let error = FilesystemError(
                EPERM,
                "Changing '\(original.displayName)' in place (opened without O_TRUNC) needs --write-mode spool; "
                    + "in stream mode a file can only be written whole")
            throw error
        }
        guard let node = state.withLock({ $0.table[writeHandle.inode] }), let parent = state.withLock({ $0.table[node.parent] }) else {
            throw FilesystemError.notFound("'\(original.displayName)'")
        }
        let writer = try await startWriter(
            displayName: original.displayName, parentFolderId: parent.item.id, replacing: [original.id], mode: .spool)
        try await writer.prefill(from: try await contentURL(of: original), size: original.size, http: http)
        let pending = RemoteItem.pending(displayName: original.displayName, now: Date())
        let now = clock.now
        let size = original.size
        state.withLock { state in
            state.replaced.insert(original.id)
            state.table.rekey(writeHandle.inode, to: pending, now: now)
            state.table[writeHandle.inode]?.item.size = size
            state.table.bumpGeneration(node.parent)
            state.writers[handle]?.writer = writer
            state.writers[handle]?.existing = nil
        }
        return writer
    }

    private func checkWriterBudget(_ name: String) throws(FilesystemError) {
        let writing = state.withLock { $0.writers.values.filter { !$0.readOnly }.count }
        guard writing < configuration.maxWriters else {
            let error = FilesystemError(
                EMFILE,
                "Cannot open '\(name)' for writing: \(writing) files are being written at once, the limit (--max-writers); "
                    + "it bounds the memory of uploads")
            logger.warning("\(error)")
            throw error
        }
    }

    /// Obtains the resumable upload URL and token and sets up the writer.
    private func startWriter(displayName: String, parentFolderId: String, replacing: [String], mode: WriteMode) async throws -> FileWriter {
        let mimeType = MIMETypes.guess(fileName: displayName)
        let resumable: GenerateResumableUploadUrlResponse
        do {
            resumable = try await client.files.generateFileResumableUploadUrl(
                mimeType: mimeType, options: UploadOptions(fileName: displayName, parentFolderId: parentFolderId))
        } catch {
            throw FilesystemError.remote(error, "Getting an upload URL for '\(displayName)'")
        }
        let capabilities = try await capabilities(uploadURL: resumable.uploadUrl)
        var writeMode: FileWriter.Mode = mode == .spool ? .spool : .stream
        if writeMode == .stream && !capabilities.supportsDeferredLength {
            writeMode = .spool
            logger.notice(
                "The upload server does not offer tus creation-defer-length, so '\(displayName)' is staged locally and uploaded at close")
        }
        return try FileWriter(
            client: client, tus: tus, capabilities: capabilities, resumable: resumable,
            target: .init(displayName: displayName, mimeType: mimeType, parentFolderId: parentFolderId, replacing: replacing),
            mode: writeMode, stagingDirectory: configuration.cacheDirectory, chunkSize: configuration.chunkSize, logger: logger,
            onUploaded: { [weak self] writer, file in self?.adopt(file, from: writer) })
    }

    /// The Media Manager has a written file: its inode takes the file's id at once, so that a
    /// listing fetched from now on finds the file under its inode (and no duplicate name).
    private func adopt(_ file: MediaManager.FileDescriptor, from writer: FileWriter) {
        let now = clock.now
        state.withLock { state in
            guard let inode = state.writers.values.first(where: { $0.writer === writer })?.inode else { return }
            state.table.rekey(inode, to: RemoteItem(file: file), now: now)
            if let parent = state.table[inode]?.parent { state.table.bumpGeneration(parent) }
        }
    }

    /// The upload server's tus features, asked once per mount.
    private func capabilities(uploadURL: String) async throws -> TusServerCapabilities {
        if let known = state.withLock({ $0.capabilities }) { return known }
        do {
            let discovered = try await tus.discover(creationURL: uploadURL)
            state.withLock { $0.capabilities = discovered }
            return discovered
        } catch {
            throw FilesystemError(EIO, "Asking the upload server for its tus features failed: \(error)")
        }
    }

    func contentURL(of item: RemoteItem) async throws -> String {
        guard item.isPrivate else { return item.url }
        do {
            return try await client.files.generateDownloadUrl(id: item.id).downloadUrls.first?.url ?? item.url
        } catch {
            throw FilesystemError.remote(error, "Getting a download URL for '\(item.displayName)'")
        }
    }

    // MARK: Writing

    /// `write`: returns the bytes taken (all of them). Waits while the network is slower than
    /// the writer.
    public func write(handle: UInt64, offset: Int64, data: ByteBuffer) async throws -> Int {
        let writer = try await writer(for: handle)
        let written = try await writer.write(data, at: offset)
        let size = await writer.size
        state.withLock { state in
            if let inode = state.writers[handle]?.inode { state.table[inode]?.item.size = size }
        }
        return written
    }

    /// `flush` (each close(2)): the writing process's close finalizes the upload and returns only
    /// once the Media Manager has the file; its error is what close(2) returns. Flushes from
    /// other processes (a dup'd descriptor), or before any byte was written, change nothing.
    public func flush(handle: UInt64, context: RequestContext?) async throws {
        guard let writeHandle = state.withLock({ $0.writers[handle] }), !writeHandle.readOnly, let writer = writeHandle.writer else { return }
        guard await writer.wroteBytes, await !writer.discarded else { return }
        if let opener = writeHandle.opener, let caller = Self.threadGroup(of: context?.pid), caller != opener { return }
        try await finalize(writeHandle, writer)
    }

    /// `fsync`: everything written so far is pushed and acknowledged by the server.
    public func fsync(handle: UInt64) async throws {
        guard let writer = state.withLock({ $0.writers[handle] })?.writer else { return }
        try await writer.sync()
    }

    /// At release: finalize what no flush finalized (an empty file, say).
    func finishWriting(_ handle: WriteHandle) async {
        guard let writer = handle.writer else { return }
        if await writer.isFinished { return }
        if await writer.discarded { return }
        do {
            try await finalize(handle, writer)
        } catch {
            logger.error("A file was not saved: \(error)")
        }
    }

    /// Finalizes a writer and puts the new file under the writer's inode.
    private func finalize(_ handle: WriteHandle, _ writer: FileWriter) async throws {
        let file: MediaManager.FileDescriptor
        do {
            file = try await writer.finalize()
        } catch {
            await forgetFailedWrite(handle, writer)
            throw error
        }
        let now = clock.now
        let replacing = await writer.target.replacing
        let node = state.withLock { state -> Node? in
            if state.table[handle.inode]?.item.id != file.id {
                state.table.rekey(handle.inode, to: RemoteItem(file: file), now: now)
            }
            replacing.forEach { state.replaced.remove($0) }
            return state.table[handle.inode]
        }
        if let node { persistAttributes(of: node) }
    }

    /// A write that failed leaves nothing behind: its entry goes, and a file it was to replace
    /// shows again.
    private func forgetFailedWrite(_ handle: WriteHandle, _ writer: FileWriter) async {
        let replacing = await writer.target.replacing
        let now = clock.now
        state.withLock { state in
            replacing.forEach { state.replaced.remove($0) }
            guard let node = state.table[handle.inode], node.item.isPending else { return }
            state.table.removeChild(node.parent, name: node.name, detach: true)
            state.table.invalidate(node.parent, now: now)
        }
    }

    /// A pending file whose writer was closed (its finalize runs in release): waits for the
    /// finalize, so that what follows (rename, open, unlink) sees the finished file.
    func settled(_ node: Node) async throws -> Node {
        guard node.item.isPending else { return node }
        let handle = state.withLock { $0.writers.values.first { $0.inode == node.inode && !$0.readOnly && $0.writer != nil } }
        guard let handle, handle.closing, let writer = handle.writer else { return node }
        _ = try? await writer.finalize()
        return state.withLock { $0.table[node.inode] } ?? node
    }

    /// The writer of a file being written, if any.
    func pendingWriter(_ inode: InodeNumber) -> FileWriter? {
        state.withLock { $0.writers.values.first { $0.inode == inode && !$0.readOnly && $0.writer != nil }?.writer }
    }

    /// Truncating a finished file (not open): only spool mode can rewrite it.
    func truncateFinished(_ node: Node, to size: Int64) async throws {
        try checkWritable("truncating '\(node.name)'")
        let handle = try await openForWriting(node, flags: O_WRONLY, context: nil)
        defer {
            state.withLock { state in
                state.writers[handle] = nil
                state.readers[handle] = nil
            }
        }
        do {
            let writer = try await writer(for: handle)
            try await writer.truncate(to: size)
            if let writeHandle = state.withLock({ $0.writers[handle] }) { try await finalize(writeHandle, writer) }
        } catch {
            if let writeHandle = state.withLock({ $0.writers[handle] }), let writer = writeHandle.writer {
                await writer.abandon()
                await forgetFailedWrite(writeHandle, writer)
            }
            throw error
        }
    }

    /// The thread-group id (process) of a thread id, from /proc.
    static func threadGroup(of pid: Int32?) -> Int32? {
        guard let pid, pid > 0 else { return nil }
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return pid }
        for line in status.split(separator: "\n") where line.hasPrefix("Tgid:") {
            return Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) ?? pid
        }
        return pid
    }
}
