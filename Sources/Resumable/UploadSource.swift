import NIOCore

/// Where an upload's bytes come from: read at any offset, as often as a resend needs.
///
/// ``DataFile`` is one (the bytes stay on disk, so a request body is read from the file as it is
/// sent and memory stays at one piece per request); ``BufferSource`` serves bytes held in memory.
public protocol UploadSource: Sendable {
    /// Up to `count` bytes at `offset` of the upload; fewer only at the end of the source.
    func read(at offset: Int64, count: Int) throws -> ByteBuffer
}

/// Bytes in memory that start at `start` of the upload.
public struct BufferSource: UploadSource {
    public let buffer: ByteBuffer
    public let start: Int64

    public init(_ buffer: ByteBuffer, start: Int64) {
        self.buffer = buffer
        self.start = start
    }

    public func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        let skip = Int(offset - start)
        guard skip >= 0, skip <= buffer.readableBytes else {
            throw ResumableError(code: .invalidArgument, message: "Offset \(offset) is outside the buffered bytes")
        }
        return buffer.getSlice(at: buffer.readerIndex + skip, length: min(count, buffer.readableBytes - skip))!
    }
}

/// The bytes `range` of a source as a request body, read one piece at a time as the connection
/// takes them.
struct SourceBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let source: any UploadSource
    let range: Range<Int64>
    let pieceSize: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: any UploadSource
        var position: Int64
        let end: Int64
        let pieceSize: Int

        mutating func next() async throws -> ByteBuffer? {
            guard position < end else { return nil }
            let wanted = Int(Swift.min(Int64(pieceSize), end - position))
            let piece = try TusClient.read(source, at: position, count: wanted)
            position += Int64(wanted)
            return piece
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(source: source, position: range.lowerBound, end: range.upperBound, pieceSize: pieceSize)
    }
}
