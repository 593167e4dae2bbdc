import Foundation

/// A directory under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "mediafs-test") throws {
        let base = FileManager.default.temporaryDirectory.path
        let path = base + "/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs `body` with a fresh directory and removes it afterwards, whatever happens.
    public static func with<T>(prefix: String = "mediafs-test", _ body: (TemporaryDirectory) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: prefix)
        do {
            let result = try await body(directory)
            directory.remove()
            return result
        } catch {
            directory.remove()
            throw error
        }
    }
}
