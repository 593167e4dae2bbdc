import Foundation
import Logging
import ServiceLifecycle

/// Periodically removes expired unfinished uploads and their bytes.
struct UploadSweeper: Service {
    let state: ServerState

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await sweep()
            } catch {
                state.logger.error("Sweeping expired uploads failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(state.configuration.sweepInterval)) }
        }
    }

    func sweep(now: Date = Date()) async throws {
        let expired = try await state.store.expireUploads(now: now)
        guard !expired.isEmpty else { return }
        for id in expired { await state.sessions.forget(id) }
        await state.blobs.remove(expired)
        state.logger.info("Removed expired uploads", metadata: ["count": "\(expired.count)"])
    }

    /// Removes blobs that neither a file nor an active upload owns (left by a crash between
    /// writing a simple upload and recording it).
    func removeOrphanBlobs() async throws {
        let referenced = try await state.store.referencedBlobs()
        let orphans = try await state.blobs.allBlobIds().filter { !referenced.contains($0) }
        guard !orphans.isEmpty else { return }
        await state.blobs.remove(orphans)
        state.logger.info("Removed orphaned blobs", metadata: ["count": "\(orphans.count)"])
    }
}
