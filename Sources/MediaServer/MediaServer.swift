import Foundation
import Hummingbird
import Logging
import MediaManager
import NIOCore
import ServiceLifecycle

/// The embedded Media Manager: the REST API under `/site-media/v1`, the upload host (simple
/// PUT, tus 1.0.0, finalize) and content URLs, in one HTTP server, with metadata in SQLite and
/// content on disk under `configuration.dataDirectory`.
///
/// ```swift
/// let server = try await MediaServer.start(configuration, logger: logger)
/// print(server.baseURL)     // http://127.0.0.1:8080
/// await server.stop()
/// ```
public final class MediaServer: Sendable {
    /// Base URL of everything the server serves, e.g. `http://127.0.0.1:8080`.
    public let baseURL: String
    /// The "manage" API key.
    public let apiKey: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(baseURL: String, apiKey: String, group: ServiceGroup, task: Task<Void, any Error>) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.group = group
        self.task = task
    }

    /// Starts the server in the background and returns once it listens.
    public static func start(_ configuration: MediaServerConfiguration, logger: Logger) async throws -> MediaServer {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let app = try await makeApplication(configuration, logger: logger) { state in
            continuation.yield(state.baseURL)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = stream.makeAsyncIterator()
        guard let baseURL = await iterator.next() else {
            // The server stopped before listening: report why.
            try await task.value
            throw MediaServerError(message: "The server stopped before it was listening")
        }
        return MediaServer(baseURL: baseURL, apiKey: configuration.apiKey, group: group, task: task)
    }

    /// Runs the server in the foreground until SIGINT or SIGTERM. `onListening` receives the
    /// base URL once the server listens.
    public static func run(
        _ configuration: MediaServerConfiguration,
        logger: Logger,
        onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws {
        let app = try await makeApplication(configuration, logger: logger) { state in onListening(state.baseURL) }
        try await app.runService()
    }

    /// Stops the server and waits until it has.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }

    static func makeApplication(
        _ configuration: MediaServerConfiguration,
        logger: Logger,
        onListening: @escaping @Sendable (ServerState) -> Void
    ) async throws -> some ApplicationProtocol {
        let state = try await ServerState.open(configuration, logger: logger)
        let router = Router(context: MediaRequestContext.self)
        router.add(middleware: RequestLogMiddleware())
        let api = router.group("site-media/v1")
            .add(middleware: APIKeyMiddleware(manageKey: configuration.apiKey, readKey: configuration.readOnlyKey))
        FilesController(state: state).addRoutes(to: api)
        FoldersController(state: state).addRoutes(to: api)
        TusController(state: state).addRoutes(to: router)
        UploadController(state: state).addRoutes(to: router)
        ContentController(state: state).addRoutes(to: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "mediafs"),
            services: [UploadSweeper(state: state)],
            onServerRunning: { channel in
                state.listening(host: configuration.host, port: channel.localAddress?.port ?? configuration.port)
                onListening(state)
            },
            logger: logger
        )
    }
}

/// A failure to start or run the embedded server.
public struct MediaServerError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
