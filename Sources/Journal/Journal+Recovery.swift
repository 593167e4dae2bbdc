import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

extension Journal {
    /// Takes up what a previous process left in the journal.
    ///
    /// - sealed, finalizing, finalized records are queued again: their upload continues from the
    ///   server's offset, and one that may have been finalized is looked for before it is
    ///   finalized again;
    /// - open records (a program was still writing when the process died) are incomplete: they are
    ///   given up, their tus uploads terminated, and the log names them;
    /// - a record whose bytes are missing fails (and is reported); a data file without a record is
    ///   moved to `quarantine/`, never deleted.
    func recover() throws(JournalError) {
        let loaded: (records: [JournalRecord], others: Int)
        do {
            loaded = try store.load(scope: configuration.scope)
        } catch {
            throw JournalError.unusable("Cannot read the journal in \(configuration.directory): \(error)")
        }
        if loaded.others > 0 {
            logger.notice(
                "The journal \(configuration.directory) holds \(loaded.others) file(s) for another Media Manager; they wait for a mount of it")
        }
        var runtimes: [String: Runtime] = [:]
        var abandoned: [JournalRecord] = []
        for var record in loaded.records {
            switch record.state {
            case .open:
                logger.warning(
                    "'\(record.displayName)' was being written when mediafs stopped; it is incomplete and was not saved")
                try? FileManager.default.removeItem(atPath: dataPath(record.id))
                abandoned.append(record)
                continue
            case .abandoned:
                try? FileManager.default.removeItem(atPath: dataPath(record.id))
                abandoned.append(record)
                continue
            case .sealed, .finalizing, .finalized, .failed:
                break
            }
            if record.state != .finalized {
                restoreSealedBytes(record)
            }
            let attributes = try? FileManager.default.attributesOfItem(atPath: dataPath(record.id))
            var length = (attributes?[.size] as? NSNumber)?.int64Value
            if length == nil, record.state == .finalized, (try? DataFile(creating: dataPath(record.id))) != nil {
                // Saved already: only the follow-up steps remain, which need no bytes.
                length = record.size
            }
            guard let length else {
                record.state = .failed
                record.lastError = "its bytes are missing from the journal (\(dataPath(record.id)))"
                logger.error("'\(record.displayName)' cannot be uploaded: \(record.lastError!)")
                try? store.saveNow(record)
                continue
            }
            if length < record.size && record.state != .finalized && record.state != .failed {
                record.state = .failed
                record.lastError = "the journal holds \(length) of its \(record.size) bytes"
                logger.error("'\(record.displayName)' cannot be uploaded: \(record.lastError!)")
                try? store.saveNow(record)
            }
            var runtime = Runtime(record: record, data: nil, size: record.size, lastProgress: clock.now)
            runtime.acknowledged = record.acknowledged
            runtime.claimed = record.acknowledged
            runtime.directorySynced = true
            runtime.uncertain = record.state == .finalizing
            runtimes[record.id] = runtime
        }
        quarantineOrphans(known: Set(loaded.records.map(\.id)))
        let renames = (try? store.loadRenames(scope: configuration.scope)) ?? []
        state.withLock { state in
            state.records = runtimes
            for id in runtimes.keys { account(&state, id) }
            let ordered = runtimes.values.filter { $0.record.state != .failed }.sorted {
                ($0.record.sealed ?? $0.record.created) < ($1.record.sealed ?? $1.record.created)
            }
            for runtime in ordered { enqueue(&state, runtime.record.id) }
            for rename in renames { state.renames[rename.fileId] = rename }
        }
        let queued = runtimes.values.filter { $0.record.state != .failed }.count
        if queued > 0 {
            logger.notice("\(queued) file(s) left by the previous mount are queued; their uploads resume now")
        }
        for record in abandoned {
            releaseTask(record)
        }
    }

    /// A small file's bytes, committed with its seal, written back into its data file: the data
    /// file was never synced, so after a power loss it may be missing, short or zeroed.
    private func restoreSealedBytes(_ record: JournalRecord) {
        let bytes: Data?
        do {
            bytes = try store.sealedBytes(record.id)
        } catch {
            logger.warning("Could not read the sealed bytes of '\(record.displayName)'", metadata: ["error": "\(error)"])
            return
        }
        guard let bytes, Int64(bytes.count) == record.size else { return }
        let path = dataPath(record.id)
        let temporary = path + ".restoring"
        do {
            unlink(temporary)
            let file = try DataFile(creating: temporary)
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            guard rename(temporary, path) == 0 else { throw DataFileError(errno, "rename", temporary) }
        } catch {
            unlink(temporary)
            logger.warning("Could not restore the journal file of '\(record.displayName)': \(error)")
        }
    }

    /// Data files without a record are moved aside (and reported), never deleted.
    private func quarantineOrphans(known: Set<String>) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dataDirectory) else { return }
        let orphans = names.filter { $0.hasSuffix(".data") && !known.contains(String($0.dropLast(5))) }
        guard !orphans.isEmpty else { return }
        let quarantine = configuration.directory + "/quarantine"
        try? FileManager.default.createDirectory(atPath: quarantine, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for name in orphans {
            try? FileManager.default.moveItem(atPath: dataDirectory + "/" + name, toPath: quarantine + "/" + name)
        }
        logger.warning("\(orphans.count) journal file(s) had no record; moved to \(quarantine)")
    }
}
