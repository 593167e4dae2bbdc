import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The durable local write journal: every file being written, its bytes on disk and a record of
/// where it goes and how far its upload got, and the queue that uploads them.
///
/// A file is created (``create(_:)``), written at any offsets (``write(_:at:bytes:)``), and sealed
/// when its writer closes it (``seal(_:)``): from then on its bytes are durable and final, and
/// its upload is finalized exactly once, even if the process dies and a later one continues
/// (``open(configuration:client:tus:attributes:logger:)`` resumes every sealed record). While a
/// file is written, bytes already written out in order are streamed as tus `PATCH` chunks; a write
/// behind them means the upload starts over from the journal once the file is sealed, so the
/// file that lands is exactly what was written.
///
/// Renames and deletes of files not yet finalized only change their record. Memory does not grow
/// with the number of files: bytes live in the journal's files (and the page cache), and an
/// upload reads them piece by piece as it sends them. When more than
/// ``Configuration/maximumSize`` bytes wait for the Media Manager, writes wait.
///
/// The filesystem hands writes to the journal and asks it for state; the journal never calls
/// into the filesystem. It reports what it finished through ``events``.
public final class Journal: Sendable {
    /// What the journal tells its user about records it finished.
    public enum Event: Sendable {
        /// The Media Manager has the file (after the follow-up steps: moved where it was renamed
        /// to, replaced files trashed); its record left the journal.
        case finalized(record: String, file: MediaManager.FileDescriptor)
        /// The file was refused for good; its record stays (as `failed`) until removed.
        case failed(record: String, reason: String)
        /// The record was given up (deleted, or its upload failed while a close waited).
        case abandoned(record: String)
    }

    /// A file being written, as the filesystem sees it.
    public struct Entry: Sendable {
        public let id: String
        public let state: JournalRecord.State
        public let parentFolderId: String
        public let displayName: String
        public let mimeType: String
        /// The size written so far (the length once sealed).
        public let size: Int64
        /// Files it replaces (hidden while it is pending).
        public let replacing: [String]
        public let mode: UInt32?
        public let uid: UInt32?
        public let gid: UInt32?
        public let modified: Date?
        public let accessed: Date?
        public let created: Date
        public let lastError: String?
        /// Labels set while pending (given to the file once saved).
        public let labels: [String]?
        /// The id the saved file will have, when its upload token announced it: a listing that
        /// already shows that file (the finalize went through, its answer is on its way) must
        /// not show it twice.
        public let expectedFileId: String?
    }

    public let configuration: Configuration
    /// Records the journal finished or gave up; meant for one consumer (the filesystem).
    public let events: AsyncStream<Event>
    let eventSink: AsyncStream<Event>.Continuation
    let store: JournalStore
    let client: MediaManagerClient
    let tus: TusClient
    let attributes: AttributeStore
    let tokens: UploadTokenPool
    let logger: Logger
    let clock = ContinuousClock()
    let dataDirectory: String
    let state: Mutex<State>
    /// Called when a record reaches a ``Checkpoint`` (tests hold it there to run a change in
    /// between); `nil` otherwise.
    let checkpoint = Mutex<(@Sendable (Checkpoint, String) async -> Void)?>(nil)

    /// Points between the steps of a record's life.
    enum Checkpoint: Sendable {
        /// A new record is in the journal; ``create(_:)`` returns next.
        case created
        /// The server acknowledged bytes an open record streamed; it streams more next.
        case streamed
        /// A sealed record's upload begins (or goes on) next.
        case sending
        /// Every byte of a sealed record is on the server; the finalize comes next.
        case uploaded
        /// The Media Manager has the file; the follow-up steps come next.
        case finalized
        /// The follow-up steps are done; the record leaves the journal next.
        case completed
        /// A rename of a saved file is sent next (the id is the file's).
        case renaming
        /// A pending file was deleted; its record is given up next, unless it is being saved.
        case discarding
    }

