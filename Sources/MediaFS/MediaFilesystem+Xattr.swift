import NIOCore
import NIOHTTP1
import Synchronization
import Logging
import AsyncHTTPClient
import Foundation
import MediaManager

#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes `user.mediafs.*`: what the Media Manager knows of a file. `labels` is
/// settable (comma-separated), which updates the file's labels.
extension MediaFilesystem {
    static let xattrPrefix = "user.mediafs."
    static let fileAttributes = ["id", "url", "mimeType", "mediaType", "hash", "labels", "operationStatus"]

    /// `listxattr`.
    public func listxattr(_ inode: InodeNumber) throws(FilesystemError) -> [String] {
        let node = try node(inode)
        let names = node.item.kind == .file ? Self.fileAttributes : ["id"]
        return names.map { Self.xattrPrefix + $0 }
    }

    /// `getxattr`.
    public func getxattr(_ inode: InodeNumber, name: String) async throws -> [UInt8] {
        let node = try node(inode)
        guard name.hasPrefix(Self.xattrPrefix) else { throw FilesystemError(ENODATA, "no attribute \(name)") }
        let key = String(name.dropFirst(Self.xattrPrefix.count))
        let item = node.item
        let value: String
        switch (item.kind, key) {
        case (_, "id"): value = item.id
        case (.file, "url"): value = item.url
        case (.file, "mediaType"): value = item.mediaType
        case (.file, "hash"): value = item.hash
        case (.file, "labels"): value = item.labels.joined(separator: ",")
        case (.file, "operationStatus"): value = item.operationStatus
        case (.file, "mimeType"): value = try await mimeType(of: item)
        default: throw FilesystemError(ENODATA, "no attribute \(name)")
        }
        return Array(value.utf8)
    }

    /// `setxattr`: only `user.mediafs.labels`.
    public func setxattr(_ inode: InodeNumber, name: String, value: [UInt8]) async throws {
        let node = try node(inode)
        guard name == Self.xattrPrefix + "labels", node.item.kind == .file else {
            if name.hasPrefix(Self.xattrPrefix) {
                throw FilesystemError(EPERM, "\(name) is read-only; only \(Self.xattrPrefix)labels can be set")
            }
            throw FilesystemError(ENOTSUP, "only \(Self.xattrPrefix)labels can be set")
        }
        try checkWritable("setting labels of '\(node.name)'")
        let labels = String(decoding: value, as: UTF8.self).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        try await setLabels(node, labels)
    }

    /// `removexattr`: removing `labels` clears them.
    public func removexattr(_ inode: InodeNumber, name: String) async throws {
        let node = try node(inode)
        guard name == Self.xattrPrefix + "labels", node.item.kind == .file else {
            throw FilesystemError(name.hasPrefix(Self.xattrPrefix) ? EPERM : ENODATA, "\(name) cannot be removed")
        }
        try checkWritable("clearing labels of '\(node.name)'")
        try await setLabels(node, [])
    }

    private func setLabels(_ node: Node, _ labels: [String]) async throws {
        let file: MediaManager.FileDescriptor
        do {
            file = try await client.files.update(id: node.item.id, labels: labels)
        } catch {
            throw FilesystemError.remote(error, "Setting labels of '\(node.name)'")
        }
        state.withLock { state in
            state.table[node.inode]?.item.labels = file.labels
            state.table[node.inode]?.item.updated = file.updatedDate
        }
    }

    /// The descriptor carries no MIME type; the content URL's `Content-Type` (a HEAD through
    /// the content client) is the authority.
    private func mimeType(of item: RemoteItem) async throws -> String {
        guard !item.isPrivate, !item.url.isEmpty else { return MIMETypes.guess(fileName: item.displayName) }
        do {
            let content = client.content.with(timeouts: .init(response: .seconds(30), idle: .seconds(30)))
            if let type = try await content.head(url: item.url).contentType { return type }
        } catch let error as MediaManagerError where error.code == .cancelled {
            throw FilesystemError(EINTR, "Getting the MIME type of '\(item.displayName)' was interrupted")
        } catch {
            logger.debug("HEAD for the MIME type failed; guessing from the name", metadata: ["error": "\(error)"])
        }
        return MIMETypes.guess(fileName: item.displayName)
    }
}

