import Crypto
import NIOCore
import Resumable

/// The MD5 of a journal file, as the Media Manager reports a file's `hash` (lower-case hex).
enum MD5Digest {
    static func of(_ file: DataFile, length: Int64) throws -> String {
        var hasher = Insecure.MD5()
        var position: Int64 = 0
        while position < length {
            let piece = try file.read(at: position, count: Int(min(Int64(1 << 20), length - position)))
            guard piece.readableBytes > 0 else { break }
            piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            position += Int64(piece.readableBytes)
        }
        return hasher.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
