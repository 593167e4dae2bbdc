import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore

/// Streams a request body into an upload's blob.
///
/// The bytes are gathered into batches of about `batchBytes` and each batch is written and
/// hashed (MD5, and the `Upload-Checksum` digest) in one thread-pool job, while the next batch
/// is received: one job in flight at a time, so memory stays within two batches. Every
/// `checkpointBytes` the offset written so far is synced and recorded in the background, so a
/// crash inside a long PATCH keeps most of it without stalling the stream. Durability: bytes
/// are fdatasync'ed before any offset that covers them is recorded or acknowledged.
struct BodyReceiver {
    let state: ServerState

    /// Bytes gathered before a write job is started.
    static let batchBytes = 1 << 20

    /// A checksum the client asked for with `Upload-Checksum`.
    struct Checksum {
        let algorithm: IngestHashes.Algorithm
        let digest: Data

        /// Parses `Upload-Checksum: <algorithm> <base64>`.
        init(header: String) throws {
            let parts = header.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let digest = Data(base64Encoded: String(parts[1])) else {
                throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Checksum must be '<algorithm> <base64 digest>'")
            }
            guard let algorithm = IngestHashes.Algorithm(rawValue: String(parts[0])) else {
                throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Checksum algorithm '\(parts[0])' is not supported (use \(Tus.checksumAlgorithms))")
            }
            self.algorithm = algorithm
            self.digest = digest
        }
    }

    /// Appends `body` at the upload's current offset and returns the new, acknowledged offset.
    /// The caller holds the upload's lock.
    func receive(
        _ upload: UploadRecord,
        body: RequestBody,
        length: Int64?,
        checksum: Checksum?
    ) async throws -> Int64 {
        let id = upload.id
        let start = upload.offset
        let limit = length ?? state.configuration.maxUploadSize
        let writer = try await state.blobs.openForAppend(id, truncatingTo: start)
        defer { writer.close() }
        let md5: Insecure.MD5
        if let running = await state.sessions.hasher(for: id, at: start) {
            md5 = running
        } else {
            md5 = try await state.blobs.md5(id, length: start)
        }
        let hashes = IngestHashes(md5: md5, checksum: checksum?.algorithm)
        let stream = IngestStream(state: state, uploadId: id, writer: writer, hashes: hashes, length: length, start: start)

        do {
            var received = start
            for try await buffer in body {
                let count = Int64(buffer.readableBytes)
                // `received` never passes `limit`, so the subtraction cannot overflow.
                guard count <= limit - received else {
                    let kept = try await stream.discardUnrecorded()
                    throw Tus.error(
                        .contentTooLarge, "OUT_OF_RANGE",
                        length == nil
                            ? "The upload would exceed the maximum size of \(limit) bytes"
                            : "The PATCH carries more bytes than the upload's length (\(limit))",
                        headers: [Tus.uploadOffset: String(kept)])
                }
                received += count
                try await stream.append(buffer, checkpoint: checksum == nil)
            }
            try await stream.writeGathered(checkpoint: false)
            try await stream.finishWrites()
        } catch let error as APIError {
            throw error
        } catch {
            // The body broke off (or a write failed). Keep what was written (tus: "store as much
            // as possible"), unless a checksum had to vouch for the whole chunk.
            let kept: Int64
            if checksum == nil {
                try? await stream.writeGathered(checkpoint: false)
                kept = (try? await stream.acknowledgeWritten()) ?? stream.recorded
            } else {
                kept = (try? await stream.discard(to: start)) ?? start
            }
            state.logger.info(
                "Upload body interrupted; kept the bytes that arrived",
                metadata: ["upload": "\(id)", "offset": "\(kept)", "error": "\(error)"])
            throw Tus.error(
                .badRequest, "UPLOAD_INTERRUPTED", "The request body ended early; HEAD tells the offset to resume from",
                headers: [Tus.uploadOffset: String(kept)])
        }
        if let checksum {
            guard hashes.checksum() == checksum.digest else {
                _ = try await stream.discard(to: start)
                throw Tus.error(
                    HTTPResponse.Status(code: 460, reasonPhrase: "Checksum Mismatch"), "CHECKSUM_MISMATCH",
                    "The chunk's \(checksum.algorithm.rawValue) checksum does not match; it was discarded",
                    headers: [Tus.uploadOffset: String(start)])
            }
        }
        return try await stream.acknowledgeWritten()
    }
}

