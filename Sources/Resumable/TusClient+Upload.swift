import Foundation
import Logging
import NIOCore

/// The outcome of a whole-file or whole-stream upload.
public struct TusUploadResult: Sendable, Hashable {
    /// The upload's URL.
    public var url: String
    /// The number of bytes uploaded (the upload's length).
    public var length: Int64
    /// The offset the upload continued from (0 unless an earlier upload was resumed).
    public var resumedFrom: Int64
}

extension TusClient {
    /// Uploads a whole file, resuming an earlier upload of it when `resumeURL` names one.
    ///
    /// - Parameters:
    ///   - path: The file to send.
    ///   - creationURL: The server's creation endpoint.
    ///   - metadata: Sent as `Upload-Metadata` (never logged).
    ///   - resumeURL: An upload URL from an earlier run (see `onCreate`). If the server still has it,
    ///     with the file's length, the upload continues from the server's offset; otherwise a new
    ///     upload is created.
    ///   - onCreate: Called with the URL of a newly created upload, before any byte is sent, so that
    ///     the caller can store it for a later resume.
    ///   - progress: Called as the server acknowledges bytes.
    public func upload(
        file path: String,
        to creationURL: String,
        metadata: [String: String] = [:],
        resumeURL: String? = nil,
        onCreate: (@Sendable (String) -> Void)? = nil,
        progress: ProgressHandler? = nil
    ) async throws -> TusUploadResult {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ResumableError(code: .io, message: "Cannot open \(path)")
        }
        defer { try? handle.close() }
        let size: Int64
        do {
            size = Int64(try handle.seekToEnd())
        } catch {
            throw ResumableError(code: .io, message: "Cannot read the size of \(path)", underlying: error)
        }

        let capabilities = try await discover(creationURL: creationURL)
        var upload: TusUpload?
        if let resumeURL {
            do {
                let candidate = try await resumeUpload(at: resumeURL, capabilities: capabilities, progress: progress)
                if await candidate.length == size {
                    upload = candidate
                } else {
                    logger.info("stored upload has another length; starting over", metadata: ["tus.url": "\(resumeURL)"])
                }
            } catch let error as ResumableError where error.code == .uploadNotFound || error.code == .unexpectedStatus {
                logger.info("stored upload is gone; starting over", metadata: ["tus.url": "\(resumeURL)"])
            }
        }
        let target: TusUpload
        if let upload {
            target = upload
        } else {
            target = try await createUpload(
                at: creationURL,
                length: size,
                metadata: metadata,
                capabilities: capabilities,
                progress: progress
            )
            onCreate?(target.url)
        }
        let start = await target.offset
        do {
            try handle.seek(toOffset: UInt64(start))
        } catch {
            throw ResumableError(code: .io, message: "Cannot seek in \(path)", underlying: error)
        }
        var position = start
        while position < size {
            let count = Int(min(Int64(configuration.chunkSize), size - position))
            let data: Data
            do {
                data = try handle.read(upToCount: count) ?? Data()
            } catch {
                throw ResumableError(code: .io, message: "Cannot read \(path)", underlying: error)
            }
            guard !data.isEmpty else {
                throw ResumableError(code: .io, message: "\(path) shrank while it was being uploaded")
            }
            try await target.append(ByteBuffer(bytes: data))
            position += Int64(data.count)
        }
        let length = try await target.finish()
        return TusUploadResult(url: target.url, length: length, resumedFrom: start)
    }

    /// Uploads every buffer of `source` as one upload.
    ///
    /// - Parameters:
    ///   - source: The bytes, in any slicing.
    ///   - length: The total size if known; otherwise the upload is created with a deferred length.
    ///   - creationURL: The server's creation endpoint.
    ///   - metadata: Sent as `Upload-Metadata` (never logged).
    ///   - onCreate: Called with the new upload's URL before any byte is sent.
    ///   - progress: Called as the server acknowledges bytes.
    public func upload<Source: AsyncSequence>(
        _ source: Source,
        length: Int64?,
        to creationURL: String,
        metadata: [String: String] = [:],
        onCreate: (@Sendable (String) -> Void)? = nil,
        progress: ProgressHandler? = nil
    ) async throws -> TusUploadResult where Source.Element == ByteBuffer {
        let upload = try await createUpload(at: creationURL, length: length, metadata: metadata, progress: progress)
        onCreate?(upload.url)
        for try await buffer in source {
            try await upload.append(buffer)
        }
        let total = try await upload.finish()
        return TusUploadResult(url: upload.url, length: total, resumedFrom: 0)
    }
}
