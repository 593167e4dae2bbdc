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
    ///   - onCreate: Called with the URL of a newly created upload as soon as it exists (with the
    ///     first chunk already sent when the server takes bytes with the creation), so that the
    ///     caller can store it for a later resume.
    ///   - progress: Called as the server acknowledges bytes.
    public func upload(
        file path: String,
        to creationURL: String,
        metadata: [String: String] = [:],
        resumeURL: String? = nil,
        onCreate: (@Sendable (String) -> Void)? = nil,
        progress: ProgressHandler? = nil
    ) async throws -> TusUploadResult {
        let file: DataFile
        let size: Int64
        do {
            file = try DataFile(opening: path)
            size = try file.length()
        } catch {
            throw ResumableError(code: .io, message: "Cannot read \(path)", underlying: error)
        }
        let capabilities = try await discover(creationURL: creationURL)
        var uploadURL: String?
        var start: Int64 = 0
        if let resumeURL {
            do {
                let state = try await state(of: resumeURL)
                if state.length == size {
                    uploadURL = resumeURL
                    start = state.offset
                    logger.debug("tus upload resumed", metadata: ["tus.url": "\(resumeURL)", "tus.offset": "\(start)"])
                } else {
                    logger.info("stored upload has another length; starting over", metadata: ["tus.url": "\(resumeURL)"])
                }
            } catch let error as ResumableError where error.code == .uploadNotFound || error.code == .unexpectedStatus {
                logger.info("stored upload is gone; starting over", metadata: ["tus.url": "\(resumeURL)"])
            }
        }
        if uploadURL == nil {
            if let maximum = capabilities.maximumSize, maximum > 0, size > maximum {
                throw ResumableError(code: .unsupportedByServer, message: "Upload of \(size) bytes exceeds the server's Tus-Max-Size \(maximum)")
            }
            // The first chunk goes with the creation when the server allows it.
            let first = 0..<min(size, Int64(configuration.chunkSize))
            let created = try await create(
                at: creationURL, length: size, metadata: metadata, capabilities: capabilities,
                sending: file, range: first, progress: progress)
            onCreate?(created.url)
            uploadURL = created.url
            start = 0
            var position = created.offset
            while position < size {
                let end = min(size, position + Int64(configuration.chunkSize))
                position = try await send(file, range: position..<end, to: created.url, capabilities: capabilities, progress: progress)
            }
            return TusUploadResult(url: created.url, length: size, resumedFrom: 0)
        }
        var position = start
        while position < size {
            let end = min(size, position + Int64(configuration.chunkSize))
            position = try await send(file, range: position..<end, to: uploadURL!, capabilities: capabilities, progress: progress)
        }
        return TusUploadResult(url: uploadURL!, length: size, resumedFrom: start)
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
