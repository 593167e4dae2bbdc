import Backoff
import Foundation
import Logging
import MediaManager
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension Journal {
    /// Renames a saved file within its folder: the rename is recorded durably and returns; the
    /// Media Manager is told in the background (and after a crash, by the next mount). A later
    /// rename of the same file replaces this one. `replacing` are files the rename overwrote:
    /// they go to the trash once it is done.
    public func renameSaved(fileId: String, folderId: String, displayName: String, replacing: [String] = []) async throws(JournalError) {
        let rename = state.withLock { state -> SavedRename in
            var rename = state.renames[fileId]
                ?? SavedRename(fileId: fileId, scope: configuration.scope, folderId: folderId, displayName: displayName)
            rename.folderId = folderId
            rename.displayName = displayName
            rename.replacing += replacing.filter { !rename.replacing.contains($0) && $0 != fileId }
            state.renames[fileId] = rename
            return rename
        }
        do {
            try await store.save(rename)
        } catch {
            state.withLock { $0.renames[fileId] = nil }
            throw JournalError(EIO, "Recording the rename of '\(displayName)' in the journal failed: \(error)")
        }
        state.withLock { startRenaming(&$0, fileId) }
    }

    /// The renames of saved files in `folderId` the Media Manager does not know yet, by file id.
    public func pendingRenames(in folderId: String) -> [String: SavedRename] {
        state.withLock { state in state.renames.filter { $0.value.folderId == folderId } }
    }

    /// The rename of a saved file not yet sent, if any.
    public func pendingRename(of fileId: String) -> SavedRename? {
        state.withLock { $0.renames[fileId] }
    }

    /// Drops a rename not yet sent (the file is deleted, or renamed through the API); returns it,
    /// so that the caller trashes what it replaced. `hidingReplaced`: the caller trashes them,
    /// so they stay hidden from listings (they no longer are through the rename).
    ///
    /// A rename request already on its way is waited for (else it could reach the server after
    /// the caller's own change and undo it); one not yet sent never goes.
    public func cancelRename(of fileId: String, hidingReplaced: Bool = false) async -> SavedRename? {
        let removed = state.withLock { state -> (SavedRename, Task<Void, Never>?)? in
            guard let rename = state.renames.removeValue(forKey: fileId) else { return nil }
            if hidingReplaced { noteTrashed(&state, rename.replacing) }
            let task = state.renameTasks[fileId]
            if !state.renamesInFlight.contains(fileId) { task?.cancel() }
            return (rename, task)
        }
        guard let (rename, task) = removed else { return nil }
        await task?.value
        try? await store.deleteRename(fileId)
        return rename
    }

    // MARK: Sending (under the lock)

    func startRenaming(_ state: inout State, _ fileId: String) {
        guard !state.stopping, state.renameTasks[fileId] == nil, state.renames[fileId] != nil else { return }
        state.renameTasks[fileId] = Task(priority: .utility) { await self.sendRename(fileId) }
    }

    /// Sends a rename until the Media Manager has it (retrying through outages); one that cannot
    /// be done (the file is gone) is dropped and logged.
    private func sendRename(_ fileId: String) async {
        var failures = 0
        while !Task.isCancelled {
            guard let rename = state.withLock({ $0.renames[fileId] }) else { break }
            await reach(.renaming, fileId)
            // Still the one to send (not cancelled or replaced meanwhile); in flight from here on,
            // under the lock a cancellation takes.
            let current = state.withLock { state -> Bool in
                guard !Task.isCancelled, state.renames[fileId] == rename else { return false }
                state.renamesInFlight.insert(fileId)
                return true
            }
            guard current else { continue }
            defer { _ = state.withLock { $0.renamesInFlight.remove(fileId) } }
            do {
                _ = try await client.files.update(id: fileId, displayName: rename.displayName)
                if !rename.replacing.isEmpty {
                    do {
                        try await client.files.delete(ids: rename.replacing)
                    } catch let error as MediaManagerError where error.code == .notFound {
                        for id in rename.replacing { _ = try? await client.files.delete(ids: [id]) }
                    }
                }
                // Done, unless a newer rename of the file came meanwhile.
                let done = state.withLock { state -> Bool in
                    noteTrashed(&state, rename.replacing)
                    // Replaced or cancelled meanwhile: the place is not this one's to note.
                    guard state.renames[fileId] == rename else { return false }
                    // Renamed: a listing read before shows the old name.
                    notePlaced(&state, fileId: fileId, folderId: rename.folderId, displayName: rename.displayName)
                    state.renames[fileId] = nil
                    return true
                }
                if done {
                    try? await store.deleteRename(fileId)
                    break
                }
            } catch let error as MediaManagerError where error.code == .notFound || error.code == .badRequest {
                logger.error("Renaming a saved file to '\(rename.displayName)' failed; it keeps its name", metadata: ["error": "\(error)"])
                _ = await cancelRename(of: fileId)
                break
            } catch {
                if Self.isCancellation(error) || state.withLock({ $0.renames[fileId] == nil }) { break }
                failures += 1
                logger.warning("Renaming a saved file to '\(rename.displayName)' failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: configuration.retry.delay(forAttempt: failures - 1))
            }
        }
        state.withLock { state in
            state.renameTasks[fileId] = nil
            // A rename that came while this one was being sent goes next.
            if state.renames[fileId] != nil && !Task.isCancelled { startRenaming(&state, fileId) }
        }
    }
}
