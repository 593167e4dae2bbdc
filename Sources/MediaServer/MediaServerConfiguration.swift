import Foundation

/// How an embedded Media Manager runs.
public struct MediaServerConfiguration: Sendable {
    /// Where metadata (SQLite), content and keys live.
    public var dataDirectory: String
    /// Address to listen on.
    public var host: String
    /// Port to listen on; 0 picks a free one.
    public var port: Int
    /// Base of every URL the server hands out (upload and file URLs), for use behind a proxy.
    /// `nil`: the listen address.
    public var publicURL: String?
    /// The key with the "Manage Media Manager" scope.
    public var apiKey: String
    /// An optional key with only the "Read Media Manager" scope.
    public var readOnlyKey: String?
    /// Site id reported in descriptors; also the prefix of file ids.
    public var siteId: String?
    /// How long an unfinished resumable upload is kept.
    public var uploadExpiry: TimeInterval
    /// Largest upload accepted (`Tus-Max-Size`).
    public var maxUploadSize: Int64
    /// How often expired uploads are swept.
    public var sweepInterval: TimeInterval
    /// How many bytes of one PATCH may arrive before the offset is synced and recorded, so a
    /// crash in the middle of a long PATCH keeps most of it.
    public var checkpointBytes: Int64

    public init(
        dataDirectory: String,
        host: String = "127.0.0.1",
        port: Int = 8080,
        publicURL: String? = nil,
        apiKey: String,
        readOnlyKey: String? = nil,
        siteId: String? = nil,
        uploadExpiry: TimeInterval = 7 * 24 * 3600,
        maxUploadSize: Int64 = 1 << 40,
        sweepInterval: TimeInterval = 60,
        checkpointBytes: Int64 = 16 << 20
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.publicURL = publicURL
        self.apiKey = apiKey
        self.readOnlyKey = readOnlyKey
        self.siteId = siteId
        self.uploadExpiry = uploadExpiry
        self.maxUploadSize = maxUploadSize
        self.sweepInterval = sweepInterval
        self.checkpointBytes = checkpointBytes
    }
}
