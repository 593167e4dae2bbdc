import Backoff

extension MediaManagerClient {
    /// Settings of a ``MediaManagerClient``.
    public struct Configuration: Sendable {
        /// Timeouts of every request.
        public struct Timeouts: Sendable, Hashable {
            /// The time allowed to open a connection (default 10 s).
            public var connect: Duration
            /// The longest time without bytes read or written (default 60 s); applies when the client
            /// creates its own `HTTPClient`.
            public var idle: Duration
            /// The deadline of a whole REST request (default 60 s).
            public var request: Duration
            /// The deadline of an upload-host request (simple `PUT`, finalize), default 30 minutes.
            public var upload: Duration

            public init(
                connect: Duration = .seconds(10),
                idle: Duration = .seconds(60),
                request: Duration = .seconds(60),
                upload: Duration = .seconds(1800)
            ) {
                self.connect = connect
                self.idle = idle
                self.request = request
                self.upload = upload
            }
        }

        /// The service root, e.g. `https://www.wixapis.com` or `http://127.0.0.1:8080`; REST paths
        /// are under `/site-media/v1`.
        public var baseURL: String
        /// Sent as `Authorization` on REST calls (never on upload-host calls). Never logged.
        public var apiKey: String?
        /// Sent as `wix-site-id` on REST calls.
        public var siteID: String?
        public var timeouts: Timeouts
        /// How 429 and 5xx answers (and transport failures of idempotent calls) are retried:
        /// ``RetryPolicy/maximumAttempts`` attempts, at most ``RetryPolicy/maximumRetryAfter`` per
        /// `Retry-After`.
        public var retry: RetryPolicy

        /// Creates a configuration.
        public init(
            baseURL: String,
            apiKey: String? = nil,
            siteID: String? = nil,
            timeouts: Timeouts = Timeouts(),
            retry: RetryPolicy = RetryPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(20))
        ) {
            self.baseURL = baseURL
            self.apiKey = apiKey
            self.siteID = siteID
            self.timeouts = timeouts
            self.retry = retry
        }
    }
}
