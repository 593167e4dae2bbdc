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

/// An open file handle.
struct OpenFile: Sendable {
    let inode: InodeNumber
    /// Opened for writing (`O_WRONLY` or `O_RDWR`).
    let writable: Bool
    /// Opened with `O_APPEND`: every write goes at the file's end as the journal knows it (the
    /// kernel's length can be behind: a short read by another handle of older content shrinks it).
    var appending = false
    /// The journal record it writes (or, read-only, the pending file it reads).
    var record: String?
    /// The bytes of a pending file opened read-only (readable after the record leaves the journal).
    var data: DataFile?
    /// A saved file opened for writing without `O_TRUNC`: nothing changes until the first write
    /// or truncate, which starts a record from its current content.
    var existing: RemoteItem?
    /// The process (thread-group id) that opened it: its close seals the file.
    let opener: Int32?
    /// Bytes were written through it since it was opened.
    var wrote = false
    /// The file was deleted while open: writes are taken and dropped.
    var discarded = false
}

/// The first change through a handle opened on a saved file.
enum FirstChange {
    case write
    case truncate(Int64)
}

extension MediaFilesystem {
    // MARK: Creating and opening for writing

    /// `create`: a new file, in the journal at once (its upload URL is fetched meanwhile), shown
    /// in its folder with its size so far, and in the Media Manager once its upload is finalized.
    public func create(parent: InodeNumber, name: String, mode: UInt32 = 0o644, flags: Int32, context: RequestContext?) async throws -> (EntryReply, UInt64) {
        try checkWritable("creating '\(name)'")
        try Self.checkName(name)
        let directory = try directory(parent)
        if let inode = try await listing(parent).children[name], let existing = state.withLock({ $0.table[inode] }) {
            // The kernel thought the name free (a stale negative entry): it is opened instead.
            if flags & O_EXCL != 0 { throw FilesystemError.exists(name) }
            if existing.item.kind == .folder { throw FilesystemError(EISDIR, "'\(name)' is a directory") }
            let handle = try await openForWriting(existing, flags: flags | O_TRUNC, context: context)
            let node = try state.withLock { state throws(FilesystemError) in
                guard let node = state.table[existing.inode] else { throw FilesystemError.notFound("'\(name)'") }
                state.table.lookedUp(existing.inode)
                return node
            }
            return (entry(node), handle)
        }
        let displayName = NameMapping.displayName(for: name)
        let permissions = mode & 0o7777 & ~(context?.umask ?? 0o022)
        let record = try await journaled {
            try await journal.create(
                Journal.NewFile(
                    parentFolderId: directory.item.id, displayName: displayName, mimeType: Self.mimeType(forNewFile: displayName),
                    mode: permissions, uid: context?.uid, gid: context?.gid))
        }
        guard let pending = journal.entry(record) else { throw FilesystemError(EIO, "'\(name)' vanished from the journal") }
        let now = clock.now
        let opener = Self.threadGroup(of: context?.pid)
        let (node, handle) = state.withLock { state in
            let inode = state.table.addChild(parent, name: name, item: .pending(pending), now: now)
            state.table[inode]?.mode = permissions
            state.table[inode]?.uid = context?.uid
            state.table[inode]?.gid = context?.gid
            state.table.lookedUp(inode)
            let handle = state.newHandle()
            state.files[handle] = OpenFile(inode: inode, writable: true, appending: flags & O_APPEND != 0, record: record, opener: opener)
            return (state.table[inode]!, handle)
        }
        return (entry(node), handle)
    }

    /// `open` for writing. A file being written is shared (one record, whatever the number of
    /// handles); `O_TRUNC` on a saved file starts a new record that replaces it (the old file goes
    /// to the trash once the new one is saved); without `O_TRUNC` nothing changes until the first
    /// write or truncate (so `touch` and `open(O_RDWR)` cost nothing).
    func openForWriting(_ node: Node, flags: Int32, context: RequestContext?) async throws -> UInt64 {
        try checkWritable("opening '\(node.name)' for writing")
        let opener = Self.threadGroup(of: context?.pid)
        let truncate = flags & O_TRUNC != 0
        let appending = flags & O_APPEND != 0
        return try await inodeLocks.withLock(node.inode) {
            var current = try self.node(node.inode)
            if let record = current.item.record {
                if try await journaled({ try await journal.attach(record) }) {
                    if truncate { try await journaled { try await journal.truncate(record, to: 0) } }
                    return register(OpenFile(inode: node.inode, writable: true, appending: appending, record: record, opener: opener))
                }
                // Saved meanwhile (or being saved): change the saved file.
                let saved = try await journaled { try await journal.finalized(record) }
                adopt(record: record, file: saved)
                current = try self.node(node.inode)
            }
            if truncate {
                let record = try await startRecord(for: current, baseSize: 0)
                return register(OpenFile(inode: node.inode, writable: true, appending: appending, record: record, opener: opener))
            }
            return register(OpenFile(inode: node.inode, writable: true, appending: appending, existing: current.item, opener: opener))
        }
    }

