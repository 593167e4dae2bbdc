import Logging
import MediaManager

/// Resumable upload URLs and their single-use tokens, fetched ahead per folder and MIME type.
///
/// Copying a folder creates file after file of the same kind in the same folder; each needs a
/// token from `generateFileResumableUploadUrl`, one round trip to the API. Taking a token here
/// starts fetching the next ones for the same folder and type, so the next file finds one ready.
/// How many are kept ahead follows demand: one at first, doubled (up to ``maximumDepth``) each
/// time a file had to wait, so that a fast copy over a slow link is not held to one token per
/// round trip. A token names its folder and type (the display name is set at finalize), so a
/// token made for one file serves any other of the same folder and type. Tokens are valid for
/// days; unused ones are dropped after ``maximumAge``.
actor UploadTokenPool {
    private struct Key: Hashable {
        let folder: String
        let mimeType: String
    }

    private struct Entry {
        let token: GenerateResumableUploadUrlResponse
        let fetched: ContinuousClock.Instant
    }

    private struct Slot {
        var ready: [Entry] = []
        var fetching = 0
        var depth = 1
        var used: ContinuousClock.Instant
        /// Takers waiting for the next token fetched.
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let client: MediaManagerClient
    private let logger: Logger
    private let clock = ContinuousClock()
    private let maximumAge: Duration = .seconds(600)
    private let maximumKeys = 32
    /// The most tokens kept ahead (and fetched at once) for one folder and type.
    static let maximumDepth = 16
    private var slots: [Key: Slot] = [:]
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    private var nextTask: UInt64 = 0

    init(client: MediaManagerClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A token for a file of `mimeType` in `folder` (fetched now when none is ready).
    func take(folder: String, mimeType: String, fileName: String) async throws -> GenerateResumableUploadUrlResponse {
        let key = Key(folder: folder, mimeType: mimeType)
        let known = slots[key] != nil
        var slot = slots[key] ?? Slot(used: clock.now)
        slot.used = clock.now
        slot.ready.removeAll { clock.now - $0.fetched >= maximumAge }
        if known && slot.ready.isEmpty {
            // Demand outran what was kept ahead.
            slot.depth = min(slot.depth * 2, Self.maximumDepth)
        }
        slots[key] = slot
        evictIdleKeys()
        if let token = popReady(key) {
            refill(key, fileName: fileName)
            return token
        }
        if slots[key]?.fetching ?? 0 > 0 {
            // One is on its way: wait for it rather than ask for one more.
            await withCheckedContinuation { continuation in slots[key, default: Slot(used: clock.now)].waiters.append(continuation) }
            if let token = popReady(key) {
                refill(key, fileName: fileName)
                return token
            }
        }
        let token = try await fetch(key, fileName: fileName)
        refill(key, fileName: fileName)
        return token
    }

    /// Drops the tokens fetched ahead (at unmount).
    func clear() {
        tasks.values.forEach { $0.cancel() }
        tasks = [:]
        for slot in slots.values { slot.waiters.forEach { $0.resume() } }
        slots = [:]
    }

    private func popReady(_ key: Key) -> GenerateResumableUploadUrlResponse? {
        guard var slot = slots[key], !slot.ready.isEmpty else { return nil }
        let entry = slot.ready.removeFirst()
        slots[key] = slot
        return entry.token
    }

    private func fetch(_ key: Key, fileName: String) async throws -> GenerateResumableUploadUrlResponse {
        try await client.files.generateFileResumableUploadUrl(
            mimeType: key.mimeType, options: UploadOptions(fileName: fileName, parentFolderId: key.folder))
    }

    /// Starts fetches until `depth` tokens are ready or on their way.
    private func refill(_ key: Key, fileName: String) {
        guard var slot = slots[key] else { return }
        while slot.ready.count + slot.fetching < slot.depth {
            slot.fetching += 1
            nextTask += 1
            let number = nextTask
            tasks[number] = Task {
                let token: GenerateResumableUploadUrlResponse?
                do {
                    token = try await fetch(key, fileName: fileName)
                } catch {
                    logger.debug("Fetching an upload URL ahead failed", metadata: ["error": "\(error)"])
                    token = nil
                }
                fetched(key, token, task: number)
            }
        }
        slots[key] = slot
    }

    private func fetched(_ key: Key, _ token: GenerateResumableUploadUrlResponse?, task: UInt64) {
        tasks[task] = nil
        guard var slot = slots[key] else { return }
        slot.fetching -= 1
        if let token { slot.ready.append(Entry(token: token, fetched: clock.now)) }
        // Everyone waiting tries again (one finds the token, the others fetch their own).
        let waiters = slot.waiters
        slot.waiters = []
        slots[key] = slot
        waiters.forEach { $0.resume() }
    }

    /// Keeps at most ``maximumKeys`` folders and types, dropping the least recently used idle one.
    private func evictIdleKeys() {
        guard slots.count > maximumKeys else { return }
        let idle = slots.filter { $0.value.fetching == 0 && $0.value.waiters.isEmpty }
        if let oldest = idle.min(by: { $0.value.used < $1.value.used })?.key { slots[oldest] = nil }
    }
}
