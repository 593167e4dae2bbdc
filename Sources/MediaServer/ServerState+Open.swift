import Foundation
import Logging

extension ServerState {
    /// Opens (creating it when new) the data directory: `mediafs.sqlite`, `blobs/`, the token
    /// signing secret and the site id. Removes blobs a crash left without an owner.
    static func open(_ configuration: MediaServerConfiguration, logger: Logger) async throws -> ServerState {
        let directory = configuration.dataDirectory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw MediaServerError(message: "Cannot create the data directory \(directory): \(error.localizedDescription)")
        }
        let secret = try DataDirectory.secret(in: directory)
        let siteId = try configuration.siteId ?? DataDirectory.siteId(in: directory)
        let store = try Store(path: directory + "/mediafs.sqlite")
        let blobs = try BlobStore(directory: directory + "/blobs")
        let state = ServerState(
            configuration: configuration, store: store, blobs: blobs, signer: TokenSigner(secret: secret),
            siteId: siteId, logger: logger)
        try await UploadSweeper(state: state).removeOrphanBlobs()
        return state
    }
}

/// Small files of the data directory, created with mode 0600.
public enum DataDirectory {
    /// The API key stored in `<directory>/api-key`, created on first use. Returns the key and
    /// whether it was just created.
    public static func apiKey(in directory: String) throws -> (key: String, path: String, created: Bool) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/api-key"
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            !existing.isEmpty
        {
            return (existing, path, false)
        }
        let key = "mfs_" + Identifiers.hex(24)
        try writePrivate(Data((key + "\n").utf8), to: path)
        return (key, path, true)
    }

    static func secret(in directory: String) throws -> Data {
        let path = directory + "/secret"
        if let data = FileManager.default.contents(atPath: path), data.count >= 32 { return data }
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try writePrivate(data, to: path)
        return data
    }

    static func siteId(in directory: String) throws -> String {
        let path = directory + "/site-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        {
            return text
        }
        let id = UUID().uuidString.lowercased()
        try writePrivate(Data((id + "\n").utf8), to: path)
        return id
    }

    static func writePrivate(_ data: Data, to path: String) throws {
        let created = FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
        guard created else { throw MediaServerError(message: "Cannot write \(path)") }
    }
}
