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
    let writer: FileWriter
    let inode: InodeNumber
    /// The process (thread-group id) that opened it: its close finalizes the upload.
    let opener: Int32?
    /// A read handle on a file being written (spool mode).
    var readOnly = false
}

extension MediaFilesystem {
    // MARK: Opening for writing

    /// `create`: a new file, visible at once (with its size so far) but in the Media Manager
    /// only once finalized. Its resumable upload URL is obtained now, so that a refusal shows at
    /// open rather than at close.
    public func create(parent: InodeNumber, name: String, flags: Int32, context: RequestContext?) async throws -> (EntryReply, UInt64) {
        try checkWritable("creating '\(name)'")
        try checkWriterBudget(name)
        let directory = try directory(parent)
        let existing = try await listing(parent).children[name].flatMap { inode in state.withLock { $0.table[inode] } }
        if let existing {
            if flags & O_EXCL != 0 { throw FilesystemError.exists(name) }
            if existing.item.kind == .folder { throw FilesystemError(EISDIR, "'\(name)' is a directory") }
            if existing.item.isPending { throw FilesystemError(EBUSY, "'\(name)' is being written") }
        }
        let writer = try await startWriter(
            displayName: NameMapping.displayName(for: name), parentFolderId: directory.item.id,
            replacing: existing?.item.id, mode: configuration.writeMode)
        let item = RemoteItem.pending(displayName: NameMapping.displayName(for: name), now: Date())
        let now = clock.now
        let opener = Self.threadGroup(of: context?.pid)
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
            state.table.lookedUp(inode)
            let handle = state.newHandle()
            state.writers[handle] = WriteHandle(writer: writer, inode: inode, opener: opener)
            return (entry(state.table[inode]!), handle)
        }
    }

    /// `open` for writing an existing file: O_TRUNC replaces it with a new upload (the old file
    /// goes to the trash when the new one is finalized). Without O_TRUNC the file must be
    /// rewritten in place, which only spool mode can do.
    func openForWriting(_ node: Node, flags: Int32, context: RequestContext?) async throws -> UInt64 {
        try checkWritable("opening '\(node.name)' for writing")
        if node.item.isPending { throw FilesystemError(EBUSY, "'\(node.name)' is already being written") }
        let truncating = flags & O_TRUNC != 0
        guard truncating || configuration.writeMode == .spool else {
            throw FilesystemError(
                EPERM,
                "Opening '\(node.name)' to change it in place (without O_TRUNC) needs --write-mode spool; "
                    + "in stream mode a file can only be written whole")
        }
        try checkWriterBudget(node.name)
        guard let parent = state.withLock({ $0.table[node.parent] }) else { throw FilesystemError.notFound("'\(node.name)'") }
        let writer = try await startWriter(
            displayName: node.item.displayName, parentFolderId: parent.item.id, replacing: node.item.id,
            mode: truncating ? configuration.writeMode : .spool)
        if !truncating {
            try await writer.prefill(from: try await contentURL(of: node.item), size: node.item.size, http: http)
        }
        let pending = RemoteItem.pending(displayName: node.item.displayName, now: Date())
        let now = clock.now
        let opener = Self.threadGroup(of: context?.pid)
        let size = node.item.size
        return state.withLock { state in
            state.replaced.insert(node.item.id)
            state.table.rekey(node.inode, to: pending, now: now)
            if !truncating { state.table[node.inode]?.item.size = size }
            state.table.bumpGeneration(node.parent)
            let handle = state.newHandle()
            state.writers[handle] = WriteHandle(writer: writer, inode: node.inode, opener: opener)
            return handle
        }
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
    private func startWriter(displayName: String, parentFolderId: String, replacing: String?, mode: WriteMode) async throws -> FileWriter {
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
            mode: writeMode, stagingDirectory: configuration.cacheDirectory, chunkSize: configuration.chunkSize, logger: logger)
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
        guard let writeHandle = state.withLock({ $0.writers[handle] }), !writeHandle.readOnly else {
            throw FilesystemError(EBADF, "file handle \(handle) is not open for writing")
        }
        let written = try await writeHandle.writer.write(data, at: offset)
        let size = await writeHandle.writer.size
        state.withLock { $0.table[writeHandle.inode]?.item.size = size }
        return written
    }

    /// `flush` (each close(2)): the writing process's close finalizes the upload and returns only
    /// once the Media Manager has the file; its error is what close(2) returns. Flushes from
    /// other processes (a dup'd descriptor), or before any byte was written, change nothing.
    public func flush(handle: UInt64, context: RequestContext?) async throws {
        guard let writeHandle = state.withLock({ $0.writers[handle] }), !writeHandle.readOnly else { return }
        guard await writeHandle.writer.wroteBytes else { return }
        if let opener = writeHandle.opener, let caller = Self.threadGroup(of: context?.pid), caller != opener { return }
        try await finalize(writeHandle)
    }

    /// `fsync`: everything written so far is pushed and acknowledged by the server.
    public func fsync(handle: UInt64) async throws {
        guard let writeHandle = state.withLock({ $0.writers[handle] }), !writeHandle.readOnly else { return }
        try await writeHandle.writer.sync()
    }

    /// At release: finalize what no flush finalized (an empty file, say); clean up a failure.
    func finishWriting(_ handle: WriteHandle) async {
        if await handle.writer.isFinished { return }
        do {
            try await finalize(handle)
        } catch {
            logger.error("A file was not saved: \(error)")
        }
    }

    /// Finalizes a writer and puts the new file under the writer's inode.
    private func finalize(_ handle: WriteHandle) async throws {
        let file: MediaManager.FileDescriptor
        do {
            file = try await handle.writer.finalize()
        } catch {
            await forgetFailedWrite(handle)
            throw error
        }
        let now = clock.now
        let replacing = await handle.writer.target.replacing
        let node = state.withLock { state -> Node? in
            guard state.table[handle.inode]?.item.isPending == true else { return state.table[handle.inode] }
            state.table.rekey(handle.inode, to: RemoteItem(file: file), now: now)
            if let replacing { state.replaced.remove(replacing) }
            return state.table[handle.inode]
        }
        if let node { persistAttributes(of: node) }
    }

    /// A write that failed leaves nothing behind: its entry goes, and a file it was to replace
    /// shows again.
    private func forgetFailedWrite(_ handle: WriteHandle) async {
        let replacing = await handle.writer.target.replacing
        let now = clock.now
        state.withLock { state in
            if let replacing { state.replaced.remove(replacing) }
            guard let node = state.table[handle.inode], node.item.isPending else { return }
            state.table.removeChild(node.parent, name: node.name, detach: true)
            state.table.invalidate(node.parent, now: now)
        }
    }

    /// The writer of a file being written, if any.
    func pendingWriter(_ inode: InodeNumber) -> FileWriter? {
        state.withLock { $0.writers.values.first { $0.inode == inode && !$0.readOnly }?.writer }
    }

    /// Truncating a finished file (not open): only spool mode can rewrite it.
    func truncateFinished(_ node: Node, to size: Int64) async throws {
        try checkWritable("truncating '\(node.name)'")
        guard configuration.writeMode == .spool else {
            throw FilesystemError(
                EPERM,
                "Truncating '\(node.name)' in place needs --write-mode spool; in stream mode a file can only be replaced whole")
        }
        let handle = try await openForWriting(node, flags: O_WRONLY, context: nil)
        guard let writeHandle = state.withLock({ $0.writers.removeValue(forKey: handle) }) else { return }
        try await writeHandle.writer.truncate(to: size)
        try await finalize(writeHandle)
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
