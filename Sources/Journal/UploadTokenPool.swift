import Logging
import MediaManager

/// Resumable upload URLs and their single-use tokens, one fetched ahead per folder and MIME type.
///
/// Copying a folder creates file after file of the same kind in the same folder; each needs a
/// token from `generateFileResumableUploadUrl`, one round trip to the API. Taking a token here
/// starts fetching the next one for the same folder and type, so the next file finds it ready.
/// A token names its folder and type (the display name is set at finalize), so a token made
/// for one file serves any other of the same folder and type. Tokens are valid for days; unused
/// ones are dropped after ``maximumAge``.
actor UploadTokenPool {
    private struct Key: Hashable {
        let folder: String
        let mimeType: String
    }

    private let client: MediaManagerClient
    private let logger: Logger
    private let clock = ContinuousClock()
    private let maximumAge: Duration = .seconds(600)
    private let maximumKeys = 32
    private var ready: [Key: (token: GenerateResumableUploadUrlResponse, fetched: ContinuousClock.Instant)] = [:]
    private var refilling: [Key: Task<Void, Never>] = [:]

    init(client: MediaManagerClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A token for a file of `mimeType` in `folder` (fetched now when none is ready).
    func take(folder: String, mimeType: String, fileName: String) async throws -> GenerateResumableUploadUrlResponse {
        let key = Key(folder: folder, mimeType: mimeType)
        if ready[key] == nil, let running = refilling[key] {
            await running.value
        }
        if let entry = ready.removeValue(forKey: key), clock.now - entry.fetched < maximumAge {
            refill(key, fileName: fileName)
            return entry.token
        }
        let token = try await fetch(key, fileName: fileName)
        refill(key, fileName: fileName)
        return token
    }

    /// Drops the tokens fetched ahead (at unmount).
    func clear() {
        refilling.values.forEach { $0.cancel() }
        refilling = [:]
        ready = [:]
    }

    private func fetch(_ key: Key, fileName: String) async throws -> GenerateResumableUploadUrlResponse {
        try await client.files.generateFileResumableUploadUrl(
            mimeType: key.mimeType, options: UploadOptions(fileName: fileName, parentFolderId: key.folder))
    }

    private func refill(_ key: Key, fileName: String) {
        guard refilling[key] == nil, ready[key] == nil else { return }
        if ready.count >= maximumKeys {
            let oldest = ready.min { $0.value.fetched < $1.value.fetched }?.key
            if let oldest { ready[oldest] = nil }
        }
        refilling[key] = Task {
            do {
                let token = try await fetch(key, fileName: fileName)
                store(token, for: key)
            } catch {
                logger.debug("Fetching an upload URL ahead failed", metadata: ["error": "\(error)"])
            }
            refilling[key] = nil
        }
    }

    private func store(_ token: GenerateResumableUploadUrlResponse, for key: Key) {
        ready[key] = (token, clock.now)
    }
}
