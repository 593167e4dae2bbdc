import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why a transfer stopped short, and what comes next.
enum TransferSetback: Error {
    /// The tus upload is unusable (gone, offsets or length disagree): send anew from the journal.
    case restartUpload(String)
    /// The token is unusable (expired, refused): a new one, and send anew.
    case newToken(String)
}

extension Journal {
    /// Files up to this size go whole in the request that creates their upload.
    static let wholeWithCreation: Int64 = 4 << 20

    // MARK: Scheduling (under the lock)

    /// Starts transfers while slots are free: records someone waits for first, then in the order
    /// they were queued (sealed); records backing off come back when their delay is over.
    func schedule(_ state: inout State) {
        guard !state.stopping else { return }
        let now = clock.now
        if state.delayed.contains(where: { $0.until <= now }) {
            var waiting: [(id: String, until: ContinuousClock.Instant)] = []
            for entry in state.delayed {
                if entry.until <= now {
                    state.records[entry.id]?.notBefore = nil
                    state.queue.append(entry.id)
                } else {
                    waiting.append(entry)
                }
            }
            state.delayed = waiting
        }
        while state.transfers.count < configuration.transfers, let id = next(&state) {
            guard let runtime = state.records[id], !runtime.sending, runtime.notBefore.map({ $0 <= now }) ?? true,
                runtime.record.state == .sealed || runtime.record.state == .finalizing || runtime.record.state == .finalized
            else { continue }
            launch(&state, id)
        }
        // Come back when the first record backing off may go again.
        if let next = state.delayed.map(\.until).min(), state.wakeupAt.map({ next < $0 }) ?? true {
            state.wakeup?.cancel()
            state.wakeupAt = next
            state.wakeup = Task {
                try? await Task.sleep(until: next, clock: self.clock)
                guard !Task.isCancelled else { return }
                self.state.withLock { state in
                    state.wakeup = nil
                    state.wakeupAt = nil
                    self.schedule(&state)
                }
            }
        }
    }

    /// The next record to consider: one someone waits for, else the oldest queued.
    private func next(_ state: inout State) -> String? {
        if !state.urgent.isEmpty { return state.urgent.removeFirst() }
        guard state.queueHead < state.queue.count else {
            state.queue = []
            state.queueHead = 0
            return nil
        }
        let id = state.queue[state.queueHead]
        state.queueHead += 1
        if state.queueHead > 1024 && state.queueHead * 2 > state.queue.count {
            state.queue.removeFirst(state.queueHead)
            state.queueHead = 0
        }
        return id
    }

    /// Puts a record in line for a transfer (after its delay, if it is backing off).
    func enqueue(_ state: inout State, _ id: String) {
        if let until = state.records[id]?.notBefore, until > clock.now {
            state.delayed.append((id, until))
        } else {
            state.queue.append(id)
        }
    }

    /// Streams what an open record has gathered, if a slot is free.
    func startStreaming(_ state: inout State, _ id: String) {
        guard !state.stopping, state.streaming != false, state.transfers.count < configuration.transfers,
            let runtime = state.records[id], runtime.record.state == .open, !runtime.sending, !runtime.restart,
            runtime.prefill == nil
        else { return }
        if let notBefore = runtime.notBefore, notBefore > clock.now { return }
        let threshold = state.spaceWaiters.isEmpty ? Int64(configuration.streamChunk) : 1
        guard runtime.size - runtime.claimed >= threshold else { return }
        launch(&state, id)
    }

    private func launch(_ state: inout State, _ id: String) {
        state.records[id]?.sending = true
        // Behind the requests of programs waiting on the mount.
        state.transfers[id] = Task(priority: .utility) { await self.transfer(id) }
    }

    // MARK: One transfer

    /// Moves a record as far as it can go: streams an open one, uploads, finalizes and completes a
    /// sealed one. Failures are handled here (retried later, or the record fails).
    func transfer(_ id: String) async {
        do {
            try await advance(id)
        } catch {
            await setback(id, error)
        }
        state.withLock { state in
            state.transfers[id] = nil
            if var runtime = state.records[id] {
                runtime.sending = false
                if runtime.record.state != .open && runtime.writers == 0 { runtime.data = nil }
                state.records[id] = runtime
                // Not done (set back, or sealed while it streamed): in line again.
                switch runtime.record.state {
                case .sealed, .finalizing, .finalized: enqueue(&state, id)
                case .open, .failed, .abandoned: break
                }
            }
            startStreaming(&state, id)
            schedule(&state)
            wakeSpaceWaiters(&state)
        }
    }