    func register(_ file: OpenFile) -> UInt64 {
        state.withLock { state in
            let handle = state.newHandle()
            state.files[handle] = file
            return handle
        }
    }

    /// Starts a record that replaces the saved file of `node`, from its first `baseSize` bytes
    /// (downloaded into the journal before any write lands), keeping its mode and owner.
    func startRecord(for node: Node, baseSize: Int64) async throws -> String {
        guard let parent = state.withLock({ $0.table[node.parent] }) else { throw FilesystemError.notFound("'\(node.name)'") }
        let original = node.item
        let shown = attributes(of: node)
        var base: (size: Int64, download: @Sendable (DataFile) async throws -> Void)?
        if baseSize > 0 {
            base = (baseSize, { [self] file in try await self.download(original, count: baseSize, into: file) })
        }
        let record = try await journaled {
            try await journal.create(
                Journal.NewFile(
                    parentFolderId: parent.item.id, displayName: original.displayName, mimeType: Self.mimeType(forNewFile: original.displayName),
                    replacing: [original.id], base: base, mode: shown.permissions, uid: shown.uid, gid: shown.gid))
        }
        guard let pending = journal.entry(record) else { throw FilesystemError(EIO, "'\(node.name)' vanished from the journal") }
        let now = clock.now
        // A listing may have met the record first (under another inode): the name stays this one's.
        let change = state.withLock { state in
            state.table.rekey(node.inode, to: .pending(pending), now: now)
        }
        if let change { invalidateKernelCaches([change]) }
        return record
    }

    /// The record a write handle changes: started at its first change when the handle was opened
    /// on a saved file without `O_TRUNC`. `nil` when the file was deleted while open.
    func record(for handle: UInt64, change: FirstChange) async throws -> String? {
        guard let file = state.withLock({ $0.files[handle] }), file.writable else {
            throw FilesystemError(EBADF, "file handle \(handle) is not open for writing")
        }
        if file.discarded { return nil }
        if let record = file.record { return record }
        return try await inodeLocks.withLock(file.inode) {
            if let record = state.withLock({ $0.files[handle]?.record }) { return record }
            var current = try self.node(file.inode)
            var record: String?
            if let pending = current.item.record {
                if try await journaled({ try await journal.attach(pending) }) {
                    record = pending  // another handle started one: share it
                } else {
                    adopt(record: pending, file: try await journaled { try await journal.finalized(pending) })
                    current = try self.node(file.inode)
                }
            }
            if record == nil {
                let baseSize: Int64 =
                    switch change {
                    case .write: current.item.size
                    case .truncate(let length): min(length, current.item.size)
                    }
                record = try await startRecord(for: current, baseSize: baseSize)
            }
            state.withLock { state in
                state.files[handle]?.record = record
                state.files[handle]?.existing = nil
            }
            return record
        }
    }

    // MARK: Writing

    /// `write`, on the FUSE thread with the kernel's buffer: done at once when nothing has to be
    /// waited for (the journal write is a `pwrite` into the page cache). `nil` means the write
    /// must take the asynchronous path (``write(handle:offset:data:)``).
    public func writeNow(handle: UInt64, offset: Int64, bytes: UnsafeRawBufferPointer) throws -> Int? {
        guard let file = state.withLock({ $0.files[handle] }), file.writable else {
            throw FilesystemError(EBADF, "file handle \(handle) is not open for writing")
        }
        if file.discarded { return bytes.count }
        guard let record = file.record else { return nil }
        do throws(JournalError) {
            guard let written = try journal.writeNow(record, at: offset, bytes: bytes, appending: file.appending) else { return nil }
            if written != offset { appendedElsewhere(file.inode) }
        } catch {
            if error.errno == ESTALE || error.errno == EBADF { return nil }
            throw FilesystemError(error.errno, error.message)
        }
        if !file.wrote { state.withLock { $0.files[handle]?.wrote = true } }
        return bytes.count
    }

    /// An append landed past the length the kernel had (which it wrote its cached pages at):
    /// it forgets the file's pages and length.
    private func appendedElsewhere(_ inode: InodeNumber) {
        invalidateKernelCaches([.inode(inode)])
    }