/// The write side of one request body: at most one write job and one checkpoint in flight.
///
/// Used by one task at a time (the request's); the jobs it starts touch the writer and the
/// hashes only until they are awaited, which every method does before reading them.
private final class IngestStream: @unchecked Sendable {
    let state: ServerState
    let uploadId: String
    let writer: BlobWriter
    let hashes: IngestHashes
    let length: Int64?
    /// The last offset synced and recorded.
    private(set) var recorded: Int64
    private var pendingWrite: Task<Int64, any Error>?
    private var pendingCheckpoint: Task<Int64, any Error>?
    private var sinceCheckpoint: Int64 = 0
    /// Received, not yet handed to a write job.
    private var gathered: [ByteBuffer] = []
    private var gatheredBytes = 0

    init(state: ServerState, uploadId: String, writer: BlobWriter, hashes: IngestHashes, length: Int64?, start: Int64) {
        self.state = state
        self.uploadId = uploadId
        self.writer = writer
        self.hashes = hashes
        self.length = length
        self.recorded = start
    }

    /// Gathers `buffer`; once a batch is full, starts writing it.
    func append(_ buffer: ByteBuffer, checkpoint: Bool) async throws {
        gathered.append(buffer)
        gatheredBytes += buffer.readableBytes
        if gatheredBytes >= BodyReceiver.batchBytes {
            try await writeGathered(checkpoint: checkpoint)
        }
    }

    /// Starts writing what was gathered once the previous write is done; with `checkpoint`,
    /// starts a background checkpoint when enough bytes have gone by since the last one.
    func writeGathered(checkpoint: Bool) async throws {
        guard !gathered.isEmpty else { return }
        let batch = gathered
        gathered = []
        gatheredBytes = 0
        _ = try await pendingWrite?.value
        let writer = self.writer
        let hashes = self.hashes
        let job = Task { try await writer.write(batch, hashing: hashes) }
        pendingWrite = job
        sinceCheckpoint += Int64(batch.reduce(0) { $0 + $1.readableBytes })
        guard checkpoint, sinceCheckpoint >= state.configuration.checkpointBytes else { return }
        // The previous checkpoint must be recorded before a later one, so offsets only grow.
        if let previous = pendingCheckpoint { recorded = try await previous.value }
        sinceCheckpoint = 0
        let state = self.state
        let id = uploadId
        let length = self.length
        pendingCheckpoint = Task {
            let offset = try await job.value
            try await writer.sync()
            try await state.store.setProgress(uploadId: id, offset: offset, length: length)
            return offset
        }
    }

    /// Waits for the write and checkpoint in flight.
    func finishWrites() async throws {
        let write = pendingWrite
        pendingWrite = nil
        let checkpoint = pendingCheckpoint
        pendingCheckpoint = nil
        var failure: (any Error)?
        do { _ = try await write?.value } catch { failure = error }
        do {
            if let checkpoint { recorded = try await checkpoint.value }
        } catch {
            failure = failure ?? error
        }
        if let failure { throw failure }
    }

    /// Syncs and records everything written, and keeps the running MD5 for the next request.
    func acknowledgeWritten() async throws -> Int64 {
        try? await finishWrites()
        try await writer.sync()
        let offset = writer.offset
        try await state.store.setProgress(uploadId: uploadId, offset: offset, length: length)
        await state.sessions.store(hashes.md5, for: uploadId, at: offset)
        recorded = offset
        return offset
    }

    /// Drops what was written after the last recorded offset; returns that offset.
    func discardUnrecorded() async throws -> Int64 {
        try? await finishWrites()
        try await writer.truncate(to: recorded)
        return recorded
    }

    /// Drops everything after `offset` (a chunk whose checksum failed).
    func discard(to offset: Int64) async throws -> Int64 {
        try? await finishWrites()
        try await writer.truncate(to: offset)
        return offset
    }
}