    private func advance(_ id: String) async throws {
        while true {
            try Task.checkCancellation()
            guard let current = state.withLock({ $0.records[id]?.record.state }) else { return }
            switch current {
            case .open:
                try await stream(id)
                return
            case .sealed:
                let reopened = try runtime(id).reopened
                await reach(.sending, id)
                try Task.checkCancellation()
                try await upload(id)
                await reach(.uploaded, id)
                try await markFinalizing(id, unlessReopenedSince: reopened)
            case .finalizing:
                try await finalize(id)
                await reach(.finalized, id)
            case .finalized:
                try await complete(id)
                return
            case .failed, .abandoned:
                return
            }
        }
    }

    /// A snapshot of a record's runtime state.
    private func runtime(_ id: String) throws -> Runtime {
        guard let runtime = state.withLock({ $0.records[id] }) else { throw CancellationError() }
        return runtime
    }

    /// A sealed record whose bytes are all on the server is finalizing, durably (a finalize
    /// follows: a crash must find the record in this state). Not when it was written again since
    /// its upload began (`reopened` then): what was sent is not what was written last, and the
    /// transfer stops (the record, sealed again, is uploaded anew).
    private func markFinalizing(_ id: String, unlessReopenedSince reopened: Int) async throws {
        let marked = state.withLock { state -> Bool in
            guard var runtime = state.records[id], runtime.record.state == .sealed, runtime.reopened == reopened else { return false }
            runtime.record.state = .finalizing
            state.records[id] = runtime
            return true
        }
        guard marked else { throw CancellationError() }
        try await persist(id, durable: true)
    }

    /// Saves the record's current state (the latest one wins, whatever the order of saves):
    /// durably, or as a hint the journal can do without after a crash.
    func persist(_ id: String, durable: Bool = false) async throws {
        try await store.save(durable: durable) { [self] in self.state.withLock { $0.records[id]?.record } }
    }

    func metadata(_ record: JournalRecord, token: String) -> [String: String] {
        ["filename": record.displayName, "contentType": record.mimeType, "token": token]
    }

    // MARK: Token and server

    /// The record's upload URL and token: the one it has, the one fetched ahead for it, or a new
    /// one. A record renamed into another folder before its upload began gets a token for that
    /// folder (no move afterwards).
    func ensureToken(_ id: String) async throws -> (url: String, token: String) {
        let current = try runtime(id)
        let record = current.record
        if let url = record.uploadURL, let token = record.uploadToken,
            record.tokenFolderId == record.parentFolderId || record.tusLocation != nil
        {
            return (url, token)
        }
        let response: GenerateResumableUploadUrlResponse
        // The token fetched ahead is waited for with this transfer: stopping the transfer (an
        // unmount) stops its fetch, which during an outage would retry up to the outage limit.
        if let ahead = current.token, ahead.folder == record.parentFolderId, record.uploadToken == nil,
            let fetched = try? await withTaskCancellationHandler(operation: { try await ahead.task.value }, onCancel: { ahead.task.cancel() })
        {
            response = fetched
        } else {
            response = try await tokens.take(folder: record.parentFolderId, mimeType: record.mimeType, fileName: record.displayName)
        }
        let folder = record.parentFolderId
        state.withLock { state in
            guard var runtime = state.records[id] else { return }
            runtime.token = nil
            runtime.record.uploadURL = response.uploadUrl
            runtime.record.uploadToken = response.uploadToken
            runtime.record.tokenFolderId = folder
            runtime.record.expectedFileId = response.announcedFileId
            runtime.lastProgress = clock.now
            state.records[id] = runtime
        }
        try await persist(id)
        return (response.uploadUrl, response.uploadToken)
    }

    /// The upload server's tus features (asked once).
    func capabilities(_ uploadURL: String) async throws -> TusServerCapabilities {
        if let known = state.withLock({ $0.capabilities }) { return known }
        let discovered = try await tus.discover(creationURL: uploadURL)
        state.withLock { state in
            state.capabilities = discovered
            if !discovered.supportsDeferredLength {
                state.streaming = false
                wakeSpaceWaiters(&state)
            }
        }
        return discovered
    }

    // MARK: Streaming while written

