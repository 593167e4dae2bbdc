import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import MediaManager
import MediaServer
import NIOCore

/// Where the Media Manager is: a remote one (`--server`, an API key, `--site-id`, or their
/// environment variables), or, without `--server`, the embedded one.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Media Manager base URL, e.g. https://www.wixapis.com (or MEDIAFS_SERVER). Without it, the embedded Media Manager is used.")
    var server: String?

    @Option(name: .long, help: "API key (or MEDIAFS_API_KEY). Other users of the machine can read a command line: prefer --api-key-file.")
    var apiKey: String?

    @Option(name: .long, help: ArgumentHelp("Read the API key from this file, which only its owner may read (chmod 600) (or MEDIAFS_API_KEY_FILE).", valueName: "file"))
    var apiKeyFile: String?

    /// How a detached mount receives the key: never on its command line.
    @Option(name: .long, help: .private)
    var apiKeyFd: Int32?

    @Option(name: .long, help: "Site id, sent as wix-site-id (or MEDIAFS_SITE_ID).")
    var siteId: String?

    @Option(name: .long, help: "Data directory of the embedded Media Manager (default: $XDG_DATA_HOME/mediafs/server).")
    var data: String?

    var resolvedServer: String? { server ?? Environment.value("MEDIAFS_SERVER") }

    /// Whether a key was given in some way (read by ``apiKey(logger:)``).
    var hasAPIKey: Bool {
        apiKeyFd != nil || apiKey != nil || apiKeyFile != nil || Environment.value("MEDIAFS_API_KEY") != nil
            || Environment.value("MEDIAFS_API_KEY_FILE") != nil
    }

    func validate() throws {
        if apiKey != nil && apiKeyFile != nil {
            throw ValidationError("Pass the API key once: --api-key or --api-key-file, not both.")
        }
        if let server = resolvedServer {
            guard let url = URL(string: server), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--server must be an http(s) URL such as https://www.wixapis.com, not '\(server)'.")
            }
            guard hasAPIKey else {
                throw ValidationError("--server needs an API key: pass --api-key-file FILE (or set MEDIAFS_API_KEY_FILE).")
            }
        }
    }

    /// The API key for `--server`, from the first of: the inherited descriptor, `--api-key`,
    /// `--api-key-file`, `MEDIAFS_API_KEY`, `MEDIAFS_API_KEY_FILE`. A key given with `--api-key` on
    /// a machine other people log in to is warned about.
    func apiKey(logger: Logger?) throws -> String? {
        if let apiKeyFd { return try APIKeyFile.read(descriptor: apiKeyFd) }
        if let apiKey {
            if let warning = SharedMachine.commandLineKeyWarning(otherAccounts: SharedMachine.otherLoginAccounts()) {
                if let logger { logger.warning("\(warning)") } else { Console.error("mediafs: warning: \(warning)") }
            }
            return apiKey
        }
        if let apiKeyFile { return try APIKeyFile.read(path: apiKeyFile) }
        if let key = Environment.value("MEDIAFS_API_KEY") { return key }
        if let file = Environment.value("MEDIAFS_API_KEY_FILE") { return try APIKeyFile.read(path: file) }
        return nil
    }

    /// A connection to the Media Manager: the remote one, or an embedded one started here (and
    /// stopped by `close()`).
    func connect(logger: Logger) async throws -> Connection {
        try await connect(apiKey: resolvedServer == nil ? nil : apiKey(logger: logger), logger: logger)
    }

    /// A connection with a key already read (see ``apiKey(logger:)``).
    func connect(apiKey: String?, logger: Logger) async throws -> Connection {
        if let server = resolvedServer {
            let configuration = MediaManagerClient.Configuration(
                baseURL: server,
                apiKey: apiKey,
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