    /// The per-record runtime state (memory only).
    struct Runtime {
        var record: JournalRecord
        /// The open data file, while it is written, sent or read (opened on demand: a queue of
        /// thousands of files holds no descriptors).
        var data: DataFile?
        /// The size written so far.
        var size: Int64
        /// Open write handles.
        var writers = 0
        /// Bytes handed to the current tus upload (sent or being sent).
        var claimed: Int64 = 0
        /// Bytes the server acknowledged.
        var acknowledged: Int64 = 0
        /// The tus upload no longer matches the bytes (written behind what was sent): it starts over.
        var restart = false
        /// What this record counts in ``State/unacknowledged``.
        var counted: Int64 = 0
        /// A download of the file's current content, which writes wait for.
        var prefill: Task<Void, any Error>?
        /// A transfer is running for it.
        var sending = false
        /// Not before this instant (backoff after a failure).
        var notBefore: ContinuousClock.Instant?
        var consecutiveFailures = 0
        /// Whether the data file's directory entry is durable.
        var directorySynced = false
        /// The token fetched ahead when the record was created, and the folder it is for.
        var token: (folder: String, task: Task<GenerateResumableUploadUrlResponse, any Error>)?
        /// A finalize request may have reached the server: check before sending another.
        var uncertain = false
        /// How many times the record was written again after it was sealed (a transfer that
        /// started before must not finalize what it sent).
        var reopened = 0
        /// The saved file whose stored attributes the completion set: attributes that come
        /// after are stored with it at once.
        var attributesFile: MediaManager.FileDescriptor?
        /// The last time its upload moved forward (for a waiting close's outage limit).
        var lastProgress: ContinuousClock.Instant
        var waiters: [UUID: CheckedContinuation<MediaManager.FileDescriptor, any Error>] = [:]
    }

    struct State {
        var records: [String: Runtime] = [:]
        /// Bytes written and not yet acknowledged by the server, over all records.
        var unacknowledged: Int64 = 0
        var spaceWaiters: [UUID: CheckedContinuation<Void, any Error>] = [:]
        var transfers: [String: Task<Void, Never>] = [:]
        /// Records waiting for a transfer slot, in order; an id may come again (taking one
        /// checks that it still waits). `queueHead` is the next to take.
        var queue: [String] = []
        var queueHead = 0
        /// Records someone waits for: they go first.
        var urgent: [String] = []
        /// Records backing off after a failure, and when they may go again.
        var delayed: [(id: String, until: ContinuousClock.Instant)] = []
        var wakeupAt: ContinuousClock.Instant?
        /// Renames of saved files not yet sent, by file id, and the tasks sending them.
        var renames: [String: SavedRename] = [:]
        var renameTasks: [String: Task<Void, Never>] = [:]
        /// Saved files whose rename request is on its way to the server (a cancellation waits
        /// for it rather than race it).
        var renamesInFlight: Set<String> = []
        /// Terminations of abandoned uploads in progress.
        var cleanups: [UUID: Task<Void, Never>] = [:]
        /// How records finished, for a waiter that comes after (bounded).
        var outcomes: [String: Result<MediaManager.FileDescriptor, JournalError>] = [:]
        var outcomeOrder: [String] = []
        /// Files trashed because saved files or renames replaced them, latest last (bounded): a
        /// listing read before they were trashed must not show them again.
        var trashed: [String] = []
        var trashedSet: Set<String> = []
        /// Saved files the journal moved or renamed in the background, latest last (bounded),
        /// each with the count of placements so far: a listing read before must show them where
        /// they are now.
        var placed: [(mark: UInt64, fileId: String, place: Place)] = []
        var placements: UInt64 = 0
        var capabilities: TusServerCapabilities?
        /// Whether bytes may go out before the length is known (deferred-length uploads).
        var streaming: Bool?
        var stopping = false
        var wakeup: Task<Void, Never>?
        var meter = RateMeter()
        var overLimitLogged = false
    }

    // MARK: Opening