    /// Sends the bytes an open record has gathered, in order, as `PATCH` bodies of a
    /// deferred-length upload; stops when too few are left, the record is sealed, or something
    /// went wrong (the sealed upload takes over from the server's offset).
    private func stream(_ id: String) async throws {
        let (url, token) = try await ensureToken(id)
        let capabilities = try await capabilities(url)
        guard capabilities.supportsDeferredLength else { return }
        while true {
            try Task.checkCancellation()
            let claim = try state.withLock { state throws(JournalError) -> (range: Range<Int64>, record: JournalRecord, file: DataFile)? in
                guard var runtime = state.records[id], runtime.record.state == .open, !runtime.restart else { return nil }
                let threshold = state.spaceWaiters.isEmpty ? Int64(configuration.streamChunk) : 1
                let available = runtime.size - runtime.claimed
                guard available >= threshold else { return nil }
                let range = runtime.claimed..<(runtime.claimed + min(available, Int64(configuration.maximumPatch)))
                runtime.claimed = range.upperBound
                state.records[id] = runtime
                return (range, runtime.record, try openData(&state, id))
            }
            guard let claim else { return }
            var location = claim.record.tusLocation
            if location == nil {
                // Created empty and recorded before any byte goes, so that a crash can always
                // terminate it.
                let created = try await tus.create(
                    at: url, length: nil, metadata: metadata(claim.record, token: token), capabilities: capabilities)
                let recorded = state.withLock { state -> Bool in
                    // Restarted meanwhile: this upload would hold bytes the file no longer has.
                    guard state.records[id]?.restart == false else { return false }
                    state.records[id]?.record.tusLocation = created.url
                    state.records[id]?.record.tusLengthDeclared = false
                    return true
                }
                guard recorded else {
                    terminateInBackground(created.url)
                    throw CancellationError()
                }
                try await persist(id)
                location = created.url
            }
            let acknowledged: Int64
            do {
                acknowledged = try await tus.send(claim.file, range: claim.range, to: location!, capabilities: capabilities)
            } catch let error as ResumableError where error.status == 400 && state.withLock({ $0.streaming == nil }) {
                // The server takes no bytes before the length is known: files go out once closed.
                logger.notice(
                    "The upload server wants each file's length before its bytes; files are uploaded once closed",
                    metadata: ["error": "\(error)"])
                state.withLock { state in
                    state.streaming = false
                    state.records[id]?.claimed = 0
                    // Writers held back for this file's streaming must not wait for it.
                    wakeSpaceWaiters(&state)
                }
                await dropUpload(id, newToken: false)
                return
            }
            state.withLock { $0.streaming = true }
            acknowledge(id, acknowledged)
            await reach(.streamed, id)
        }
    }

    /// The server holds `offset` bytes of the record's upload.
    private func acknowledge(_ id: String, _ offset: Int64) {
        state.withLock { state in
            // Restarted: the offset is the given-up upload's.
            guard var runtime = state.records[id], !runtime.restart else { return }
            let gained = offset - runtime.acknowledged
            if gained > 0 { state.meter.add(gained, at: clock.now) }
            runtime.acknowledged = offset
            runtime.record.acknowledged = offset
            runtime.lastProgress = clock.now
            runtime.consecutiveFailures = 0
            state.records[id] = runtime
            account(&state, id)
        }
    }

    // MARK: Uploading a sealed record

    /// Sends what the server lacks of a sealed record: creates the upload (with the first bytes in
    /// the same request) or asks the server for its offset (`HEAD`), then `PATCH`es the rest and
    /// declares the length.
    private func upload(_ id: String) async throws {
        var current = try runtime(id)
        if current.restart {
            await dropUpload(id, newToken: true)
            current = try runtime(id)
        }
        let (url, token) = try await ensureToken(id)
        let capabilities = try await capabilities(url)
        current = try runtime(id)
        let record = current.record
        let size = record.size
        var position: Int64
        var declare: Int64?
        let location: String
        if let existing = record.tusLocation {
            let server: TusClient.UploadState
            do {
                server = try await tus.state(of: existing)
            } catch let error as ResumableError where error.code == .uploadNotFound {
                throw TransferSetback.restartUpload("the server no longer has the upload")
            }
            if let length = server.length, length != size {
                throw TransferSetback.restartUpload("the server's upload has \(length) bytes, the file \(size)")
            }
            guard server.offset <= size else {
                throw TransferSetback.restartUpload("the server holds \(server.offset) bytes of a \(size)-byte file")
            }
            location = existing
            position = server.offset
            declare = server.length == nil ? size : nil
        } else {
            // A small file goes whole with the creation (one round trip); a larger one's upload is
            // created empty and recorded before its bytes go, so that a crash leaves no upload
            // the journal does not know.
            let first = 0..<(size <= Self.wholeWithCreation ? size : 0)
            state.withLock { state in
                if let claimed = state.records[id]?.claimed { state.records[id]?.claimed = max(claimed, first.upperBound) }
            }
            let created = try await tus.create(
                at: url, length: size, metadata: metadata(record, token: token), capabilities: capabilities, sending: try dataFile(id),
                range: first)
            let recorded = state.withLock { state -> Bool in
                // Written again meanwhile: the upload has the old length and bytes.
                guard let runtime = state.records[id], runtime.record.state == .sealed, runtime.reopened == current.reopened,
                    !runtime.restart
                else { return false }
                state.records[id]?.record.tusLocation = created.url
                state.records[id]?.record.tusLengthDeclared = true
                return true
            }
            guard recorded else {
                terminateInBackground(created.url)
                throw CancellationError()
            }
            try await persist(id)
            location = created.url
            position = created.offset
            declare = nil
        }
        acknowledge(id, position)
        while position < size || declare != nil {
            try Task.checkCancellation()
            let end = min(size, position + Int64(configuration.maximumPatch))
            state.withLock { state in
                if let claimed = state.records[id]?.claimed { state.records[id]?.claimed = max(claimed, end) }
            }
            position = try await tus.send(try dataFile(id), range: position..<end, to: location, declaringLength: declare, capabilities: capabilities)
            declare = nil
            state.withLock { state in
                state.records[id]?.record.tusLengthDeclared = true
            }
            acknowledge(id, position)
        }
    }

