import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension ServerState {
    /// Opens (creating it when new) the data directory: `mediafs.sqlite`, `blobs/`, the token
    /// signing secret and the site id. Everything in it is private to the user running the
    /// server (directories 0700, files 0600), including what an older version left more open.
    /// Removes blobs a crash left without an owner.
    static func open(_ configuration: MediaServerConfiguration, logger: Logger) async throws -> ServerState {
        let directory = configuration.dataDirectory
        do {
            try DataDirectory.makePrivate(directory)
        } catch {
            throw MediaServerError(message: "Cannot create the data directory \(directory): \(error)")
        }
        let secret = try DataDirectory.secret(in: directory)
        let siteId = try configuration.siteId ?? DataDirectory.siteId(in: directory)
        // SQLite gives its -wal and -shm files the database file's mode: create that one 0600.
        try DataDirectory.createPrivateFile(directory + "/mediafs.sqlite")
        let store = try Store(path: directory + "/mediafs.sqlite")
        let blobs = try BlobStore(directory: directory + "/blobs")
        let state = ServerState(
            configuration: configuration, store: store, blobs: blobs, signer: TokenSigner(secret: secret),
            siteId: siteId, logger: logger)
        try await UploadSweeper(state: state).removeOrphanBlobs()
        return state
    }
}

/// The data directory and its small files: directories 0700, files 0600.
public enum DataDirectory {
    /// Mode of every directory the server makes under (and including) the data directory.
    public static let directoryMode: mode_t = 0o700
    /// Mode of every file the server makes there.
    public static let fileMode: mode_t = 0o600

    /// Creates `directory` (and missing parents) 0700, and tightens it and what is directly in
    /// it (directories to 0700, files to 0600): data directories made by older versions were
    /// readable by every local user. Symbolic links are left alone.
    public static func makePrivate(_ directory: String) throws {
        try createPrivateDirectory(directory)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try restrict(path, to: directoryMode, from: info.st_mode)
            case S_IFREG: try restrict(path, to: fileMode, from: info.st_mode)
            default: continue
            }
        }
    }

    /// Creates `path` (and missing parents) with mode 0700 and makes sure it has that mode.
    static func createPrivateDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(directoryMode)])
        var info = stat()
        guard stat(path, &info) == 0 else { throw MediaServerError(message: "Cannot read \(path): \(String(cString: strerror(errno)))") }
        try restrict(path, to: directoryMode, from: info.st_mode)
    }

    /// Creates `path` empty with mode 0600 if it does not exist, and makes sure it has that mode.
    static func createPrivateFile(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, fileMode)
        guard fd >= 0 else { throw MediaServerError(message: "Cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw MediaServerError(message: "Cannot read \(path): \(String(cString: strerror(errno)))") }
        if info.st_mode & 0o7777 != fileMode, fchmod(fd, fileMode) != 0 {
            throw MediaServerError(message: "Cannot make \(path) private (chmod 600): \(String(cString: strerror(errno)))")
        }
    }

    private static func restrict(_ path: String, to mode: mode_t, from current: mode_t) throws {
        guard current & 0o7777 != mode else { return }
        guard chmod(path, mode) == 0 else {
            throw MediaServerError(
                message: "Cannot make \(path) private (chmod \(String(mode, radix: 8))): \(String(cString: strerror(errno)))")
        }
    }

    /// The API key stored in `<directory>/api-key`, created on first use. Returns the key and
    /// whether it was just created.
    public static func apiKey(in directory: String) throws -> (key: String, path: String, created: Bool) {
        try createPrivateDirectory(directory)
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
