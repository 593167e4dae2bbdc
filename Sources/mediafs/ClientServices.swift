import AsyncHTTPClient
import MediaServer
import ServiceLifecycle

/// The HTTP client as a service: shut down after the mount is drained.
struct HTTPClientService: Service {
    let http: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await http.shutdown()
    }
}

/// The embedded Media Manager as a service: stopped last.
struct EmbeddedServerService: Service {
    let server: MediaServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}
