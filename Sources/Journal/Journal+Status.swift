import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

/// The upload queue as `mediafs status` shows it.
public struct QueueStatus: Sendable, Codable, Equatable {
    /// One file in the journal.
    public struct File: Sendable, Codable, Equatable {
        public var name: String
        public var folderId: String
        public var size: Int64
        /// Bytes the Media Manager has acknowledged.
        public var sent: Int64
        /// `writing`, `queued`, `uploading`, `finalizing`, `failed`.
        public var state: String
        public var error: String?
    }

    /// Whether closes return before the upload (`--write-back`).
    public var writeBack: Bool
    /// Files still open for writing.
    public var writing: Int
    /// Closed files waiting for a transfer slot (or backing off), and their bytes.
    public var queued: Int
    public var queuedBytes: Int64
    /// Files being uploaded or finalized, and the bytes they still have to send.
    public var inFlight: Int
    public var inFlightBytes: Int64
    /// Files the Media Manager refused, kept until removed.
    public var failed: Int
    /// Renames of saved files not yet sent.
    public var renaming: Int
    /// Bytes written and not yet acknowledged by the Media Manager, and the limit.
    public var unacknowledgedBytes: Int64
    public var maximumBytes: Int64
    /// Bytes per second acknowledged over the last seconds.
    public var rate: Double
    /// Seconds until what is queued is sent, at that rate.
    public var eta: Double?
    /// The files (the first 1,000).
    public var files: [File]
    /// Where the journal is.
    public var directory: String

    /// Files not yet in the Media Manager, and renames not yet sent (failed ones excluded).
    public var pending: Int { writing + queued + inFlight + renaming }
}

extension Journal {
    /// The queue now.
    public func status() -> QueueStatus {
        state.withLock { state in
            var status = QueueStatus(
                writeBack: configuration.writeBack, writing: 0, queued: 0, queuedBytes: 0, inFlight: 0, inFlightBytes: 0, failed: 0,
                renaming: state.renames.count,
                unacknowledgedBytes: state.unacknowledged, maximumBytes: configuration.maximumSize, rate: 0, eta: nil, files: [],
                directory: configuration.directory)
            let ordered = state.records.values.sorted { $0.record.created < $1.record.created }
            for runtime in ordered {
                let name = Self.stateName(runtime)
                let remaining = max(0, runtime.size - runtime.acknowledged)
                switch name {
                case "writing": status.writing += 1
                case "queued":
                    status.queued += 1
                    status.queuedBytes += remaining
                case "failed": status.failed += 1
                default:
                    status.inFlight += 1
                    status.inFlightBytes += remaining
                }
                if status.files.count < 1000 {
                    status.files.append(
                        .init(
                            name: runtime.record.displayName, folderId: runtime.record.parentFolderId, size: runtime.size,
                            sent: runtime.acknowledged, state: name, error: runtime.record.lastError))
                }
            }
            status.rate = state.meter.rate(at: clock.now)
            if status.rate > 0 {
                status.eta = Double(status.queuedBytes + status.inFlightBytes) / status.rate
            }
            return status
        }
    }

    /// What `user.mediafs.uploadState` says of a record: `writing`, `queued`, `uploading 43%`,
    /// `finalizing`, `done`, or `failed: …`; `nil` for a record the journal does not know.
    public func uploadState(_ id: String) -> String? {
        state.withLock { state in
            if let runtime = state.records[id] {
                switch Self.stateName(runtime) {
                case "uploading":
                    let percent = runtime.size > 0 ? Int(runtime.acknowledged * 100 / runtime.size) : 0
                    return "uploading \(percent)%"
                case "failed": return "failed: " + (runtime.record.lastError ?? "refused")
                case let name: return name
                }
            }
            switch state.outcomes[id] {
            case .success?: return "done"
            case .failure(let error)?: return "failed: \(error.message)"
            case nil: return nil
            }
        }
    }

    static func stateName(_ runtime: Runtime) -> String {
        switch runtime.record.state {
        case .open: return "writing"
        case .sealed: return runtime.sending ? "uploading" : "queued"
        case .finalizing, .finalized: return "finalizing"
        case .failed: return "failed"
        case .abandoned: return "abandoned"
        }
    }

    // MARK: Shutting down

    /// Waits (at most `timeout`) until every closed file is in the Media Manager; returns what is
    /// left then.
    public func drain(timeout: Duration) async -> QueueStatus {
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let busy = state.withLock { state in
                !state.cleanups.isEmpty || !state.renames.isEmpty
                    || state.records.values.contains {
                        $0.record.state == .sealed || $0.record.state == .finalizing || $0.record.state == .finalized
                    }
            }
            guard busy else { break }
            state.withLock { schedule(&$0) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return status()
    }

    /// Stops every transfer (what is left resumes at the next open of this journal) and logs
    /// what stays queued.
    public func stop() async {
        let running = state.withLock { state -> [Task<Void, Never>] in
            state.stopping = true
            state.wakeup?.cancel()
            state.wakeup = nil
            let transfers = Array(state.transfers.values) + Array(state.renameTasks.values)
            transfers.forEach { $0.cancel() }
            // Tokens fetched ahead for files not yet sent: during an outage they would retry.
            for runtime in state.records.values { runtime.token?.task.cancel() }
            for waiter in state.spaceWaiters.values { waiter.resume(throwing: JournalError.interrupted) }
            state.spaceWaiters = [:]
            // A cleanup cut short leaves its record abandoned; the next mount finishes it.
            let cleanups = Array(state.cleanups.values)
            cleanups.forEach { $0.cancel() }
            return transfers + cleanups
        }
        for task in running { await task.value }
        await tokens.clear()
        let left = status()
        if left.queued + left.inFlight > 0 {
            logger.notice(
                "\(left.queued + left.inFlight) file(s) (\((left.queuedBytes + left.inFlightBytes) >> 20) MiB) are still queued; they resume at the next mount with the cache directory \(configuration.directory)"
            )
        }
        if left.failed > 0 {
            logger.warning("\(left.failed) file(s) could not be saved and stay in the journal; `mediafs status` lists them")
        }
        eventSink.finish()
        // Saves queued without waiting (attributes) are written before another journal may open.
        await store.flushed()
        store.unlock()
    }
}
