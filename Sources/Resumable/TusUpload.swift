import Foundation
import Logging
import NIOCore

/// One tus upload being written: a streaming sink that sends its bytes in `PATCH` chunks.
///
/// ``append(_:)-(ByteBuffer)`` buffers bytes until a chunk (``TusClient/Configuration/chunkSize``) is
/// full and then sends it in the background while the next chunk fills. If the previous chunk is
/// still in flight when the next one is full, `append` waits: memory stays at about two chunks, and
/// a slow network slows the writer down (backpressure). A chunk stays in memory until the server
/// acknowledges it, so after any failure the upload asks the server for its offset (`HEAD`) and
/// resends from there.
///
/// ``finish()`` sends the tail and, for a deferred-length upload, declares the final length on the
/// last `PATCH`. Some servers (e.g. `resumable-upload` 0.3.0) refuse any `PATCH` of a deferred upload
/// that does not carry `Upload-Length`; the upload detects this when it is created (an empty probe
/// `PATCH`) and then spools the appended bytes to a temporary file, sending them once ``finish()``
/// knows the length. Memory stays bounded; disk holds the spooled bytes until then.
///
/// Calls must not overlap: an `append` or `finish` while another is running fails with
/// ``ResumableError/Code/invalidState``. Once a chunk fails for good, every later call rethrows that
/// error.
public actor TusUpload {
    /// The upload's URL (from `Location`), to store for resuming later with ``TusClient/resumeUpload(at:capabilities:progress:)``.
    public nonisolated let url: String
    /// What the server supports.
    public nonisolated let capabilities: TusServerCapabilities

    private nonisolated let client: TusClient
    private nonisolated let resourceURL: URL
    private nonisolated let chunkSize: Int
    private nonisolated let useChecksum: Bool
    private nonisolated let progress: TusClient.ProgressHandler?

    /// The length fixed at creation (or found by `HEAD` on resume); `nil` while deferred.
    private var knownLength: Int64?
    private var filling: ByteBuffer
    /// Upload offset of `filling`'s first byte (or of the spool's first byte).
    private var fillingStart: Int64
    private var inFlight: Task<Int64, any Error>?
    private var acknowledged: Int64
    private var spool: DataFile?
    /// Bytes in `spool`.
    private var spoolSize: Int64 = 0
    private var failure: ResumableError?
    private var busy = false
    private var closed = false

    init(
        client: TusClient,
        url: URL,
        capabilities: TusServerCapabilities,
        offset: Int64,
        length: Int64?,
        progress: TusClient.ProgressHandler?
    ) {
        self.client = client
        self.resourceURL = url
        self.url = url.absoluteString
        self.capabilities = capabilities
        self.chunkSize = client.configuration.chunkSize
        self.useChecksum = client.usesChecksum(for: url, capabilities: capabilities)
        self.progress = progress
        self.knownLength = length
        self.filling = ByteBuffer()
        self.fillingStart = offset
        self.acknowledged = offset
    }

    deinit {
        // The spool file (if any) removes itself when released.
        inFlight?.cancel()
    }

    // MARK: State

    /// The upload offset of the next appended byte.
    public var offset: Int64 {
        fillingStart + Int64(filling.readableBytes) + spoolSize
    }

    /// How many bytes the server has acknowledged (as of the last completed chunk).
    public var acknowledgedOffset: Int64 { acknowledged }

    /// The upload's length, if known (given at creation, or declared by ``finish()``).
    public var length: Int64? { knownLength }

    /// Whether bytes are spooled to disk because the server needs the length before any `PATCH`.
    public var isSpooling: Bool { spool != nil }

    // MARK: Writing

    /// Appends bytes to the upload; returns once they are buffered, waiting while two chunks are pending.
    public func append(_ bytes: ByteBuffer) async throws {
        try begin()
        defer { busy = false }
        var bytes = bytes
        if let knownLength, offset + Int64(bytes.readableBytes) > knownLength {
            throw ResumableError(
                code: .lengthMismatch,
                message: "Appending \(bytes.readableBytes) bytes at offset \(offset) exceeds the upload length \(knownLength)"
            )
        }
        if let spool {
            do {
                try spool.write(bytes, at: spoolSize)
            } catch {
                throw ResumableError(code: .io, message: "Cannot write the spool file", underlying: error)
            }
            spoolSize += Int64(bytes.readableBytes)
            return
        }
        while bytes.readableBytes > 0 {
            if filling.readableBytes == 0 && bytes.readableBytes >= chunkSize {
                // A whole chunk: take it as it is rather than copying it, so that memory stays
                // at the chunk filling and the chunk in flight.
                filling = bytes.readSlice(length: chunkSize)!
                try await dispatchFilling(declaringLength: nil)
                continue
            }
            if filling.capacity < chunkSize {
                filling.reserveCapacity(chunkSize)
            }
            let count = min(chunkSize - filling.readableBytes, bytes.readableBytes)
            var slice = bytes.readSlice(length: count)!
            filling.writeBuffer(&slice)
            if filling.readableBytes >= chunkSize {
                try await dispatchFilling(declaringLength: nil)
            }
        }
    }

    /// Appends bytes to the upload (copied into the chunk buffer).
    public func append(_ bytes: [UInt8]) async throws {
        try await append(ByteBuffer(bytes: bytes))
    }

    /// Sends the remaining bytes, declares the length if it was deferred, and waits until the
    /// server has acknowledged everything.
    ///
    /// - Returns: The upload's total length.
    @discardableResult
    public func finish() async throws -> Int64 {
        try begin()
        defer { busy = false }
        if let spool {
            let total = try await finishFromSpool(spool)
            closed = true
            return total
        }
        try await awaitInFlight()
        let total = offset
        if let knownLength, total != knownLength {
            throw ResumableError(
                code: .lengthMismatch,
                message: "The upload ended at \(total) bytes but its length is \(knownLength)"
            )
        }
        let declare: Int64? = knownLength == nil ? total : nil
        if filling.readableBytes > 0 || declare != nil {
            try await dispatchFilling(declaringLength: declare)
            try await awaitInFlight()
        }
        knownLength = total
        closed = true
        client.logger.debug("tus upload finished", metadata: ["tus.url": "\(url)", "tus.length": "\(total)"])
        return total
    }

    /// Sends what is buffered (a short chunk if need be) and waits until the server has
    /// acknowledged every byte appended so far, without finishing the upload: what `fsync`
    /// needs. While bytes are spooled (the server wants the length first) there is nothing that
    /// can be sent yet, and this returns at once.
    public func flush() async throws {
        try begin()
        defer { busy = false }
        guard spool == nil else { return }
        if filling.readableBytes > 0 {
            try await dispatchFilling(declaringLength: nil)
        }
        try await awaitInFlight()
    }

    /// Abandons the upload and deletes it on the server (`DELETE`, the `termination` extension).
    ///
    /// A chunk in flight is cancelled; any later call fails.
    public func terminate() async throws {
        closed = true
        inFlight?.cancel()
        inFlight = nil
        spool = nil
        spoolSize = 0
        filling = ByteBuffer()
        guard capabilities.supportsTermination else {
            throw ResumableError(code: .unsupportedByServer, message: "The server does not offer termination")
        }
        try await client.terminate(uploadURL: url)
    }

    // MARK: Internals

    /// For a deferred upload: learns whether the server takes `PATCH` before the length is known.
    func probeDeferredLength() async throws {
        guard knownLength == nil, spool == nil else { return }
        if try await client.acceptsPatchWithoutLength(url: resourceURL, offset: fillingStart) {
            return
        }
        do {
            spool = try DataFile.temporary(in: client.configuration.spoolDirectory ?? NSTemporaryDirectory(), prefix: "tus-spool")
        } catch {
            throw ResumableError(code: .io, message: "Cannot create the spool file", underlying: error)
        }
        client.logger.info(
            "tus server needs Upload-Length on every PATCH of a deferred upload; spooling to disk until finish()",
            metadata: ["tus.url": "\(url)"]
        )
    }

    private func begin() throws(ResumableError) {
        if let failure { throw failure }
        guard !closed else {
            throw ResumableError(code: .invalidState, message: "The upload is already finished or terminated")
        }
        guard !busy else {
            throw ResumableError(code: .invalidState, message: "Overlapping calls on one TusUpload are not allowed")
        }
        busy = true
    }

    /// Waits for the chunk in flight (if any), then sends the filling buffer in the background.
    private func dispatchFilling(declaringLength declare: Int64?) async throws {
        try await awaitInFlight()
        let chunk = filling
        let start = fillingStart
        filling = ByteBuffer()
        fillingStart += Int64(chunk.readableBytes)
        let client = self.client
        let url = self.resourceURL
        let checksum = self.useChecksum
        let progress = self.progress
        inFlight = Task {
            try await client.sendChunk(
                url: url,
                chunk: chunk,
                start: start,
                declareLength: declare,
                useChecksum: checksum,
                progress: progress
            )
        }
    }

    private func awaitInFlight() async throws {
        guard let task = inFlight else { return }
        do {
            let acknowledgedOffset = try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
            inFlight = nil
            acknowledged = acknowledgedOffset
        } catch {
            inFlight = nil
            let wrapped =
                (error as? ResumableError)
                ?? ResumableError(code: .unexpectedStatus, message: "Chunk upload failed", underlying: error)
            failure = wrapped
            throw wrapped
        }
    }

    private func finishFromSpool(_ spool: DataFile) async throws -> Int64 {
        let start = fillingStart
        let total = start + spoolSize
        do {
            // One PATCH with the whole spool, read from the file as it is sent.
            acknowledged = try await client.send(
                ShiftedSource(base: spool, start: start), range: start..<total, url: resourceURL,
                declareLength: total, useChecksum: useChecksum, progress: progress)
        } catch {
            let wrapped =
                (error as? ResumableError)
                ?? ResumableError(code: .unexpectedStatus, message: "Chunk upload failed", underlying: error)
            failure = wrapped
            throw wrapped
        }
        self.spool = nil
        spoolSize = 0
        fillingStart = total
        knownLength = total
        client.logger.debug("tus upload finished from spool", metadata: ["tus.url": "\(url)", "tus.length": "\(total)"])
        return total
    }
}

/// A source whose first byte is at upload offset `start`.
private struct ShiftedSource: UploadSource {
    let base: DataFile
    let start: Int64

    func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        try base.read(at: offset - start, count: count)
    }
}