    /// `write`: returns the bytes taken (all of them). Waits while the journal is full.
    public func write(handle: UInt64, offset: Int64, data: ByteBuffer) async throws -> Int {
        for _ in 0..<3 {
            guard let record = try await record(for: handle, change: .write) else { return data.readableBytes }
            do throws(JournalError) {
                let file = state.withLock { $0.files[handle] }
                let written = try await journal.write(record, at: offset, buffer: data, appending: file?.appending ?? false)
                if written != offset, let file { appendedElsewhere(file.inode) }
                state.withLock { $0.files[handle]?.wrote = true }
                return data.readableBytes
            } catch where error.errno == ESTALE || error.errno == EBADF {
                // The record was saved (a close through another descriptor sealed it) or dropped:
                // the next write changes the saved file, or is dropped if the file was deleted.
                try await rebind(handle, from: record)
            } catch {
                throw FilesystemError(error.errno, error.message)
            }
        }
        throw FilesystemError(EIO, "The file kept changing state while it was written")
    }

    /// A handle whose record left the journal: it goes on with the saved file (or drops writes if
    /// the file was deleted).
    private func rebind(_ handle: UInt64, from record: String) async throws {
        if let saved = try? await journal.finalized(record) {
            adopt(record: record, file: saved)
        }
        let node = state.withLock { state -> Node? in
            guard let inode = state.files[handle]?.inode else { return nil }
            return state.table[inode]
        }
        state.withLock { state in
            state.files[handle]?.record = nil
            if let node, !node.item.isPending, !node.detached {
                state.files[handle]?.existing = node.item
            } else {
                state.files[handle]?.discarded = true
            }
        }
    }

    /// `flush` (each close(2)): the close of the writing process seals the file: its bytes are
    /// durable in the journal. Without write-back it then waits until the Media Manager has the
    /// file, and an upload failure is what close(2) returns. Closes from other processes (a
    /// dup'd descriptor), before any byte was written, or while other handles still write,
    /// change nothing (the last release seals).
    public func flush(handle: UInt64, context: RequestContext?) async throws {
        guard let file = state.withLock({ $0.files[handle] }), file.writable, let record = file.record, file.wrote, !file.discarded
        else { return }
        if let opener = file.opener, let caller = Self.threadGroup(of: context?.pid), caller != opener { return }
        guard journal.writers(record) <= 1 else { return }
        try await journaled { try await journal.seal(record) }
        guard !journal.configuration.writeBack else { return }
        do {
            let saved = try await journaled { try await journal.finalized(record) }
            adopt(record: record, file: saved)
        } catch {
            // Given up (it failed while this close waited): nothing appears in the folder.
            if journal.entry(record) == nil, journal.uploadState(record) != "done" { self.handle(.abandoned(record: record)) }
            throw error
        }
    }

    /// `fsync`: a file still open has its bytes made durable in the journal (it is not finalized:
    /// the program may go on writing); a closed one is waited for until the Media Manager has it.
    public func fsync(handle: UInt64) async throws {
        guard let file = state.withLock({ $0.files[handle] }), let record = file.record, !file.discarded else { return }
        try await journaled { try await journal.sync(record) }
    }

    /// A write handle is released: the last one seals the file.
    func releaseWriter(_ file: OpenFile) async {
        guard file.writable, let record = file.record, !file.discarded else { return }
        do {
            try await journal.detach(record)
        } catch {
            logger.error("Closing a file being written failed", metadata: ["error": "\(error)"])
        }
    }

    /// `truncate(2)` of a file not open for writing: a pending file's record changes; a saved
    /// file gets a new record from its first `size` bytes that replaces it.
    func truncateUnopened(_ node: Node, to size: Int64) async throws {
        try checkWritable("truncating '\(node.name)'")
        let record: String = try await inodeLocks.withLock(node.inode) {
            var current = try self.node(node.inode)
            if let pending = current.item.record {
                if try await journaled({ try await journal.attach(pending) }) { return pending }
                adopt(record: pending, file: try await journaled { try await journal.finalized(pending) })
                current = try self.node(node.inode)
            }
            return try await startRecord(for: current, baseSize: min(size, current.item.size))
        }
        do {
            try await journaled { try await journal.truncate(record, to: size) }
        } catch {
            try? await journaled { try await journal.detach(record) }
            throw error
        }
        try await journaled { try await journal.detach(record) }
        guard !journal.configuration.writeBack else { return }
        adopt(record: record, file: try await journaled { try await journal.finalized(record) })
    }

    // MARK: What the journal finished

