import AsyncHTTPClient
import Foundation
import Logging
import MediaManager
import NIOCore
import NIOHTTP1
import Resumable

#if canImport(Glibc)
import Glibc
#endif

/// One file being written: its resumable upload, from the first byte to the finalized file.
///
/// In **stream** mode, bytes go out as tus PATCH chunks while the program writes. The part not
/// yet handed to the upload (the tail, less than one chunk) can still be rewritten in place, and a
/// forward seek is zero-filled; a write behind the tail is refused. Memory stays at about two
/// chunks: the tail filling up and the chunk in flight. In **spool** mode the file is staged in a
/// temporary file, so any write pattern works, and uploaded (resumably) when it is finalized.
///
/// ``finalize()`` sends what is left, declares the length, and finalizes the upload; it runs
/// once, and every later call returns the same file or the same error. Operations run one at a
/// time (an actor would let another call in at every `await`).
actor FileWriter {
    enum Mode: Sendable { case stream, spool }

    struct Target: Sendable {
        var displayName: String
        var mimeType: String
        var parentFolderId: String
        /// Files this one replaces (O_TRUNC, or renamed onto while being written); they go to the
        /// trash once the new file is finalized.
        var replacing: [String] = []
    }

    /// Called as soon as the Media Manager has the file (before any follow-up rename or
    /// replacement), so that the inode takes the file's id at once.
    typealias UploadedHandler = @Sendable (FileWriter, MediaManager.FileDescriptor) -> Void

    private let client: MediaManagerClient
    private let tus: TusClient
    private let capabilities: TusServerCapabilities
    private let resumable: GenerateResumableUploadUrlResponse
    private let chunkSize: Int
    private let logger: Logger
    private let onUploaded: UploadedHandler
    private(set) var target: Target
    let mode: Mode

    private var upload: TusUpload?
    /// The tus upload a spooled file was sent to, to terminate it if the file is given up.
    private var spoolUploadURL: String?
    /// The bytes not yet handed to the upload, starting at `tailStart`.
    private var tail = ByteBuffer()
    private var tailStart: Int64 = 0
    private var staging: StagingFile?
    private(set) var size: Int64 = 0
    private(set) var wroteBytes = false
    /// Deleted while being written: writes are accepted and dropped, nothing is saved.
    private(set) var discarded = false
    private var failure: FilesystemError?
    private var finished: MediaManager.FileDescriptor?
    private var finalizing: Task<MediaManager.FileDescriptor, any Error>?
    private var running = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(
        client: MediaManagerClient,
        tus: TusClient,
        capabilities: TusServerCapabilities,
        resumable: GenerateResumableUploadUrlResponse,
        target: Target,
        mode: Mode,
        stagingDirectory: String,
        chunkSize: Int,
        logger: Logger,
        onUploaded: @escaping UploadedHandler
    ) throws(FilesystemError) {
        self.client = client
        self.tus = tus
        self.capabilities = capabilities
        self.resumable = resumable
        self.target = target
        self.mode = mode
        self.chunkSize = chunkSize
        self.logger = logger
        self.onUploaded = onUploaded
        if mode == .spool { self.staging = try StagingFile(directory: stagingDirectory) }
    }

    var isFinished: Bool { finished != nil }
    var isFailed: Bool { failure != nil }

    /// Runs `body` alone: the next operation starts when this one is done.
    private func exclusively<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        if running {
            await withCheckedContinuation { waiting.append($0) }
        }
        running = true
        defer {
            if waiting.isEmpty {
                running = false
            } else {
                waiting.removeFirst().resume()
            }
        }
        return try await body()
    }

    // MARK: Writing

    /// Writes `bytes` at `offset`; returns how many were taken (all of them).
    func write(_ bytes: ByteBuffer, at offset: Int64) async throws -> Int {
        try await exclusively { try await performWrite(bytes, at: offset) }
    }

    private func performWrite(_ bytes: ByteBuffer, at offset: Int64) async throws -> Int {
        let count = bytes.readableBytes
        if discarded { return count }
        try checkOpen()
        wroteBytes = true
        if let staging {
            try staging.write(bytes, at: offset)
            size = staging.size
            return count
        }
        let end = tailStart + Int64(tail.readableBytes)
        guard offset >= tailStart else {
            // The file can no longer come out as the program meant it: nothing is saved, and
            // every later write and the close report the error.
            throw refuse(
                EINVAL,
                "Writing '\(target.displayName)' at offset \(offset), behind the \(tailStart) bytes already streamed to the Media Manager: "
                    + "stream mode takes sequential writes only; mount with --write-mode spool for programs that rewrite files")
        }
        var bytes = bytes
        if offset > end {
            try await appendZeros(offset - end)
        } else if offset < end {
            // Rewrite the part of the tail not yet sent, in place.
            let overlap = min(Int(end - offset), bytes.readableBytes)
            let slice = bytes.readSlice(length: overlap)!
            tail.setBuffer(slice, at: tail.readerIndex + Int(offset - tailStart))
        }
        try await append(&bytes)
        size = max(size, tailStart + Int64(tail.readableBytes))
        return count
    }

    /// Changes the size: within the unsent tail, or growing (zero-filled); shrinking into bytes
    /// already streamed is refused.
    func truncate(to length: Int64) async throws {
        try await exclusively {
            if discarded { return }
            try checkOpen()
            wroteBytes = true
            if let staging {
                try staging.truncate(to: length)
                size = length
                return
            }
            let end = tailStart + Int64(tail.readableBytes)
            if length >= end {
                try await appendZeros(length - end)
            } else if length >= tailStart {
                tail.moveWriterIndex(to: tail.readerIndex + Int(length - tailStart))
            } else {
                throw refuse(
                    EPERM,
                    "Truncating '\(target.displayName)' to \(length) bytes, below the \(tailStart) already streamed: "
                        + "mount with --write-mode spool for programs that truncate what they wrote")
            }
            size = length
        }
    }

    /// Reads back what was written (spool mode only: a stream is not kept).
    func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        guard let staging else {
            throw FilesystemError(EBUSY, "'\(target.displayName)' is being streamed to the Media Manager and cannot be read until closed")
        }
        return try staging.read(at: offset, count: count)
    }

    /// Pushes everything written so far to the server and waits until it is acknowledged
    /// (fsync). It does not finalize: the program may keep writing. The bytes pushed can no longer
    /// be rewritten in place.
    func sync() async throws {
        try await exclusively {
            if discarded { return }
            try checkOpen()
            guard staging == nil else { return }  // staged on disk: uploaded at close
            do {
                if tail.readableBytes > 0 {
                    let upload = try await ensureUpload()
                    let chunk = tail
                    tail = ByteBuffer()
                    tailStart += Int64(chunk.readableBytes)
                    try await upload.append(chunk)
                }
                try await upload?.flush()
            } catch {
                throw fail(error, "Syncing")
            }
        }
    }

    /// Changes the name or folder the file will have, if it is not finalized yet; `replacing`
    /// is trashed once it is. Returns the finalized file otherwise (waiting for a finalize in
    /// progress), which the caller then renames through the API.
    func retarget(displayName: String, parentFolderId: String, replacing: String?) async throws -> MediaManager.FileDescriptor? {
        if let finalizing {
            return try await finalizing.value
        }
        if let finished { return finished }
        if let failure { throw failure }
        target.displayName = displayName
        target.parentFolderId = parentFolderId
        if let replacing { target.replacing.append(replacing) }
        return nil
    }

    /// Stages existing content first (spool mode opened on an existing file without O_TRUNC).
    func prefill(from url: String, size: Int64, http: HTTPClient) async throws {
        guard let staging, size > 0 else { return }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Range", value: "bytes=0-\(size - 1)")
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .minutes(10))
        } catch {
            throw FilesystemError(EIO, "Downloading '\(target.displayName)' to rewrite it failed: \(error)")
        }
        guard response.status.code == 200 || response.status.code == 206 else {
            throw FilesystemError(EIO, "Downloading '\(target.displayName)' to rewrite it answered \(response.status.code)")
        }
        var offset: Int64 = 0
        for try await chunk in response.body {
            try staging.write(chunk, at: offset)
            offset += Int64(chunk.readableBytes)
        }
        guard offset == size else { throw FilesystemError(EIO, "Downloading '\(target.displayName)' ended after \(offset) of \(size) bytes") }
        self.size = size
    }

    // MARK: Finalizing

    /// Sends the rest, finalizes the upload and returns the new file. Idempotent.
    func finalize() async throws -> MediaManager.FileDescriptor {
        if let finished { return finished }
        if let failure { throw failure }
        if let finalizing { return try await finalizing.value }
        let task = Task { try await self.exclusively { try await self.performFinalize() } }
        finalizing = task
        do {
            let file = try await task.value
            finished = file
            finalizing = nil
            return file
        } catch {
            finalizing = nil
            let failure = self.failure ?? error as? FilesystemError ?? FilesystemError(EIO, "Finalizing '\(target.displayName)' failed: \(error)")
            self.failure = failure
            abandon()
            throw failure
        }
    }

    private func performFinalize() async throws -> MediaManager.FileDescriptor {
        if let failure { throw failure }
        let metadata = ["filename": target.displayName, "contentType": target.mimeType, "token": resumable.uploadToken]
        do {
            if let staging {
                let result = try await tus.upload(
                    file: staging.path, to: resumable.uploadUrl, metadata: metadata,
                    onCreate: { [weak self] url in Task { await self?.rememberSpoolUpload(url) } })
                spoolUploadURL = result.url
            } else {
                let upload: TusUpload
                if let existing = self.upload {
                    upload = existing
                } else {
                    // Closed before the first chunk filled: one request with the whole body.
                    upload = try await tus.createUpload(
                        at: resumable.uploadUrl, length: Int64(tail.readableBytes), metadata: metadata, capabilities: capabilities)
                    self.upload = upload
                }
                if tail.readableBytes > 0 {
                    let chunk = tail
                    tail = ByteBuffer()
                    tailStart += Int64(chunk.readableBytes)
                    try await upload.append(chunk)
                }
                try await upload.finish()
            }
        } catch {
            throw fail(error, "Uploading")
        }
        if let failure { throw failure }
        var file = try await finalizeWithRetries()
        staging?.close()
        onUploaded(self, file)
        // The token fixed the folder; a rename since then moves the file after the fact.
        if file.parentFolderId != target.parentFolderId || file.displayName != target.displayName {
            do {
                file = try await client.files.update(
                    id: file.id,
                    displayName: file.displayName != target.displayName ? target.displayName : nil,
                    parentFolderId: file.parentFolderId != target.parentFolderId ? target.parentFolderId : nil)
                onUploaded(self, file)
            } catch {
                logger.error("'\(target.displayName)' was uploaded but could not be moved where it was renamed to: \(error)")
            }
        }
        if !target.replacing.isEmpty {
            do {
                try await client.files.delete(ids: target.replacing)
            } catch {
                logger.error("'\(target.displayName)' was saved, but the file(s) it replaces could not be moved to the trash: \(error)")
            }
        }
        return file
    }

    /// The finalize PUT, retried through a network outage as long as the uploads are: the bytes
    /// are all on the server, and a short blip must not lose them. A 429 after a failed attempt
    /// means that attempt did go through; the file is then looked up.
    private func finalizeWithRetries() async throws -> MediaManager.FileDescriptor {
        let policy = tus.configuration.retry
        let started = ContinuousClock.now
        var attempt = 0
        var uncertain = false
        while true {
            do {
                return try await client.uploads.finalizeResumableUpload(
                    uploadUrl: resumable.uploadUrl, uploadToken: resumable.uploadToken, fileName: target.displayName)
            } catch let error as MediaManagerError {
                if error.status == 429, uncertain, let file = try? await findFinalized() { return file }
                let transient = error.code == .transport || error.code == .serverError || error.status == 429
                guard transient, ContinuousClock.now - started < policy.outageLimit else {
                    throw fail(error, "Finalizing")
                }
                uncertain = uncertain || error.code == .transport
                logger.warning("Finalizing '\(target.displayName)' failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: policy.delay(forAttempt: attempt))
                attempt += 1
            } catch {
                throw fail(error, "Finalizing")
            }
        }
    }

    /// The newest file of the target folder with this name and size (a finalize whose answer
    /// was lost).
    private func findFinalized() async throws -> MediaManager.FileDescriptor? {
        let page = try await client.files.list(
            parentFolderId: target.parentFolderId, sort: Sorting(fieldName: "updatedDate", order: .descending), limit: 50)
        return page.files.first { $0.displayName == target.displayName && $0.sizeInBytes == size }
    }

    private func rememberSpoolUpload(_ url: String) { spoolUploadURL = url }

    /// The file was deleted while being written: later writes are accepted and dropped and the
    /// close succeeds, as POSIX has it, but nothing is saved. Returns the id of the file if it
    /// was finalized meanwhile (the caller deletes it).
    func discard() async -> String? {
        if let finalizing { return (try? await finalizing.value)?.id }
        if let finished { return finished.id }
        discarded = true
        if failure == nil {
            failure = FilesystemError(ENOENT, "'\(target.displayName)' was deleted while it was being written")
        }
        abandon()
        return nil
    }

    /// Gives the upload up: the tus upload is terminated in the background (the caller does not
    /// wait on a network that may be down) and nothing appears in the folder.
    func abandon() {
        staging?.close()
        let upload = self.upload
        let spoolURL = spoolUploadURL
        self.upload = nil
        spoolUploadURL = nil
        let tus = self.tus
        let logger = self.logger
        guard upload != nil || spoolURL != nil else { return }
        Task.detached {
            do {
                if let upload {
                    try await upload.terminate()
                } else if let spoolURL {
                    try await tus.terminate(uploadURL: spoolURL)
                }
            } catch {
                logger.debug("Terminating an abandoned upload failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Helpers

    private func checkOpen() throws(FilesystemError) {
        if let failure { throw failure }
        if finished != nil || finalizing != nil {
            throw FilesystemError(EBADF, "'\(target.displayName)' was already closed and finalized; reopen it to write again")
        }
    }

    /// A write the stream cannot take: the file is given up.
    private func refuse(_ code: Int32, _ message: String) -> FilesystemError {
        let refusal = FilesystemError(code, message)
        logger.error("\(refusal)")
        failure = refusal
        abandon()
        return refusal
    }

    private func ensureUpload() async throws -> TusUpload {
        if let upload { return upload }
        let created = try await tus.createUpload(
            at: resumable.uploadUrl, length: nil,
            metadata: ["filename": target.displayName, "contentType": target.mimeType, "token": resumable.uploadToken],
            capabilities: capabilities)
        upload = created
        return created
    }

    private func appendZeros(_ count: Int64) async throws {
        var remaining = count
        while remaining > 0 {
            let piece = Int(min(remaining, 1 << 20))
            var zeros = ByteBuffer(repeating: 0, count: piece)
            try await append(&zeros)
            remaining -= Int64(piece)
        }
    }

    /// Adds bytes at the end of the tail and hands full chunks to the upload (waiting while the
    /// previous chunk is still in flight: backpressure).
    private func append(_ bytes: inout ByteBuffer) async throws {
        // Room for a whole chunk at once: growing by doubling would hold the old and the new
        // storage together at every step. (Large buffers are mapped, so unused room costs no
        // resident memory.)
        if tail.capacity < chunkSize { tail.reserveCapacity(chunkSize) }
        tail.writeBuffer(&bytes)
        while tail.readableBytes >= chunkSize {
            let chunk = tail.readSlice(length: chunkSize)!
            // A fresh tail, so that the chunk's memory is released once the upload has sent it.
            var rest = ByteBuffer()
            rest.writeBuffer(&tail)
            tail = rest
            tailStart += Int64(chunkSize)
            do {
                try await ensureUpload().append(chunk)
            } catch {
                throw fail(error, "Streaming")
            }
        }
    }

    /// Records a failure for good, gives the upload up, and turns it into the errno the program
    /// sees.
    private func fail(_ error: any Error, _ what: String) -> FilesystemError {
        if let failure { return failure }
        let failure: FilesystemError
        if let error = error as? FilesystemError {
            failure = error
        } else if let error = error as? ResumableError {
            switch error.code {
            case .outage:
                failure = FilesystemError(EIO, "\(what) '\(target.displayName)' failed: the Media Manager was unreachable for too long (\(error))")
            default:
                failure = FilesystemError(EIO, "\(what) '\(target.displayName)' failed: \(error)")
            }
        } else {
            failure = FilesystemError.remote(error, "\(what) '\(target.displayName)'")
        }
        logger.error("\(failure)")
        self.failure = failure
        abandon()
        return failure
    }
}
