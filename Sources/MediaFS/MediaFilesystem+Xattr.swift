import NIOCore
import NIOHTTP1
import Synchronization
import Logging
import AsyncHTTPClient
import Foundation
import Journal
import MediaManager

#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes `user.mediafs.*`: what the Media Manager knows of a file. `labels` is
/// settable (comma-separated), which updates the file's labels.
extension MediaFilesystem {
    static let xattrPrefix = "user.mediafs."
    static let fileAttributes = ["id", "url", "mimeType", "mediaType", "hash", "labels", "operationStatus", "uploadState"]

    /// `listxattr`. The root also has `queue` (the upload queue as JSON, what `mediafs status`
    /// shows) and, unlisted, `sync` (reading it waits until every closed file is in the Media
    /// Manager: what `mediafs sync` does).
    public func listxattr(_ inode: InodeNumber) throws(FilesystemError) -> [String] {
        let node = try node(inode)
        var names = node.item.kind == .file ? Self.fileAttributes : ["id"]
        if inode == InodeTable.root { names.append("queue") }
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
        case (.folder, "queue") where inode == InodeTable.root:
            value = Self.json(journal.status())
        case (.folder, "sync") where inode == InodeTable.root:
            var status = await journal.drain(timeout: .seconds(86_400))
            while status.queued + status.inFlight > 0 && !Task.isCancelled {
                status = await journal.drain(timeout: .seconds(86_400))
            }
            value = Self.json(status)
        case (.file, "uploadState"):
            value = item.record.map { journal.uploadState($0) ?? "queued" } ?? "done"
        case (_, "id"): value = item.id
        case (.file, "url"): value = item.url
        case (.file, "mediaType"): value = item.mediaType
        case (.file, "hash"): value = item.hash
        case (.file, "labels"):
            value = (item.record.flatMap { journal.entry($0)?.labels } ?? item.labels).joined(separator: ",")
        case (.file, "operationStatus"): value = item.operationStatus
        case (.file, "mimeType"): value = try await mimeType(of: item)
        default: throw FilesystemError(ENODATA, "no attribute \(name)")
        }
        return Array(value.utf8)
    }

    /// Attributes whose value changes from moment to moment (rates, times left, progress).
    static let changingAttributes: Set<String> = ["queue", "sync", "uploadState"]

    /// The size a size query (`getxattr` without a buffer) of `name` answers, `value` being what
    /// the attribute holds now. A program asks for the size, then reads; a value that changes in
    /// between may have grown, and the read would fail with ERANGE. So a changing value's size
    /// comes with room to grow (the read returns the length the value has then).
    public static func xattrSizeAnswer(name: String, value: [UInt8]) -> Int {
        guard name.hasPrefix(xattrPrefix), changingAttributes.contains(String(name.dropFirst(xattrPrefix.count))) else {
            return value.count
        }
        return min(value.count + 4096, 65_536)
    }

    /// The queue as JSON, trimmed to fit an extended attribute (64 KiB).
    static func json(_ status: QueueStatus) -> String {
        var status = status
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while true {
            let data = (try? encoder.encode(status)) ?? Data("{}".utf8)
            if data.count <= 60_000 || status.files.isEmpty { return String(decoding: data, as: UTF8.self) }
            status.files.removeLast(max(1, status.files.count / 4))
        }
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
        if let record = node.item.record {
            // Being written: the file gets them once saved.
            try await journaled { try await journal.setLabels(record, labels) }
            return
        }
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