    /// Gives up the record's tus upload (terminated in the background) so that the next attempt
    /// sends anew from the journal, with a new token if asked.
    func dropUpload(_ id: String, newToken: Bool) async {
        let old = state.withLock { state -> String? in
            guard var runtime = state.records[id] else { return nil }
            let location = runtime.record.tusLocation
            runtime.record.tusLocation = nil
            runtime.record.tusLengthDeclared = false
            runtime.record.acknowledged = 0
            runtime.acknowledged = 0
            runtime.claimed = 0
            runtime.restart = false
            if newToken {
                runtime.record.uploadToken = nil
                runtime.record.uploadURL = nil
                runtime.record.expectedFileId = nil
                runtime.token = nil
            }
            if runtime.record.state == .finalizing { runtime.record.state = .sealed }
            state.records[id] = runtime
            account(&state, id)
            return location
        }
        do {
            try await persist(id)
        } catch {
            logger.warning("Could not record a restarted upload", metadata: ["error": "\(error)"])
        }
        if let old { terminateInBackground(old) }
    }

    func terminateInBackground(_ location: String) {
        let tus = self.tus
        let logger = self.logger
        Task {
            do {
                try await tus.terminate(uploadURL: location)
            } catch {
                logger.debug("Terminating an abandoned upload failed (it expires on the server)", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Finalizing

    /// Finalizes a record whose bytes are all on the server, exactly once: when an earlier
    /// request may have gone through (its answer lost, or the process died), the file is looked
    /// for first — by the id its token announced, else by its MD5 among the folder's files.
    private func finalize(_ id: String) async throws {
        let current = try runtime(id)
        let record = current.record
        guard let url = record.uploadURL, let token = record.uploadToken else {
            throw TransferSetback.newToken("the record has no upload token")
        }
        var file: MediaManager.FileDescriptor?
        if current.uncertain {
            file = try await findFinalized(record, file: try dataFile(id))
        }
        if file == nil {
            state.withLock { $0.records[id]?.uncertain = true }
            do {
                file = try await client.uploads.finalizeResumableUpload(uploadUrl: url, uploadToken: token, fileName: record.displayName)
            } catch let error as MediaManagerError {
                switch error.status {
                case 429:
                    // The token was used: an earlier attempt went through.
                    guard let found = try await findFinalized(record, file: try dataFile(id)) else {
                        throw TransferSetback.newToken("the token was already used and no file of this upload exists")
                    }
                    file = found
                case 404, 410:
                    throw TransferSetback.restartUpload("the upload host has no upload for this token")
                case 409:
                    // Bytes missing: ask the server what it has and send the rest.
                    state.withLock { $0.records[id]?.record.state = .sealed }
                    try await persist(id)
                    throw RetryLater.soon
                case 401, 403:
                    throw TransferSetback.newToken("the upload host refused the token (\(error.status ?? 0))")
                default:
                    throw error
                }
            }
        }
        guard let file else { return }
        state.withLock { state in
            guard var runtime = state.records[id] else { return }
            runtime.record.state = .finalized
            runtime.record.file = file
            runtime.uncertain = false
            runtime.lastProgress = clock.now
            state.records[id] = runtime
            account(&state, id)
        }
        try await persist(id)
    }

    /// The file an earlier finalize of `record` created, if it exists.
    private func findFinalized(_ record: JournalRecord, file data: DataFile) async throws -> MediaManager.FileDescriptor? {
        if let expected = record.expectedFileId {
            do {
                let file = try await client.files.get(id: expected)
                return file.state == .deleted ? nil : file
            } catch let error as MediaManagerError where error.code == .notFound {
                return nil
            }
        }
        // No id announced: the MD5 of the bytes tells it apart (never the name and size alone).
        let folder = record.tokenFolderId ?? record.parentFolderId
        let page = try await client.files.list(
            parentFolderId: folder, sort: Sorting(fieldName: "updatedDate", order: .descending), limit: 100)
        let candidates = page.files.filter { $0.sizeInBytes == record.size && !$0.hash.isEmpty }
        guard !candidates.isEmpty else { return nil }
        let digest = try MD5Digest.of(data, length: record.size)
        return candidates.first { $0.hash.lowercased() == digest }
    }

    // MARK: Completing

    /// The follow-up steps of a saved file: moved and renamed where it was renamed to meanwhile,
    /// the files it replaces trashed, its attributes stored; then it leaves the journal.
    private func complete(_ id: String) async throws {
        let current = try runtime(id)
        let record = current.record
        guard var file = record.file else {
            throw TransferSetback.restartUpload("a saved record lost its file")
        }
        let labels = record.labels.flatMap { $0 == file.labels ? nil : $0 }
        if file.parentFolderId != record.parentFolderId || file.displayName != record.displayName || labels != nil {
            do {
                let before = file
                file = try await client.files.update(
                    id: file.id,
                    displayName: file.displayName != record.displayName ? record.displayName : nil,
                    labels: labels,
                    parentFolderId: file.parentFolderId != record.parentFolderId ? record.parentFolderId : nil)
                // Moved: a listing read before shows it where it was.
                if file.parentFolderId != before.parentFolderId || file.displayName != before.displayName {
                    let moved = file
                    state.withLock { notePlaced(&$0, fileId: moved.id, folderId: moved.parentFolderId, displayName: moved.displayName) }
                }
            } catch let error as MediaManagerError where error.code == .notFound || error.code == .badRequest {
                logger.error(
                    "'\(record.displayName)' was saved, but could not be moved where it was renamed to; it is in folder \(file.parentFolderId) as '\(file.displayName)'",
                    metadata: ["error": "\(error)"])
            }
        }
        if !record.replacing.isEmpty {
            try await trash(record.replacing, of: record.displayName)
        }
        // The attributes as they are now (a chmod may have come during the steps above); from
        // here on, ``setAttributes(_:mode:uid:gid:modified:accessed:)`` stores them with the file
        // itself. What is stored already for the file is newer (set through the saved file, or
        // by a change that came meanwhile): it is kept.
        let saved = file
        let latest = state.withLock { state -> JournalRecord? in
            state.records[id]?.attributesFile = saved
            return state.records[id]?.record
        }
        if let latest, latest.mode != nil || latest.uid != nil || latest.gid != nil || latest.modified != nil || latest.accessed != nil {
            attributes.update(id: file.id, hash: file.hash) { stored in
                if stored.mode == nil { stored.mode = latest.mode }
                if stored.uid == nil { stored.uid = latest.uid }
                if stored.gid == nil { stored.gid = latest.gid }
                if stored.modified == nil { stored.modified = latest.modified }
                if stored.accessed == nil { stored.accessed = latest.accessed }
            }
        }
        await reach(.completed, id)
        try await store.delete(id)
        try? FileManager.default.removeItem(atPath: dataPath(id))
        state.withLock { state in
            forget(&state, id, outcome: .success(saved))
        }
        emit(.finalized(record: id, file: saved))
        logger.debug("'\(record.displayName)' is in the Media Manager", metadata: ["file": "\(saved.id)"])
    }

    /// Trashes the files a saved file replaces; ones already gone are skipped.
    private func trash(_ ids: [String], of name: String) async throws {
        do {
            try await client.files.delete(ids: ids)
        } catch let error as MediaManagerError where error.code == .notFound {
            // Some are gone already: trash the others one by one.
            for id in ids {
                do {
                    try await client.files.delete(ids: [id])
                } catch let error as MediaManagerError where error.code == .notFound {
                    continue
                }
            }
        }
    }
}

/// A transient failure to retry after a backoff.
enum RetryLater: Error {
    case soon
}
