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

        /// How 429 and 5xx answers (and transport failures of idempotent calls) are retried.
        public struct Retry: Sendable, Hashable {
            /// Attempts in total, including the first (default 5).
            public var maximumAttempts: Int
            /// The first backoff delay (default 500 ms), doubled each attempt.
            public var initialDelay: Duration
            /// The largest backoff delay (default 20 s).
            public var maximumDelay: Duration
            /// The random fraction taken off each backoff delay, in `0...1` (default 0.5).
            public var jitter: Double
            /// The longest `Retry-After` honoured (default 60 s); longer waits fail instead.
            public var maximumRetryAfter: Duration

            public init(
                maximumAttempts: Int = 5,
                initialDelay: Duration = .milliseconds(500),
                maximumDelay: Duration = .seconds(20),
                jitter: Double = 0.5,
                maximumRetryAfter: Duration = .seconds(60)
            ) {
                self.maximumAttempts = max(1, maximumAttempts)
                self.initialDelay = initialDelay
                self.maximumDelay = maximumDelay
                self.jitter = min(1, max(0, jitter))
                self.maximumRetryAfter = maximumRetryAfter
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
        public var retry: Retry

        /// Creates a configuration.
        public init(
            baseURL: String,
            apiKey: String? = nil,
            siteID: String? = nil,
            timeouts: Timeouts = Timeouts(),
            retry: Retry = Retry()
        ) {
            self.baseURL = baseURL
            self.apiKey = apiKey
            self.siteID = siteID
            self.timeouts = timeouts
            self.retry = retry
        }
    }
}
