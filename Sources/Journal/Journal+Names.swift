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
    /// The outcome of renaming or deleting a file that was pending.
    public enum Settled: Sendable {
        /// Only the record changed: no API call was needed.
        case local
        /// The file was saved meanwhile: the caller changes it through the API.
        case saved(MediaManager.FileDescriptor)
    }

    /// A pending file is renamed or moved: its record takes the new folder and name (it is
    /// finalized under them; a token already issued for another folder means one move after the
    /// upload). `replacing` are files the rename overwrote, trashed once it is saved. If the file
    /// is being finalized, this waits for it and returns the saved file instead.
    public func retarget(_ id: String, parentFolderId: String, displayName: String, replacing: [String] = []) async throws(JournalError)
        -> Settled
    {
        let changed = state.withLock { state -> Bool? in
            guard var runtime = state.records[id] else { return nil }
            switch runtime.record.state {
            case .open, .sealed, .failed:
                runtime.record.parentFolderId = parentFolderId
                runtime.record.displayName = displayName
                runtime.record.replacing += replacing.filter { !runtime.record.replacing.contains($0) }
                state.records[id] = runtime
                return true
            case .finalizing, .finalized, .abandoned:
                return false
            }
        }
        switch changed {
        case true?:
            do {
                // A rename that returned survives a crash.
                try await persist(id, durable: true)
            } catch {
                throw JournalError(EIO, "Recording the rename of '\(displayName)' in the journal failed: \(error)")
            }
            return .local
        case false?, nil:
            return .saved(try await finalized(id))
        }
    }

    /// A pending file is deleted: its upload stops and is terminated, its bytes go (a reader
    /// that has it open keeps reading them). Returns the files the caller must trash: the saved
    /// file, if it was saved meanwhile, and the files it was to replace (deleting a file you just
    /// overwrote leaves neither).
    public func discard(_ id: String) async throws(JournalError) -> [String] {
        guard let current = state.withLock({ $0.records[id]?.record.state }) else {
            // Saved just before (the caller had not yet heard): the saved file goes.
            return savedFile(id).map { [$0.id] } ?? []
        }
        switch current {
        case .open, .sealed, .failed, .abandoned:
            // What it replaced is the caller's to trash: hidden at once (a listing read before the
            // trash must not show it). Given up only if its finalize has not begun meanwhile.
            await reach(.discarding, id)
            let reason = JournalError(ENOENT, "The file was deleted while it was being written")
            if let abandoned = await abandon(id, because: reason, hidingReplaced: true, unlessSaving: true) {
                return abandoned.replacing
            }
            if state.withLock({ $0.records[id] == nil }) { return savedFile(id).map { [$0.id] } ?? [] }
        case .finalizing, .finalized:
            break
        }
        // Being saved: let it finish (it trashes what it replaces), then the caller trashes it.
        return [try await finalized(id).id]
    }
}
