import Foundation
import NIOCore

/// A temporary file that holds the bytes of a deferred-length upload until its length is known.
///
/// Owned by one ``TusUpload`` (actor-isolated); removed once sent or when the upload goes away.
final class SpoolFile {
    let path: String
    private var handle: FileHandle?
    private(set) var size: Int64 = 0

    init(directory: String?) throws(ResumableError) {
        let base = directory ?? NSTemporaryDirectory()
        let path = (base as NSString).appendingPathComponent("tus-spool-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forUpdatingAtPath: path)
        else {
            throw ResumableError(code: .io, message: "Cannot create the spool file in \(base)")
        }
        self.path = path
        self.handle = handle
    }

    func write(_ bytes: ByteBuffer) throws(ResumableError) {
        guard let handle else { throw ResumableError(code: .io, message: "The spool file is closed") }
        do {
            try handle.seekToEnd()
            try bytes.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
            size += Int64(bytes.readableBytes)
        } catch {
            throw ResumableError(code: .io, message: "Cannot write the spool file", underlying: error)
        }
    }

    func read(at position: Int64, count: Int) throws(ResumableError) -> ByteBuffer {
        guard let handle else { throw ResumableError(code: .io, message: "The spool file is closed") }
        do {
            try handle.seek(toOffset: UInt64(position))
            let data = try handle.read(upToCount: count) ?? Data()
            return ByteBuffer(bytes: data)
        } catch {
            throw ResumableError(code: .io, message: "Cannot read the spool file", underlying: error)
        }
    }

    func remove() {
        guard let handle else { return }
        try? handle.close()
        self.handle = nil
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit {
        remove()
    }
}
