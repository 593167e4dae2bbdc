import Crypto

/// In-memory state of uploads being written: which are locked by a PATCH (or a finalize), and
/// the running MD5 of each, so the hash is computed while the bytes arrive.
///
/// After a restart the hashers are gone; the MD5 is then rebuilt once from the bytes on disk.
actor UploadSessions {
    private var locked: Set<String> = []
    private var hashers: [String: (hasher: Insecure.MD5, offset: Int64)] = [:]

    /// Runs `body` holding the upload's lock, or throws `busy` if another request holds it:
    /// one PATCH at a time per upload, never interleaved.
    nonisolated func withLock<T: Sendable>(
        _ id: String,
        busy: @autoclosure () -> any Error,
        _ body: () async throws -> T
    ) async throws -> T {
        guard await tryLock(id) else { throw busy() }
        do {
            let result = try await body()
            await unlock(id)
            return result
        } catch {
            await unlock(id)
            throw error
        }
    }

    /// Runs `body` holding the locks of all `ids` (taken together or not at all), or throws
    /// `busy` if another request holds any of them.
    nonisolated func withLocks<T: Sendable>(
        _ ids: [String],
        busy: @autoclosure () -> any Error,
        _ body: () async throws -> T
    ) async throws -> T {
        guard await tryLock(ids) else { throw busy() }
        do {
            let result = try await body()
            await unlock(ids)
            return result
        } catch {
            await unlock(ids)
            throw error
        }
    }

    private func tryLock(_ id: String) -> Bool { locked.insert(id).inserted }
    private func unlock(_ id: String) { locked.remove(id) }

    private func tryLock(_ ids: [String]) -> Bool {
        guard locked.isDisjoint(with: ids) else { return false }
        locked.formUnion(ids)
        return true
    }

    private func unlock(_ ids: [String]) { locked.subtract(ids) }

    /// The running hasher of `id` if it covers exactly `offset` bytes.
    func hasher(for id: String, at offset: Int64) -> Insecure.MD5? {
        guard let entry = hashers[id], entry.offset == offset else { return nil }
        return entry.hasher
    }

    func store(_ hasher: Insecure.MD5, for id: String, at offset: Int64) {
        hashers[id] = (hasher, offset)
    }

    func forget(_ id: String) {
        hashers[id] = nil
    }
}
