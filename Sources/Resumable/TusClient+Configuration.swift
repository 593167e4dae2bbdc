import Backoff

extension TusClient {
    /// Settings of a ``TusClient``.
    public struct Configuration: Sendable {
        /// Timeouts applied to every request.
        public struct Timeouts: Sendable, Hashable {
            /// The time allowed to open a connection (default 10 s).
            public var connect: Duration
            /// The longest time without bytes read or written on a busy connection (default 30 s).
            /// Applies only when the client creates its own `HTTPClient`.
            public var idle: Duration
            /// The deadline of a whole `OPTIONS`, `POST`, `HEAD` or `DELETE` request (default 60 s).
            public var request: Duration
            /// The deadline of a whole `PATCH`, or `nil` to rely on ``idle`` alone (default `nil`, since
            /// a chunk on a slow link may legitimately take long).
            public var patch: Duration?

            public init(
                connect: Duration = .seconds(10),
                idle: Duration = .seconds(30),
                request: Duration = .seconds(60),
                patch: Duration? = nil
            ) {
                self.connect = connect
                self.idle = idle
                self.request = request
                self.patch = patch
            }
        }

        /// The size of each `PATCH` body (default 8 MiB). A ``TusUpload`` holds at most about two
        /// chunks in memory: one in flight and one filling.
        public var chunkSize: Int
        /// Backoff and outage limit.
        public var retry: RetryPolicy
        /// How many times in a row a chunk may be rejected with `460 Checksum Mismatch` before failing.
        public var maximumChecksumFailures: Int
        /// Connect and request timeouts.
        public var timeouts: Timeouts
        /// When to send `Upload-Checksum: sha1 …` (only ever when the server advertises `checksum`
        /// with `sha1`); default ``TusClient/ChecksumPolicy/automatic``.
        public var checksums: ChecksumPolicy
        /// Headers added to every request (e.g. authorization). Never logged.
        public var additionalHeaders: [String: String]
        /// Whether a new upload carries its first bytes in the creation request when the server
        /// offers `creation-with-upload` (one round trip less per file).
        public var creationWithUpload: Bool
        /// Where an upload of unknown length is spooled when the server refuses `PATCH` without
        /// `Upload-Length` (see ``TusUpload``); `nil` uses the system's temporary directory.
        public var spoolDirectory: String?

        /// Creates a configuration.
        public init(
            chunkSize: Int = 8 * 1024 * 1024,
            retry: RetryPolicy = RetryPolicy(),
            timeouts: Timeouts = Timeouts(),
            checksums: ChecksumPolicy = .automatic,
            additionalHeaders: [String: String] = [:],
            creationWithUpload: Bool = true,
            maximumChecksumFailures: Int = 5,
            spoolDirectory: String? = nil
        ) {
            self.chunkSize = max(1, chunkSize)
            self.retry = retry
            self.timeouts = timeouts
            self.checksums = checksums
            self.additionalHeaders = additionalHeaders
            self.creationWithUpload = creationWithUpload
            self.maximumChecksumFailures = max(1, maximumChecksumFailures)
            self.spoolDirectory = spoolDirectory
        }
    }
}
