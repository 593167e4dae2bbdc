import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// An async client of the Media Manager REST API (`/site-media/v1`) and its upload host.
///
/// Operations are grouped by resource: ``files``, ``folders`` and ``uploads``.
///
/// ```swift
/// let client = MediaManagerClient(
///     configuration: .init(baseURL: "http://127.0.0.1:8080", apiKey: key, siteID: site),
///     logger: logger
/// )
/// let target = try await client.files.generateFileResumableUploadUrl(mimeType: "video/mp4", options: .init(fileName: "a.mp4"))
/// let page = try await client.files.list(parentFolderId: "media-root")
/// try await client.shutdown()
/// ```
///
/// Failures are thrown as ``MediaManagerError``. `429` and `5xx` answers are retried with
/// exponential backoff and jitter, honouring `Retry-After`; other `4xx` answers are not. The API
/// key is never logged.
public final class MediaManagerClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: Configuration
    let httpClient: HTTPClient
    private let ownsHTTPClient: Bool
    let logger: Logger
    /// The REST root: `baseURL` + `/site-media/v1`.
    let apiRoot: String

    /// File operations.
    public var files: Files { Files(client: self) }
    /// Folder operations.
    public var folders: Folders { Folders(client: self) }
    /// Upload-host operations (simple upload, resumable finalize).
    public var uploads: Uploads { Uploads(client: self) }

    /// Creates a client with its own `HTTPClient` (using the configured connect and idle timeouts).
    /// Call ``shutdown()`` when done.
    public convenience init(configuration: Configuration, logger: Logger) {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = HTTPClient.Configuration.Timeout(
            connect: TimeAmount(configuration.timeouts.connect),
            read: TimeAmount(configuration.timeouts.idle),
            write: TimeAmount(configuration.timeouts.idle)
        )
        httpConfiguration.redirectConfiguration = .disallow
        self.init(
            configuration: configuration,
            httpClient: HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration),
            owns: true,
            logger: logger
        )
    }

    /// Creates a client over an `HTTPClient` that the caller owns and shuts down.
    public convenience init(configuration: Configuration, httpClient: HTTPClient, logger: Logger) {
        self.init(configuration: configuration, httpClient: httpClient, owns: false, logger: logger)
    }

    private init(configuration: Configuration, httpClient: HTTPClient, owns: Bool, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.ownsHTTPClient = owns
        self.logger = logger
        var root = configuration.baseURL
        while root.hasSuffix("/") { root.removeLast() }
        self.apiRoot = root + "/site-media/v1"
    }

    /// Shuts down the `HTTPClient` if this client created it.
    public func shutdown() async throws {
        if ownsHTTPClient {
            try await httpClient.shutdown()
        }
    }
}
