import Foundation
import Logging
import MediaManager
import NIOCore
import NIOPosix
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension Journal {
    // MARK: Writing

    /// Writes `bytes` at `offset` now, if nothing has to be waited for: the common case, which
    /// the FUSE bridge calls on its own thread with the kernel's buffer (no copy, no task).
    ///
    /// - Parameter appending: the write goes at the file's end, whatever `offset` says (`O_APPEND`:
    ///   the kernel's idea of the length can be behind the journal's).
    /// - Returns: the offset written at, or `nil` when the write must wait (for room in the
    ///   journal, or for the file's current content to arrive): call ``write(_:at:buffer:appending:)``
    ///   instead.
    public func writeNow(_ id: String, at offset: Int64, bytes: UnsafeRawBufferPointer, appending: Bool = false) throws(JournalError)
        -> Int64?
    {
        guard offset >= 0 else { throw JournalError(EINVAL, "Negative offset \(offset)") }
        return try state.withLock { state throws(JournalError) -> Int64? in
            guard state.records[id] != nil else { throw JournalError.unknown(id) }
            let file = try openData(&state, id)
            guard var runtime = state.records[id] else { throw JournalError.unknown(id) }
            if runtime.prefill != nil { return nil }
            switch runtime.record.state {
            case .open: break
            case .sealed, .failed: return nil
            case .finalizing, .finalized, .abandoned:
                throw JournalError(ESTALE, "'\(runtime.record.displayName)' was already saved; reopen it to change it")
            }
            let offset = appending ? runtime.size : offset
            let (end, overflow) = offset.addingReportingOverflow(Int64(bytes.count))
            guard !overflow else { throw JournalError(EFBIG, "A write at offset \(offset) is too large") }
            if end > runtime.size, mustWaitForRoom(state, writing: id) { return nil }
            if offset < runtime.claimed && !runtime.restart {
                restart(&state, &runtime, reason: "a write at \(offset), behind the \(runtime.claimed) bytes already sent")
            }
            do throws(DataFileError) {
                try file.write(bytes, at: offset)
            } catch {
                throw JournalError(error.errno, "Writing '\(runtime.record.displayName)' to the journal failed: \(error.message)")
            }
            runtime.size = max(runtime.size, end)
            state.records[id] = runtime
            account(&state, id)
            startStreaming(&state, id)
            return offset
        }
    }

    /// Writes `buffer` at `offset`, waiting for room in the journal (never failing for the lack
    /// of it) and for the file's current content when it is being downloaded.
    ///
    /// - Returns: the offset written at (the file's end when `appending`).
    @discardableResult
    public func write(_ id: String, at offset: Int64, buffer: ByteBuffer, appending: Bool = false) async throws(JournalError) -> Int64 {
        while true {
            try await awaitPrefill(id)
            guard try await reopenIfClosed(id) else {
                throw JournalError(ESTALE, "The file was already saved; reopen it to change it")
            }
            let written = try buffer.withUnsafeReadableBytes { bytes throws(JournalError) in
                try writeNow(id, at: offset, bytes: bytes, appending: appending)
            }
            if let written { return written }
            try await awaitRoom(writing: id)
        }
    }

    /// Sets the file's length: cut, or extended with zeros.
    public func truncate(_ id: String, to length: Int64) async throws(JournalError) {
        guard length >= 0 else { throw JournalError(EINVAL, "Negative length \(length)") }
        try await awaitPrefill(id)
        guard try await reopenIfClosed(id) else {
            throw JournalError(ESTALE, "The file was already saved; reopen it to change it")
        }
        try state.withLock { state throws(JournalError) in
            guard state.records[id]?.record.state == .open else { throw JournalError.unknown(id) }
            let file = try openData(&state, id)
            guard var runtime = state.records[id] else { throw JournalError.unknown(id) }
            if length < runtime.claimed && !runtime.restart {
                restart(&state, &runtime, reason: "truncated to \(length), below the \(runtime.claimed) bytes already sent")
            }
            do throws(DataFileError) {
                try file.truncate(to: length)
            } catch {
                throw JournalError(error.errno, "Truncating '\(runtime.record.displayName)' in the journal failed: \(error.message)")
            }
            runtime.size = length
            state.records[id] = runtime
            account(&state, id)
        }
    }

    /// Up to `count` bytes at `offset` of a pending file.
    public func read(_ id: String, at offset: Int64, count: Int) async throws(JournalError) -> ByteBuffer {
        try await awaitPrefill(id)
        let (file, size) = try state.withLock { state throws(JournalError) -> (DataFile, Int64) in
            (try openData(&state, id), state.records[id]?.size ?? 0)
        }
        guard offset < size, count > 0 else { return ByteBuffer() }
        do {
            return try file.read(at: offset, count: Int(min(Int64(count), size - offset)))
        } catch {
            throw JournalError(error.errno, "Reading the journal failed: \(error.message)")
        }
    }

    /// Another handle opens a record for writing. Returns `false` when the record is saved
    /// already (or being saved, or gone): the caller then changes the saved file.
    public func attach(_ id: String) async throws(JournalError) -> Bool {
        while true {
            guard try await reopenIfClosed(id) else { return false }
            let attached = state.withLock { state -> Bool? in
                switch state.records[id]?.record.state {
                case .open?:
                    state.records[id]?.writers += 1
                    return true
                case .sealed?, .failed?:
                    // Closed again (by another handle) while the reopening was recorded: again.
                    return nil
                case .finalizing?, .finalized?, .abandoned?, nil:
                    return false
                }
            }
            if let attached { return attached }
        }
    }

    /// A sealed (or failed) record that is written again is open once more (durably: a crash now
    /// must not upload a mix of old and new bytes), and its upload stops. `false` when the record
    /// is saved already, being saved, or gone.
    func reopenIfClosed(_ id: String) async throws(JournalError) -> Bool {
        let reopened = state.withLock { state -> JournalRecord?? in
            guard var runtime = state.records[id] else { return .some(nil) }
            switch runtime.record.state {
            case .open: return nil
            case .finalizing, .finalized, .abandoned: return .some(nil)
            case .sealed, .failed:
                reopen(&state, &runtime)
                state.records[id] = runtime
                account(&state, id)
                return .some(runtime.record)
            }
        }
        switch reopened {
        case .none: return true
        case .some(.none): return false
        case .some(.some(let record)):
            do {
                // Its state when the write runs: a seal queued meanwhile is not undone.
                try await persist(id, durable: true)
            } catch {
                throw JournalError(EIO, "Recording '\(record.displayName)' in the journal failed: \(error)")
            }
            return true
        }
    }

    /// How many handles have the record open for writing.
    public func writers(_ id: String) -> Int {
        state.withLock { $0.records[id]?.writers ?? 0 }
    }

    /// A write handle was closed (released). The last one seals the record.
    public func detach(_ id: String) async throws(JournalError) {
        let last = state.withLock { state -> Bool in
            guard var runtime = state.records[id] else { return false }
            runtime.writers = max(0, runtime.writers - 1)
            state.records[id] = runtime
            return runtime.writers == 0 && runtime.record.state == .open
        }
        if last { try await seal(id) }
    }

    /// The writer is done: makes the bytes durable and queues the upload. What is sealed is
    /// uploaded and finalized exactly once, even across a crash.
    ///
    /// A small file's bytes (up to ``sealedBytesLimit``) are committed with the record, in one
    /// sync of the journal database; recovery writes them back into the data file. A larger
    /// file's data file is synced (`fdatasync`, and its directory the first time), then the
    /// record is committed with its length.
    public func seal(_ id: String) async throws(JournalError) {
        try await awaitPrefill(id)
        guard
            let (file, size, needsDirectorySync) = try state.withLock({ state throws(JournalError) -> (DataFile, Int64, Bool)? in
                guard let runtime = state.records[id], runtime.record.state == .open else { return nil }
                return (try openData(&state, id), runtime.size, !runtime.directorySynced)
            })
        else { return }
        var bytes: Data?
        if size <= Self.sealedBytesLimit, let read = try? file.read(at: 0, count: Int(size)), read.readableBytes == Int(size) {
            bytes = Data(read.readableBytesView)
        }
        if let small = bytes {
            switch await commitSeal(id, length: Int64(small.count), synced: false, bytes: small) {
            case .gone: return
            case .committed: break
            case .failed(let record, let error):
                throw JournalError(EIO, "Recording '\(record.displayName)' in the journal failed: \(error)")
            case .changed:
                // Written meanwhile (another descriptor of the same writer): the data file is synced.
                bytes = nil
            }
        }
        if bytes == nil {
            try await synchronize(file, directory: needsDirectorySync)
            switch await commitSeal(id, length: nil, synced: true, bytes: nil) {
            case .gone, .changed: return
            case .committed: break
            case .failed(let record, let error):
                throw JournalError(EIO, "Recording '\(record.displayName)' in the journal failed: \(error)")
            }
        }
        state.withLock { state in
            enqueue(&state, id)
            schedule(&state)
        }
    }

    /// The largest file whose bytes a seal commits with its record (instead of syncing its data
    /// file): the two syncs saved cost more than writing this much into the database's log.
    static let sealedBytesLimit: Int64 = 128 << 10

    private enum Sealing {
        case sealed
        /// Its length is no longer the one read.
        case changed
    }

    private enum SealCommit {
        case committed
        case failed(JournalRecord, any Error)
        /// Its length is no longer the one read.
        case changed
        /// No longer open (sealed by another close, given up).
        case gone
    }

    /// Marks the record sealed and commits it (with `bytes`, a small file's content). The commit
    /// is queued under the lock that marks the record sealed: a save of the record queued later
    /// (they save its state as it is when they run, a reopening's included) comes after it.
    private func commitSeal(_ id: String, length: Int64?, synced: Bool, bytes: Data?) async -> SealCommit {
        await withCheckedContinuation { continuation in
            let marked = sealing(id, length: length, synced: synced) { record in
                store.seal(record, bytes: bytes) { error in
                    continuation.resume(returning: error.map { .failed(record, $0) } ?? .committed)
                }
            }
            switch marked {
            case nil: continuation.resume(returning: .gone)
            case .changed: continuation.resume(returning: .changed)
            case .sealed: break
            }
        }
    }

    /// Marks an open record sealed (under the lock), if its length is still `length` (when
    /// given), and hands the sealed record to `commit` before the lock is released. `synced`: its
    /// data file and directory entry are durable.
    private func sealing(
        _ id: String, length: Int64?, synced: Bool, commit: (JournalRecord) -> Void
    ) -> Sealing? {
        state.withLock { state -> Sealing? in
            guard var runtime = state.records[id], runtime.record.state == .open else { return nil }
            if let length, runtime.size != length { return .changed }
            runtime.record.state = .sealed
            runtime.record.size = runtime.size
            runtime.record.sealed = Date().timeIntervalSince1970
            if synced { runtime.directorySynced = true }
            if runtime.writers == 0 && !runtime.sending { runtime.data = nil }
            state.records[id] = runtime
            commit(runtime.record)
            return .sealed
        }
    }

    /// `fsync` of a file: an open one's bytes become durable here (it is not finalized: the
    /// program may go on writing); a closed one is waited for until the Media Manager has it.
    public func sync(_ id: String) async throws(JournalError) {
        guard let current = state.withLock({ $0.records[id]?.record.state }) else { return }
        switch current {
        case .open:
            let file = try state.withLock { state throws(JournalError) in try openData(&state, id) }
            try await synchronize(file, directory: false)
        case .sealed, .finalizing, .finalized:
            _ = try await finalized(id)
        case .failed, .abandoned:
            return
        }
    }

    /// Keeps attributes to store for the file once it is saved. A file whose completion stored
    /// its attributes already, or that left the journal saved, has them stored at once (under
    /// the saved file's id and hash).
    public func setAttributes(_ id: String, mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, modified: Date? = nil, accessed: Date? = nil) {
        let (state, saved) = self.state.withLock { state -> (JournalRecord.State?, MediaManager.FileDescriptor?) in
            guard var runtime = state.records[id] else {
                if case .success(let file)? = state.outcomes[id] { return (nil, file) }
                return (nil, nil)
            }
            if let mode { runtime.record.mode = mode }
            if let uid { runtime.record.uid = uid }
            if let gid { runtime.record.gid = gid }
            if let modified { runtime.record.modified = modified.timeIntervalSince1970 }
            if let accessed { runtime.record.accessed = accessed.timeIntervalSince1970 }
            state.records[id] = runtime
            return (runtime.record.state, runtime.attributesFile)
        }
        if let saved {
            attributes.update(id: saved.id, hash: saved.hash) { stored in
                if let mode { stored.mode = mode }
                if let uid { stored.uid = uid }
                if let gid { stored.gid = gid }
                if let modified { stored.modified = modified.timeIntervalSince1970 }
                if let accessed { stored.accessed = accessed.timeIntervalSince1970 }
            }
        }
        guard let state else { return }
        // Only sealed records must survive a crash (an open one is given up then anyway), and
        // attributes are a hint: they become durable with the record's next durable save. Queued,
        // not waited for, so that a chmod or utimensat is answered at once (a FUSE thread must
        // not wait behind the durable saves of other files).
        if state != .open {
            let logger = self.logger
            store.saveSoon { self.state.withLock { $0.records[id]?.record } } failed: { error in
                logger.warning("Could not record the attributes of a file being written", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Keeps labels to give the file once it is saved.
    public func setLabels(_ id: String, _ labels: [String]) async throws(JournalError) {
        guard state.withLock({ state -> Bool in
            guard state.records[id] != nil else { return false }
            state.records[id]?.record.labels = labels
            return true
        }) else { throw JournalError.unknown(id) }
        do {
            try await persist(id)
        } catch {
            throw JournalError(EIO, "Recording the labels in the journal failed: \(error)")
        }
    }

    // MARK: Waiting

    /// Waits until the Media Manager has the file (it goes first in the queue meanwhile), and
    /// returns it; throws what made it fail. Cancelling the waiting task ends the wait with
    /// ``JournalError/interrupted``; the upload goes on.
    public func finalized(_ id: String) async throws(JournalError) -> MediaManager.FileDescriptor {
        let key = UUID()
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<MediaManager.FileDescriptor, any Error>) in
                    state.withLock { state in
                        if Task.isCancelled {
                            continuation.resume(throwing: JournalError.interrupted)
                            return
                        }
                        guard var runtime = state.records[id] else {
                            switch state.outcomes[id] {
                            case .success(let file): continuation.resume(returning: file)
                            case .failure(let error): continuation.resume(throwing: error)
                            case nil: continuation.resume(throwing: JournalError.unknown(id))
                            }
                            return
                        }
                        if runtime.record.state == .failed {
                            continuation.resume(throwing: JournalError(EIO, runtime.record.lastError ?? "The upload failed"))
                            return
                        }
                        runtime.waiters[key] = continuation
                        runtime.notBefore = nil
                        state.records[id] = runtime
                        state.urgent.append(id)
                        schedule(&state)
                    }
                }
            } onCancel: {
                let waiter = state.withLock { $0.records[id]?.waiters.removeValue(forKey: key) }
                waiter?.resume(throwing: JournalError.interrupted)
            }
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(EIO, "\(error)")
        }
    }

    /// Waits until `id`'s download of its current content finished.
    func awaitPrefill(_ id: String) async throws(JournalError) {
        guard let task = state.withLock({ $0.records[id]?.prefill }) else { return }
        do {
            try await task.value
        } catch {
            let name = state.withLock { $0.records[id]?.record.displayName } ?? id
            throw JournalError(EIO, "Downloading the current content of '\(name)' to change it failed: \(error)")
        }
        state.withLock { state in
            state.records[id]?.prefill = nil
        }
    }

    /// Waits until the journal has room for more bytes (or writing cannot wait for it).
    func awaitRoom(writing id: String) async throws(JournalError) {
        let key = UUID()
        do {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    state.withLock { state in
                        if Task.isCancelled {
                            continuation.resume(throwing: JournalError.interrupted)
                        } else if !mustWaitForRoom(state, writing: id) {
                            continuation.resume()
                        } else {
                            state.spaceWaiters[key] = continuation
                            if !state.overLimitLogged {
                                state.overLimitLogged = true
                                logger.notice(
                                    "The journal holds \(state.unacknowledged >> 20) MiB not yet in the Media Manager (--cache-max-size \(configuration.maximumSize >> 20) MiB); writes wait for uploads")
                            }
                            // Make sure whatever can drain the journal is running.
                            startStreaming(&state, id)
                            schedule(&state)
                        }
                    }
                }
            } onCancel: {
                let waiter = state.withLock { $0.spaceWaiters.removeValue(forKey: key) }
                waiter?.resume(throwing: JournalError.interrupted)
            }
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(EIO, "\(error)")
        }
    }

    /// Whether a write that grows the journal must wait: it holds more than the limit, and some
    /// upload can bring it down (otherwise waiting would never end).
    func mustWaitForRoom(_ state: State, writing id: String?) -> Bool {
        guard state.unacknowledged > configuration.maximumSize else { return false }
        return state.records.values.contains { runtime in
            guard runtime.counted > 0 else { return false }
            switch runtime.record.state {
            case .sealed, .finalizing: return true
            case .open: return state.streaming != false && !runtime.restart
            case .finalized, .failed, .abandoned: return false
            }
        }
    }

    // MARK: Changing state (under the lock)

    /// A sealed (or failed) record is written again: it is open once more, its upload stops.
    ///
    /// Its upload, if one began, is given up: a sealed record's upload is created with the
    /// sealed length (or has declared it), so the server would refuse the bytes of a longer file
    /// and take a same-length rewrite for the old content; and what it holds may predate the
    /// bytes written now.
    func reopen(_ state: inout State, _ runtime: inout Runtime) {
        runtime.record.state = .open
        runtime.reopened += 1
        runtime.record.lastError = nil
        runtime.record.attempts = 0
        runtime.consecutiveFailures = 0
        runtime.notBefore = nil
        state.transfers[runtime.record.id]?.cancel()
        if runtime.record.tusLocation != nil || runtime.claimed > 0 || runtime.sending {
            forgetUpload(&runtime)
        }
    }

    /// The tus upload no longer matches the bytes: it is given up and a new one is sent from the
    /// journal once the file is sealed.
    func restart(_ state: inout State, _ runtime: inout Runtime, reason: String) {
        logger.debug("'\(runtime.record.displayName)': the upload starts over (\(reason))")
        if runtime.record.state == .open { state.transfers[runtime.record.id]?.cancel() }
        forgetUpload(&runtime)
    }

    /// The record forgets its tus upload and the token it used, now rather than when the new
    /// upload begins: the record is saved when sealed, and a process that dies before the new
    /// upload begins must not leave a record that names the old one (the next process would
    /// resume it, and the file saved would be the bytes sent before the change followed by the
    /// rest). The old upload is terminated; a transfer still sending to it was cancelled.
    func forgetUpload(_ runtime: inout Runtime) {
        runtime.restart = true
        runtime.acknowledged = 0
        if let location = runtime.record.tusLocation { terminateInBackground(location) }
        runtime.record.tusLocation = nil
        runtime.record.tusLengthDeclared = false
        runtime.record.acknowledged = 0
        runtime.record.uploadToken = nil
        runtime.record.uploadURL = nil
        runtime.record.expectedFileId = nil
    }

    /// Makes `file` durable (and the data directory's entries, if asked), on a thread of NIO's
    /// blocking-I/O pool: the sync of a large file can take seconds, and a task waiting in it on
    /// the cooperative pool (two threads on two cores) would hold up every other request.
    func synchronize(_ file: DataFile, directory: Bool) async throws(JournalError) {
        let dataDirectory = self.dataDirectory
        let result: Result<Void, DataFileError>
        do {
            result = try await NIOThreadPool.singleton.runIfActive {
                Result { () throws(DataFileError) in
                    try file.synchronize()
                    if directory { try Self.synchronizeDirectory(dataDirectory) }
                }
            }
        } catch {
            throw JournalError(EIO, "Making the journal durable failed: \(error)")
        }
        do {
            try result.get()
        } catch {
            throw JournalError(error.errno, "Making the journal durable failed: \(error.message)")
        }
    }

    static func synchronizeDirectory(_ path: String) throws(DataFileError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw DataFileError(errno, "open", path) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw DataFileError(errno, "sync", path) }
    }
}
