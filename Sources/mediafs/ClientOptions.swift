import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import MediaManager
import MediaServer
import NIOCore

/// Where the Media Manager is: a remote one (`--server`, `--api-key`, `--site-id`, or their
/// environment variables), or, without `--server`, the embedded one.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Media Manager base URL, e.g. https://www.wixapis.com (or MEDIAFS_SERVER). Without it, the embedded Media Manager is used.")
    var server: String?

    @Option(name: .long, help: "API key (or MEDIAFS_API_KEY).")
    var apiKey: String?

    @Option(name: .long, help: "Site id, sent as wix-site-id (or MEDIAFS_SITE_ID).")
    var siteId: String?

    @Option(name: .long, help: "Data directory of the embedded Media Manager (default: $XDG_DATA_HOME/mediafs/server).")
    var data: String?

    var resolvedServer: String? { server ?? Environment.value("MEDIAFS_SERVER") }

    func validate() throws {
        if let server = resolvedServer {
            guard let url = URL(string: server), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--server must be an http(s) URL such as https://www.wixapis.com, not '\(server)'.")
            }
            guard apiKey ?? Environment.value("MEDIAFS_API_KEY") != nil else {
                throw ValidationError("--server needs an API key: pass --api-key or set MEDIAFS_API_KEY.")
            }
        }
    }

    /// A connection to the Media Manager: the remote one, or an embedded one started here (and
    /// stopped by `close()`).
    func connect(logger: Logger) async throws -> Connection {
        if let server = resolvedServer {
            let configuration = MediaManagerClient.Configuration(
                baseURL: server,
                apiKey: apiKey ?? Environment.value("MEDIAFS_API_KEY"),
                siteID: siteId ?? Environment.value("MEDIAFS_SITE_ID")
            )
            return Connection(configuration: configuration, embedded: nil, logger: logger)
        }
        let directory = data ?? Environment.dataHome + "/server"
        let key = try DataDirectory.apiKey(in: directory).key
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .warning)
        let embedded = try await MediaServer.start(
            MediaServerConfiguration(dataDirectory: directory, host: "127.0.0.1", port: 0, apiKey: key),
            logger: serverLogger
        )
        logger.info("Started the embedded Media Manager", metadata: ["url": "\(embedded.baseURL)", "data": "\(directory)"])
        let configuration = MediaManagerClient.Configuration(baseURL: embedded.baseURL, apiKey: key, siteID: nil)
        let identity = "embedded:" + URL(fileURLWithPath: directory).standardizedFileURL.path
        return Connection(configuration: configuration, embedded: embedded, identity: identity, logger: logger)
    }
}

/// An open connection: one HTTP client shared by the API client and content reads.
final class Connection: Sendable {
    let http: HTTPClient
    let client: MediaManagerClient
    let embedded: MediaServer?
    /// Names this Media Manager stably across runs (its URL and site id, or the embedded
    /// server's data directory), for what is stored locally about its files.
    let identity: String

    init(configuration: MediaManagerClient.Configuration, embedded: MediaServer?, identity: String? = nil, logger: Logger) {
        self.identity = identity ?? configuration.baseURL + "#" + (configuration.siteID ?? "")
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(60), write: .seconds(60))
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        httpConfiguration.redirectConfiguration = .follow(max: 5, allowCycles: false)
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        self.client = MediaManagerClient(configuration: configuration, httpClient: http, logger: logger)
        self.embedded = embedded
    }

    func close() async {
        try? await http.shutdown()
        await embedded?.stop()
    }
}