    func handle(_ event: Journal.Event) {
        switch event {
        case .finalized(let record, let file):
            adopt(record: record, file: file)
        case .failed(let record, let reason):
            logger.error("\(path(ofRecord: record) ?? record) could not be saved: \(reason)")
        case .abandoned(let record):
            let now = clock.now
            state.withLock { state in
                guard let inode = state.table.inode(forKey: RemoteItem.pendingKey(record)), let node = state.table[inode] else { return }
                state.table.removeChild(node.parent, name: node.name, detach: true)
                state.table.invalidate(node.parent, now: now)
            }
        }
    }

    /// The Media Manager has a written file: its inode takes the file's id, so that a listing
    /// fetched from now on finds the file under the same inode (and no duplicate name).
    /// A file saved somewhere else than the mount shows it (it was moved meanwhile, and moving
    /// the saved file there failed) leaves that folder, and both folders are listed again.
    func adopt(record: String, file: MediaManager.FileDescriptor) {
        let now = clock.now
        let changes = state.withLock { state -> [InodeTable.Change] in
            guard let inode = state.table.inode(forKey: RemoteItem.pendingKey(record)) else { return [] }
            var changes = state.table.rekey(inode, to: RemoteItem(file: file), now: now).map { [$0] } ?? []
            guard let node = state.table[inode], let parent = state.table[node.parent] else { return changes }
            if parent.item.id == file.parentFolderId {
                state.table.noteSaved(inode)
            } else {
                state.table.removeChild(node.parent, name: node.name, detach: true)
                state.table.invalidate(node.parent, now: now)
                changes.append(.entry(parent: node.parent, name: node.name))
                if let folder = state.table.inode(forKey: ItemKey(folder: true, id: file.parentFolderId)) {
                    state.table.invalidate(folder, now: now)
                    changes.append(.inode(folder))
                }
            }
            return changes
        }
        if !changes.isEmpty { invalidateKernelCaches(changes) }
    }

    /// The path of a record's file in the mount, if it is known.
    func path(ofRecord record: String) -> String? {
        state.withLock { state in
            guard var inode = state.table.inode(forKey: RemoteItem.pendingKey(record)) else { return nil }
            var parts: [String] = []
            while inode != InodeTable.root, let node = state.table[inode] {
                parts.insert(node.name, at: 0)
                inode = node.parent
            }
            return "/" + parts.joined(separator: "/")
        }
    }

    // MARK: Helpers

    /// Downloads the first `count` bytes of a saved file into a journal file (to change it).
    func download(_ item: RemoteItem, count: Int64, into file: DataFile) async throws {
        let url = try await contentURL(of: item)
        var position: Int64 = 0
        let received: Int64
        do {
            received = try await client.content.download(url: url, range: 0..<count) { piece in
                try file.write(piece, at: position)
                position += Int64(piece.readableBytes)
            }
        } catch {
            throw FilesystemError.remote(error, "Downloading '\(item.displayName)' to change it")
        }
        guard received == count else {
            throw FilesystemError(EIO, "Downloading '\(item.displayName)' ended after \(received) of \(count) bytes")
        }
    }

    /// Runs a journal call, turning its error into the filesystem's.
    func journaled<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as JournalError {
            throw FilesystemError(error.errno, error.message)
        }
    }

    /// Names longer than a directory entry may be are refused, as local filesystems do.
    static func checkName(_ name: String) throws(FilesystemError) {
        guard name.utf8.count <= 255 else { throw FilesystemError(ENAMETOOLONG, "The name '\(name.prefix(40))…' is longer than 255 bytes") }
    }

    /// The MIME type of a new file from its name. rsync writes into `.NAME.XXXXXX` and renames
    /// it: the type is that of NAME.
    static func mimeType(forNewFile name: String) -> String {
        let guess = MIMETypes.guess(fileName: name)
        guard guess == MIMETypes.octetStream, name.hasPrefix("."), let dot = name.lastIndex(of: "."), dot != name.startIndex else {
            return guess
        }
        let suffix = name[name.index(after: dot)...]
        guard suffix.count == 6, suffix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return guess }
        return MIMETypes.guess(fileName: String(name[name.index(after: name.startIndex)..<dot]))
    }

    /// The thread-group id (process) of a thread id, from /proc.
    /// (Called on every create and close: one read of the start of `status`, where `Tgid:` is.)
    static func threadGroup(of pid: Int32?) -> Int32? {
        guard let pid, pid > 0 else { return nil }
        let descriptor = Glibc.open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return pid }
        defer { Glibc.close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return pid }
        for line in buffer[..<count].split(separator: UInt8(ascii: "\n")) where line.starts(with: "Tgid:".utf8) {
            let digits = line.dropFirst(5).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            return Int32(String(decoding: digits, as: UTF8.self)) ?? pid
        }
        return pid
    }
}
