import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore

/// Streams a request body into an upload's blob: bytes are written as they arrive, hashed on
/// the way, synced before any offset is acknowledged, and checkpointed every
/// `checkpointBytes` so that a crash inside a long PATCH keeps most of it.
struct BodyReceiver {
    let state: ServerState

    /// A checksum the client asked for with `Upload-Checksum`.
    struct Checksum {
        enum Algorithm: String { case sha1, sha256, md5 }
        let algorithm: Algorithm
        let digest: Data

        /// Parses `Upload-Checksum: <algorithm> <base64>`.
        init(header: String) throws {
            let parts = header.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let digest = Data(base64Encoded: String(parts[1])) else {
                throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Upload-Checksum must be '<algorithm> <base64 digest>'")
            }
            guard let algorithm = Algorithm(rawValue: String(parts[0])) else {
                throw Tus.error(.badRequest, "INVALID_ARGUMENT", "Checksum algorithm '\(parts[0])' is not supported (use \(Tus.checksumAlgorithms))")
            }
            self.algorithm = algorithm
            self.digest = digest
        }
    }

    private struct Digester {
        var sha1 = Insecure.SHA1()
        var sha256 = SHA256()
        var md5 = Insecure.MD5()
        let algorithm: Checksum.Algorithm

        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            switch algorithm {
            case .sha1: sha1.update(bufferPointer: bytes)
            case .sha256: sha256.update(bufferPointer: bytes)
            case .md5: md5.update(bufferPointer: bytes)
            }
        }

        func finalize() -> Data {
            switch algorithm {
            case .sha1: Data(sha1.finalize())
            case .sha256: Data(sha256.finalize())
            case .md5: Data(md5.finalize())
            }
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
        var md5: Insecure.MD5
        if let running = await state.sessions.hasher(for: id, at: start) {
            md5 = running
        } else {
            md5 = try await state.blobs.md5(id, length: start)
        }
        var digester = checksum.map { Digester(algorithm: $0.algorithm) }
        var acknowledged = start
        var sinceCheckpoint: Int64 = 0

        func acknowledge() async throws {
            try await writer.sync()
            try await state.store.setProgress(uploadId: id, offset: writer.offset, length: length)
            await state.sessions.store(md5, for: id, at: writer.offset)
            acknowledged = writer.offset
            sinceCheckpoint = 0
        }

        do {
            for try await buffer in body {
                let count = Int64(buffer.readableBytes)
                // `writer.offset` never passes `limit`, so the subtraction cannot overflow.
                if count > limit - writer.offset {
                    try await writer.truncate(to: acknowledged)
                    throw Tus.error(
                        .contentTooLarge, "OUT_OF_RANGE",
                        length == nil
                            ? "The upload would exceed the maximum size of \(limit) bytes"
                            : "The PATCH carries more bytes than the upload's length (\(limit))",
                        headers: [Tus.uploadOffset: String(acknowledged)])
                }
                try await writer.write(buffer)
                buffer.withUnsafeReadableBytes { bytes in
                    md5.update(bufferPointer: bytes)
                    digester?.update(bytes)
                }
                sinceCheckpoint += count
                if checksum == nil && sinceCheckpoint >= state.configuration.checkpointBytes {
                    try await acknowledge()
                }
            }
        } catch let error as APIError {
            throw error
        } catch {
            // The body broke off. Keep what arrived (tus: "store as much as possible"), unless a
            // checksum had to vouch for the whole chunk.
            if checksum == nil {
                try? await acknowledge()
            } else {
                try? await writer.truncate(to: acknowledged)
            }
            state.logger.info(
                "Upload body interrupted; kept the bytes that arrived",
                metadata: ["upload": "\(id)", "offset": "\(acknowledged)", "error": "\(error)"])
            throw Tus.error(
                .badRequest, "UPLOAD_INTERRUPTED", "The request body ended early; HEAD tells the offset to resume from",
                headers: [Tus.uploadOffset: String(acknowledged)])
        }
        if let checksum, let digester {
            guard digester.finalize() == checksum.digest else {
                try await writer.truncate(to: start)
                throw Tus.error(
                    HTTPResponse.Status(code: 460, reasonPhrase: "Checksum Mismatch"), "CHECKSUM_MISMATCH",
                    "The chunk's \(checksum.algorithm.rawValue) checksum does not match; it was discarded",
                    headers: [Tus.uploadOffset: String(start)])
            }
        }
        try await acknowledge()
        return acknowledged
    }
}
