import Foundation
import Logging
import MediaServer

/// An embedded Media Manager for tests: in-process, on a random loopback port, with its data
/// in a temporary directory that is removed afterwards.
public struct TestMediaServer: Sendable {
    public let server: MediaServer
    public let directory: TemporaryDirectory
    public static let apiKey = "test-manage-key"
    public static let readOnlyKey = "test-read-key"

    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { server.baseURL }
    /// `http://127.0.0.1:<port>/site-media/v1`.
    public var apiURL: String { server.baseURL + "/site-media/v1" }

    /// Starts a server, runs `body`, and stops the server and removes its data whatever happens.
    public static func with<T>(
        configure: (inout MediaServerConfiguration) -> Void = { _ in },
        _ body: (TestMediaServer) async throws -> T
    ) async throws -> T {
        try await TemporaryDirectory.with(prefix: "mediafs-server") { directory in
            var configuration = MediaServerConfiguration(
                dataDirectory: directory.path,
                host: "127.0.0.1",
                port: 0,
                apiKey: apiKey,
                readOnlyKey: readOnlyKey
            )
            configure(&configuration)
            var logger = Logger(label: "test.server")
            logger.logLevel = ProcessInfo.processInfo.environment["MEDIAFS_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
            let server = try await MediaServer.start(configuration, logger: logger)
            let test = TestMediaServer(server: server, directory: directory)
            do {
                let result = try await body(test)
                await server.stop()
                return result
            } catch {
                await server.stop()
                throw error
            }
        }
    }
}
