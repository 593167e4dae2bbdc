import Backoff
import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

extension Journal {
    /// How a ``Journal`` keeps and uploads files.
    public struct Configuration: Sendable {
        /// The journal's directory (`journal.sqlite`, `data/`), e.g. `$XDG_CACHE_HOME/mediafs/journal`.
        public var directory: String
        /// The Media Manager the files go to (its URL and site id): records of another scope in the
        /// same directory are left alone.
        public var scope: String
        /// `close(2)` returns once the bytes are durable here, and uploads follow in the
        /// background; without it, a program's close waits until the Media Manager has the file.
        public var writeBack: Bool
        /// How many uploads run at once.
        public var transfers: Int
        /// The most bytes not yet acknowledged by the Media Manager the journal holds; beyond it
        /// writes wait (nothing is evicted before it is uploaded).
        public var maximumSize: Int64
        /// While a program writes, bytes go out once this many have gathered.
        public var streamChunk: Int
        /// The largest `PATCH` body (read from the journal file as it is sent).
        public var maximumPatch: Int
        /// How long a waiting `close(2)` (without write-back) keeps waiting through an outage before
        /// it fails with EIO (and the file is given up).
        public var outageLimit: Duration
        /// Backoff between attempts of a background upload (it never gives up on an outage).
        public var retry: RetryPolicy

        public init(
            directory: String,
            scope: String,
            writeBack: Bool = false,
            transfers: Int = 8,
            maximumSize: Int64 = 10 << 30,
            streamChunk: Int = 8 << 20,
            maximumPatch: Int = 64 << 20,
            outageLimit: Duration = .seconds(300),
            retry: RetryPolicy = RetryPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(60))
        ) {
            self.directory = directory
            self.scope = scope
            self.writeBack = writeBack
            self.transfers = max(1, transfers)
            self.maximumSize = max(1 << 20, maximumSize)
            // Room for several chunks, so that a writer held back by a full journal always has
            // something to stream.
            self.streamChunk = min(max(64 << 10, streamChunk), Int(self.maximumSize / 4))
            self.maximumPatch = max(self.streamChunk, maximumPatch)
            self.outageLimit = outageLimit
            self.retry = retry
        }
    }
}
