import Backoff
import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension Journal {
    /// How many times one record's upload may start over before it fails.
    static let maximumRestarts = 5

    /// Handles what stopped a transfer: a cancellation ends it quietly; a transient failure is
    /// retried after a backoff (forever in the background; a waiting close gives up after the
    /// outage limit); an unusable upload or token starts over; anything else fails the record.
    func setback(_ id: String, _ error: any Error) async {
        // A transfer stopped on purpose (an unmount, the record written again or restarted):
        // what its requests answered afterwards says nothing of the upload.
        if Self.isCancellation(error) || Task.isCancelled { return }
        switch error {
        case TransferSetback.restartUpload(let why):
            await restartAfterSetback(id, why: why, newToken: false)
        case TransferSetback.newToken(let why):
            await restartAfterSetback(id, why: why, newToken: true)
        default:
            switch Self.classify(error) {
            case .transient:
                await retryLater(id, Self.describe(error))
            case .restart:
                await restartAfterSetback(id, why: Self.describe(error), newToken: false)
            case .newToken:
                await restartAfterSetback(id, why: Self.describe(error), newToken: true)
            case .permanent:
                await fail(id, Self.describe(error))
            }
        }
    }

    private func restartAfterSetback(_ id: String, why: String, newToken: Bool) async {
        let attempts = state.withLock { state -> Int in
            state.records[id]?.record.attempts += 1
            return state.records[id]?.record.attempts ?? 0
        }
        guard attempts <= Self.maximumRestarts else {
            await fail(id, "its upload had to start over \(attempts) times; last: \(why)")
            return
        }
        let name = state.withLock { $0.records[id]?.record.displayName } ?? id
        logger.notice("'\(name)': the upload starts over (\(why))")
        if state.withLock({ $0.records[id]?.record.state == .open }) {
            // Still being written: streaming waits for the close.
            state.withLock { state in
                guard var runtime = state.records[id], !runtime.restart else { return }
                forgetUpload(&runtime)
                state.records[id] = runtime
            }
            return
        }
        await dropUpload(id, newToken: newToken)
    }

    private func retryLater(_ id: String, _ problem: String) async {
        let (giveUp, name) = state.withLock { state -> (Bool, String) in
            guard var runtime = state.records[id] else { return (false, id) }
            runtime.consecutiveFailures += 1
            runtime.record.lastError = problem
            let delay = configuration.retry.delay(forAttempt: runtime.consecutiveFailures - 1)
            runtime.notBefore = clock.now + delay
            state.records[id] = runtime
            // A close waiting without write-back gives up after the outage limit; in the
            // background, uploads wait for the network as long as it takes.
            let stalled = clock.now - runtime.lastProgress >= configuration.outageLimit
            let giveUp = !configuration.writeBack && !runtime.waiters.isEmpty && stalled && runtime.record.state == .sealed
            return (giveUp, runtime.record.displayName)
        }
        if giveUp {
            await abandon(
                id,
                because: JournalError(
                    EIO,
                    "Uploading '\(name)' failed: the Media Manager was unreachable for longer than the outage limit (\(configuration.outageLimit)); last: \(problem)"
                ))
            return
        }
        if state.withLock({ $0.records[id]?.record.state }) == .open {
            // Streaming failed: the sealed upload takes over from the server's offset.
            logger.debug("'\(name)': sending while written paused (\(problem))")
            return
        }
        logger.warning("'\(name)': upload interrupted; retrying", metadata: ["problem": "\(problem)"])
        do {
            try await persist(id)
        } catch {
            logger.debug("Could not record the upload's last error", metadata: ["error": "\(error)"])
        }
    }

    /// The record cannot be saved. A close that waits (without write-back) gets the error and the
    /// file is given up; otherwise it stays in the journal as `failed`, with its reason, until the
    /// user removes it.
    func fail(_ id: String, _ problem: String) async {
        let outcome = state.withLock { state -> (JournalRecord, Bool)? in
            // Stopped meanwhile (written again, unmounted): the failure is no longer the record's.
            // Checked under the lock that cancels transfers.
            guard var runtime = state.records[id], !Task.isCancelled else { return nil }
            let waited = !configuration.writeBack && !runtime.waiters.isEmpty && runtime.record.state == .sealed
            if !waited {
                runtime.record.state = .failed
                runtime.record.lastError = problem
                let error = JournalError(EIO, "'\(runtime.record.displayName)' could not be saved: \(problem)")
                for waiter in runtime.waiters.values { waiter.resume(throwing: error) }
                runtime.waiters = [:]
                state.records[id] = runtime
                account(&state, id)
            }
            return (runtime.record, waited)
        }
        guard let (record, waited) = outcome else { return }
        if waited {
            await abandon(id, because: JournalError(EIO, "Uploading '\(record.displayName)' failed: \(problem)"))
            return
        }
        logger.error(
            "'\(record.displayName)' (folder \(record.parentFolderId)) could not be saved: \(problem). It stays in the journal (\(configuration.directory)) until you delete it; `mediafs status` lists it")
        do {
            try await persist(id, durable: true)
        } catch {
            logger.warning("Could not record the failure", metadata: ["error": "\(error)"])
        }
        emit(.failed(record: id, reason: problem))
    }

    /// Gives a record up: its transfer stops, its bytes go, its tus upload is terminated in the
    /// background (the record stays as `abandoned` until that is done), and waiters get `reason`.
    /// Returns without waiting for the server: during an outage the termination retries for up to
    /// the outage limit, and an unlink must not wait that long.
    /// `hidingReplaced`: the files it replaced go to the trash too (the caller trashes them), so
    /// they stay hidden from listings, from the moment the record no longer hides them.
    ///
    /// - Parameter unlessSaving: leave the record alone if it is being finalized or was
    ///   finalized (checked under the same lock: a finalize that may have reached the server
    ///   must not be forgotten).
    /// - Returns: the record given up, or `nil` when there was none (or it was being saved).
    @discardableResult
    func abandon(_ id: String, because reason: JournalError, hidingReplaced: Bool = false, unlessSaving: Bool = false) async
        -> JournalRecord?
    {
        guard
            let record = state.withLock({ state -> JournalRecord? in
                guard let runtime = state.records[id] else { return nil }
                if unlessSaving, runtime.record.state == .finalizing || runtime.record.state == .finalized { return nil }
                state.transfers[id]?.cancel()
                if hidingReplaced { noteTrashed(&state, runtime.record.replacing) }
                forget(&state, id, outcome: .failure(reason))
                return runtime.record
            })
        else { return nil }
        try? FileManager.default.removeItem(atPath: dataPath(id))
        emit(.abandoned(record: id))
        releaseTask(record)
        return record
    }

    /// Starts removing an abandoned record for good, terminating its tus upload first (if that
    /// fails, the record stays and the next mount tries again). The task is registered at once,
    /// so that a drain started right after waits for it; ``stop()`` cancels it.
    @discardableResult
    func releaseTask(_ record: JournalRecord) -> Task<Void, Never> {
        let key = UUID()
        return state.withLock { state in
            let task = Task {
                defer { _ = self.state.withLock { $0.cleanups.removeValue(forKey: key) } }
                var abandoned = record
                abandoned.state = .abandoned
                guard let location = record.tusLocation else {
                    await dropUnrecordedUpload(of: record)
                    if Task.isCancelled {
                        // Stopped mid-way: the next mount clears it.
                        try? await store.save(abandoned, durable: false)
                    } else {
                        try? await store.delete(record.id)
                    }
                    return
                }
                try? await store.save(abandoned, durable: false)
                do {
                    try await tus.terminate(uploadURL: location)
                    try await store.delete(record.id)
                } catch {
                    logger.debug("Terminating an abandoned upload failed; the next mount tries again", metadata: ["error": "\(error)"])
                }
            }
            state.cleanups[key] = task
            return task
        }
    }

    /// A record given up with a token but no upload recorded: the process may have died between
    /// the server creating its upload and the journal recording where it is. A new upload with
    /// the same token takes its place on a server that keeps one upload per token (the embedded
    /// Media Manager does), and is terminated at once; elsewhere the unknown one expires.
    private func dropUnrecordedUpload(of record: JournalRecord) async {
        guard let url = record.uploadURL, let token = record.uploadToken else { return }
        do {
            let capabilities = try await capabilities(url)
            guard capabilities.supportsDeferredLength, capabilities.supportsTermination else { return }
            let created = try await tus.create(at: url, length: nil, metadata: metadata(record, token: token), capabilities: capabilities)
            try await tus.terminate(uploadURL: created.url)
        } catch {
            logger.debug("Could not clear an upload the journal never recorded", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Classifying errors

    enum Disposition {
        case transient, restart, newToken, permanent
    }

    static func isCancellation(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        if let error = error as? ResumableError, error.code == .cancelled { return true }
        if let error = error as? MediaManagerError, error.code == .cancelled { return true }
        if let error = error as? JournalError, error.errno == EINTR { return true }
        return false
    }

    static func classify(_ error: any Error) -> Disposition {
        switch error {
        case is RetryLater:
            return .transient
        case let error as ResumableError:
            switch error.code {
            case .outage, .protocolViolation, .checksumMismatch: return .transient
            case .uploadNotFound, .offsetMismatch, .lengthMismatch: return .restart
            case .unexpectedStatus:
                switch error.status ?? 0 {
                case 408, 423, 429, 500...599: return .transient
                case 401, 403: return .newToken
                case 409: return .restart
                default: return .permanent
                }
            default: return .permanent
            }
        case let error as MediaManagerError:
            switch error.code {
            case .transport, .serverError, .rateLimited, .invalidResponse: return .transient
            default: return .permanent
            }
        default:
            return .permanent
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as MediaManagerError:
            var text = error.message
            if let status = error.status { text = "HTTP \(status): " + text }
            return text
        case let error as ResumableError: return error.message + (error.underlying.map { " (\($0))" } ?? "")
        case let error as JournalError: return error.message
        default: return "\(error)"
        }
    }
}
