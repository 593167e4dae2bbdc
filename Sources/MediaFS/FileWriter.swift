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
/// once, and every later call returns the same file or the same error.
actor FileWriter {
    enum Mode: Sendable { case stream, spool }

    struct Target: Sendable {
        var displayName: String
        var mimeType: String
        var parentFolderId: String
        /// A file this one replaces (O_TRUNC or a create over it); it goes to the trash once the
        /// new file is finalized.
        var replacing: String?
    }

    private let client: MediaManagerClient
    private let tus: TusClient
    private let capabilities: TusServerCapabilities
    private let resumable: GenerateResumableUploadUrlResponse
    private let chunkSize: Int
    private let logger: Logger
    private(set) var target: Target
    let mode: Mode

    private var upload: TusUpload?
    /// The bytes not yet handed to the upload, starting at `tailStart`.
    private var tail = ByteBuffer()
    private var tailStart: Int64 = 0
    private var staging: StagingFile?
    private(set) var size: Int64 = 0
    private(set) var wroteBytes = false
    private var failure: FilesystemError?
    private var finished: MediaManager.FileDescriptor?
    private var finalizing: Task<MediaManager.FileDescriptor, any Error>?

    init(
        client: MediaManagerClient,
        tus: TusClient,
        capabilities: TusServerCapabilities,
        resumable: GenerateResumableUploadUrlResponse,
        target: Target,
        mode: Mode,
        stagingDirectory: String,
        chunkSize: Int,
        logger: Logger
    ) throws(FilesystemError) {
        self.client = client
        self.tus = tus
        self.capabilities = capabilities
        self.resumable = resumable
        self.target = target
        self.mode = mode
        self.chunkSize = chunkSize
        self.logger = logger
        if mode == .spool { self.staging = try StagingFile(directory: stagingDirectory) }
    }

    var isFinished: Bool { finished != nil }
    var isFailed: Bool { failure != nil }

    // MARK: Writing

    /// Writes `bytes` at `offset`; returns how many were taken (all of them).
    func write(_ bytes: ByteBuffer, at offset: Int64) async throws -> Int {
        try checkOpen()
        wroteBytes = true
        if let staging {
            try staging.write(bytes, at: offset)
            size = staging.size
            return bytes.readableBytes
        }
        let end = tailStart + Int64(tail.readableBytes)
        guard offset >= tailStart else {
            // The file can no longer come out as the program meant it: nothing is saved, and
            // every later write and the close report the error.
            let refusal = FilesystemError(
                EINVAL,
                "Writing '\(target.displayName)' at offset \(offset), behind the \(tailStart) bytes already streamed to the Media Manager: "
                    + "stream mode takes sequential writes only; mount with --write-mode spool for programs that rewrite files")
            logger.error("\(refusal)")
            failure = refusal
            await abandon()
            throw refusal
        }
        let count = bytes.readableBytes
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
        try checkOpen()
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
            throw FilesystemError(
                EPERM,
                "Truncating '\(target.displayName)' to \(length) bytes, below the \(tailStart) already streamed: "
                    + "mount with --write-mode spool for programs that truncate what they wrote")
        }
        size = length
    }

    /// Reads back what was written (spool mode only: a stream is not kept).
    func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        guard let staging else {
            throw FilesystemError(EBUSY, "'\(target.displayName)' is being streamed to the Media Manager and cannot be read until closed")
        }
        return try staging.read(at: offset, count: count)
    }

    /// Pushes what is buffered to the server and waits until everything sent is acknowledged
    /// (fsync). It does not finalize: the program may keep writing.
    func sync() async throws {
        try checkOpen()
        guard let upload else { return }
        do {
            try await upload.flush()
        } catch {
            throw fail(error, "Syncing")
        }
    }

    /// Changes the name or folder the file will have, if it is not finalized yet. Returns the
    /// finalized file otherwise (waiting for a finalize in progress), which the caller then
    /// renames through the API.
    func retarget(displayName: String, parentFolderId: String) async throws -> MediaManager.FileDescriptor? {
        if let finalizing {
            return try await finalizing.value
        }
        if let finished { return finished }
        target.displayName = displayName
        target.parentFolderId = parentFolderId
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
        let task = Task { try await self.performFinalize() }
        finalizing = task
        do {
            let file = try await task.value
            finished = file
            finalizing = nil
            return file
        } catch {
            finalizing = nil
            let failure = error as? FilesystemError ?? FilesystemError(EIO, "Finalizing '\(target.displayName)' failed: \(error)")
            self.failure = failure
            await abandon()
            throw failure
        }
    }

    private func performFinalize() async throws -> MediaManager.FileDescriptor {
        let metadata = [
            "filename": target.displayName, "contentType": target.mimeType, "token": resumable.uploadToken,
        ]
        do {
            if let staging {
                _ = try await tus.upload(file: staging.path, to: resumable.uploadUrl, metadata: metadata)
            } else {
                if upload == nil {
                    // Closed before the first chunk filled: one request with the whole body.
                    let length = Int64(tail.readableBytes)
                    let created = try await tus.createUpload(
                        at: resumable.uploadUrl, length: length, metadata: metadata, capabilities: capabilities)
                    upload = created
                }
                if tail.readableBytes > 0 {
                    try await upload!.append(tail)
                    tailStart += Int64(tail.readableBytes)
                    tail = ByteBuffer()
                }
                try await upload!.finish()
            }
        } catch {
            throw fail(error, "Uploading")
        }
        var file: MediaManager.FileDescriptor
        do {
            file = try await client.uploads.finalizeResumableUpload(
                uploadUrl: resumable.uploadUrl, uploadToken: resumable.uploadToken, fileName: target.displayName)
        } catch {
            throw fail(error, "Finalizing")
        }
        staging?.close()
        // The token fixed the folder; a rename since then moves the file after the fact.
        if file.parentFolderId != target.parentFolderId || file.displayName != target.displayName {
            do {
                file = try await client.files.update(
                    id: file.id,
                    displayName: file.displayName != target.displayName ? target.displayName : nil,
                    parentFolderId: file.parentFolderId != target.parentFolderId ? target.parentFolderId : nil)
            } catch {
                logger.error("'\(target.displayName)' was uploaded but could not be moved where it was renamed to: \(error)")
            }
        }
        if let replacing = target.replacing {
            do {
                try await client.files.delete(ids: [replacing])
            } catch {
                logger.error("'\(target.displayName)' was replaced, but the old file \(replacing) could not be moved to the trash: \(error)")
            }
        }
        return file
    }

    /// The file was deleted while being written: nothing will be saved.
    func discard() async {
        guard finished == nil, failure == nil else { return }
        failure = FilesystemError(ENOENT, "'\(target.displayName)' was deleted while it was being written")
        await abandon()
    }

    /// Gives the upload up: the tus upload is terminated and nothing appears in the folder.
    func abandon() async {
        staging?.close()
        guard let upload else { return }
        self.upload = nil
        do {
            try await upload.terminate()
        } catch {
            logger.debug("Terminating the abandoned upload failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Helpers

    private func checkOpen() throws(FilesystemError) {
        if let failure { throw failure }
        if finished != nil || finalizing != nil {
            throw FilesystemError(EBADF, "'\(target.displayName)' was already closed and finalized; reopen it to write again")
        }
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
        tail.writeBuffer(&bytes)
        while tail.readableBytes >= chunkSize {
            let chunk = tail.readSlice(length: chunkSize)!
            do {
                if upload == nil {
                    upload = try await tus.createUpload(
                        at: resumable.uploadUrl, length: nil,
                        metadata: ["filename": target.displayName, "contentType": target.mimeType, "token": resumable.uploadToken],
                        capabilities: capabilities)
                }
                try await upload!.append(chunk)
            } catch {
                throw fail(error, "Streaming")
            }
            tailStart += Int64(chunkSize)
            tail.discardReadBytes()
        }
    }

    /// Records a failure for good and turns it into the errno the program sees.
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
        return failure
    }
}