    /// Opens (creating it) the journal in `configuration.directory` and resumes what a previous
    /// process left: sealed files are queued again (their uploads continue from the server's
    /// offset), files that were still being written are given up (their uploads terminated, the
    /// log names them). Call ``start()`` to begin uploading.
    public init(
        configuration: Configuration,
        client: MediaManagerClient,
        tus: TusClient,
        attributes: AttributeStore,
        logger: Logger
    ) throws(JournalError) {
        self.configuration = configuration
        self.client = client
        self.tus = tus
        self.attributes = attributes
        self.logger = logger
        self.dataDirectory = configuration.directory + "/data"
        do {
            for directory in [configuration.directory, dataDirectory] {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
        } catch {
            throw JournalError.unusable("Cannot create the journal directory \(configuration.directory): \(error.localizedDescription)")
        }
        self.store = try JournalStore(directory: configuration.directory)
        self.tokens = UploadTokenPool(client: client, logger: logger)
        (self.events, self.eventSink) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        self.state = Mutex(State())
        try recover()
    }

    /// Starts uploading what is queued (and sending renames left by a previous process).
    public func start() {
        state.withLock { state in
            schedule(&state)
            for fileId in state.renames.keys { startRenaming(&state, fileId) }
        }
    }

    /// The path of a record's bytes.
    func dataPath(_ id: String) -> String { dataDirectory + "/\(id).data" }

    // MARK: Creating

    /// What a new record is.
    public struct NewFile: Sendable {
        public var parentFolderId: String
        public var displayName: String
        public var mimeType: String
        /// Files it replaces: hidden while it is pending, trashed once it is saved.
        public var replacing: [String]
        /// Its content so far, to download before any write (changing an existing file): the
        /// size, and what writes bytes `0..<size` into the journal file.
        public var base: (size: Int64, download: @Sendable (DataFile) async throws -> Void)?
        public var mode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?

        public init(
            parentFolderId: String, displayName: String, mimeType: String, replacing: [String] = [],
            base: (size: Int64, download: @Sendable (DataFile) async throws -> Void)? = nil,
            mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil
        ) {
            self.parentFolderId = parentFolderId
            self.displayName = displayName
            self.mimeType = mimeType
            self.replacing = replacing
            self.base = base
            self.mode = mode
            self.uid = uid
            self.gid = gid
        }
    }

    /// Creates a record with one writer, and starts fetching its upload URL. Returns its id.
    public func create(_ new: NewFile) async throws(JournalError) -> String {
        var record = JournalRecord(
            scope: configuration.scope, parentFolderId: new.parentFolderId, displayName: new.displayName, mimeType: new.mimeType,
            replacing: new.replacing)
        record.mode = new.mode
        record.uid = new.uid
        record.gid = new.gid
        // The record first: a crash between the two leaves an open record without bytes, which
        // the next mount drops (a data file without a record would be quarantined). Not synced:
        // an open record is given up after a crash anyway, and the seal syncs it.
        do {
            try await store.save(record, durable: false)
        } catch {
            throw JournalError(EIO, "Cannot record '\(new.displayName)' in the journal: \(error)")
        }
        let file: DataFile
        do {
            file = try DataFile(creating: dataPath(record.id))
        } catch {
            try? await store.delete(record.id)
            throw JournalError(error.errno, "Cannot create the journal file for '\(new.displayName)': \(error.message)")
        }
        let tokenTask = Task {
            try await self.tokens.take(folder: new.parentFolderId, mimeType: new.mimeType, fileName: new.displayName)
        }
        let id = record.id
        state.withLock { state in
            var runtime = Runtime(record: record, data: file, size: 0, lastProgress: clock.now)
            runtime.writers = 1
            runtime.token = (new.parentFolderId, tokenTask)
            if let base = new.base {
                runtime.size = base.size
                runtime.prefill = Task {
                    try await base.download(file)
                    try file.truncate(to: base.size)
                }
            }
            state.records[id] = runtime
            account(&state, id)
        }
        await reach(.created, id)
        return id
    }

    // MARK: Asking

    /// A record as the filesystem shows it.
    public func entry(_ id: String) -> Entry? {
        state.withLock { state in state.records[id].map(Self.entry) }
    }

    /// The saved file of a record that is saved (finalized, or finished recently).
    public func savedFile(_ id: String) -> MediaManager.FileDescriptor? {
        state.withLock { state in
            if let runtime = state.records[id] {
                return runtime.record.state == .finalized && !runtime.record.isPending ? runtime.record.file : nil
            }
            if case .success(let file)? = state.outcomes[id] { return file }
            return nil
        }
    }

    /// Files that records saved recently replaced (they are in the trash, or about to be): a
    /// listing read before they were trashed must not show them.
    public func recentlyReplaced() -> Set<String> {
        state.withLock { state in
            state.trashedSet.union(state.records.values.filter { !$0.record.isPending }.flatMap(\.record.replacing))
        }
    }

    /// Files about to go to the trash (a rename replaces them): hidden from listings from now on.
    public func hideTrashed(_ ids: [String]) {
        state.withLock { noteTrashed(&$0, ids) }
    }

    /// Files ``hideTrashed(_:)`` hid that stay after all (the change failed).
    public func unhideTrashed(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        state.withLock { state in
            let gone = Set(ids)
            state.trashed.removeAll { gone.contains($0) }
            state.trashedSet.subtract(gone)
        }
    }

    /// Remembers files sent to the trash (the latest 4096).
    func noteTrashed(_ state: inout State, _ ids: [String]) {
        guard !ids.isEmpty else { return }
        state.trashed += ids
        state.trashedSet.formUnion(ids)
        if state.trashed.count > 4096 {
            let dropped = state.trashed.count - 4096
            state.trashedSet.subtract(state.trashed[..<dropped])
            state.trashed.removeFirst(dropped)
        }
    }

    /// Where a saved file is, after the journal moved or renamed it in the background.
    public struct Place: Sendable, Equatable {
        public let folderId: String
        public let displayName: String
    }

    /// Marks the moment a listing is read: ``placed(since:)`` then tells what the journal moved
    /// or renamed after it.
    public func placementMark() -> UInt64 {
        state.withLock { $0.placements }
    }

    /// Saved files the journal moved or renamed since `mark`, by id, where they are now: a listing
    /// read before shows them where they were.
    public func placed(since mark: UInt64) -> [String: Place] {
        state.withLock { state in
            var places: [String: Place] = [:]
            for entry in state.placed.reversed() {
                guard entry.mark > mark else { break }
                if places[entry.fileId] == nil { places[entry.fileId] = entry.place }
            }
            return places
        }
    }

    /// Remembers where the journal put a saved file (the latest 4096).
    func notePlaced(_ state: inout State, fileId: String, folderId: String, displayName: String) {
        state.placements += 1
        state.placed.append((state.placements, fileId, Place(folderId: folderId, displayName: displayName)))
        if state.placed.count > 4096 { state.placed.removeFirst(state.placed.count - 4096) }
    }

    /// Every pending record (not yet in the Media Manager), oldest first.
    public func entries() -> [Entry] {
        state.withLock { state in
            state.records.values.filter(\.record.isPending).sorted { $0.record.created < $1.record.created }.map(Self.entry)
        }
    }

    /// The bytes of a pending record, to read from (once its current content, if it is being
    /// downloaded, has arrived). The object stays readable after the record leaves the journal.
    public func readable(_ id: String) async throws(JournalError) -> DataFile {
        try await awaitPrefill(id)
        return try state.withLock { state throws(JournalError) in try openData(&state, id) }
    }

    /// The record's data file, opened if it is not.
    func openData(_ state: inout State, _ id: String) throws(JournalError) -> DataFile {
        guard var runtime = state.records[id] else { throw JournalError.unknown(id) }
        if let data = runtime.data { return data }
        do {
            let data = try DataFile(opening: dataPath(id))
            runtime.data = data
            state.records[id] = runtime
            return data
        } catch {
            throw JournalError(error.errno, "The journal file of '\(runtime.record.displayName)' cannot be opened: \(error.message)")
        }
    }

    /// The record's data file, for a transfer.
    func dataFile(_ id: String) throws(JournalError) -> DataFile {
        try state.withLock { state throws(JournalError) in try openData(&state, id) }
    }

    static func entry(_ runtime: Runtime) -> Entry {
        let record = runtime.record
        return Entry(
            id: record.id, state: record.state, parentFolderId: record.parentFolderId, displayName: record.displayName,
            mimeType: record.mimeType, size: runtime.size, replacing: record.replacing, mode: record.mode, uid: record.uid,
            gid: record.gid, modified: record.modified.map(Date.init(timeIntervalSince1970:)),
            accessed: record.accessed.map(Date.init(timeIntervalSince1970:)), created: Date(timeIntervalSince1970: record.created),
            lastError: record.lastError, labels: record.labels, expectedFileId: record.file?.id ?? record.expectedFileId)
    }

    // MARK: Bookkeeping (under the lock)

    /// Recounts what a record holds that the server has not acknowledged, and wakes writers
    /// waiting for room if that fell.
    func account(_ state: inout State, _ id: String) {
        guard var runtime = state.records[id] else { return }
        let holding = runtime.record.state == .finalized || runtime.record.state == .abandoned ? 0 : max(0, runtime.size - runtime.acknowledged)
        let previous = runtime.counted
        state.unacknowledged += holding - previous
        runtime.counted = holding
        state.records[id] = runtime
        if holding < previous {
            wakeSpaceWaiters(&state)
        }
    }

    func wakeSpaceWaiters(_ state: inout State) {
        guard !state.spaceWaiters.isEmpty, !mustWaitForRoom(state, writing: nil) else { return }
        let waiters = state.spaceWaiters
        state.spaceWaiters = [:]
        waiters.values.forEach { $0.resume() }
    }

    /// Removes a record from memory, settling its waiters.
    func forget(_ state: inout State, _ id: String, outcome: Result<MediaManager.FileDescriptor, JournalError>) {
        guard var runtime = state.records[id] else { return }
        runtime.record.state = .abandoned
        state.records[id] = runtime
        account(&state, id)
        state.records[id] = nil
        state.outcomes[id] = outcome
        state.outcomeOrder.append(id)
        if case .success = outcome { noteTrashed(&state, runtime.record.replacing) }
        if state.outcomeOrder.count > 4096 {
            state.outcomes[state.outcomeOrder.removeFirst()] = nil
        }
        for waiter in runtime.waiters.values {
            waiter.resume(with: outcome.mapError { $0 as any Error })
        }
        runtime.token?.task.cancel()
        runtime.prefill?.cancel()
    }

    func emit(_ event: Event) {
        eventSink.yield(event)
    }

    /// Lets a test hold record `id` (or, renaming, saved file `id`) at `checkpoint`.
    func reach(_ checkpoint: Checkpoint, _ id: String) async {
        guard let hook = self.checkpoint.withLock({ $0 }) else { return }
        await hook(checkpoint, id)
    }
}

/// Bytes acknowledged over the last seconds, for the rate and ETA of `mediafs status`.
struct RateMeter {
    private var samples: [(ContinuousClock.Instant, Int64)] = []
    private(set) var total: Int64 = 0

    mutating func add(_ bytes: Int64, at now: ContinuousClock.Instant) {
        total += bytes
        samples.append((now, total))
        while let first = samples.first, now - first.0 > .seconds(10) { samples.removeFirst() }
    }

    /// Bytes per second over the window.
    func rate(at now: ContinuousClock.Instant) -> Double {
        guard let first = samples.first, let last = samples.last, last.1 > first.1 else { return 0 }
        let span = now - first.0
        let seconds = Double(span.components.seconds) + Double(span.components.attoseconds) / 1e18
        return seconds > 0.2 ? Double(last.1 - first.1) / seconds : 0
    }
}
