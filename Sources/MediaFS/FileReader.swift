import Foundation
import Logging
import MediaManager
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Reads one open file with HTTP Range requests, through the content client.
///
/// Sequential reads are served from read-ahead parts: the first is `initialWindow` bytes, each
/// next one twice as large up to `readAhead / depth`, and `depth` parts (at most `readAhead`
/// bytes) are fetched ahead of the one
/// being read (on parallel connections). A part's bytes stay in the buffers they arrived in:
/// a read is answered with slices of them (no copy), as soon as its bytes are there, while the
/// rest of the part still arrives. A read elsewhere (a seek) fetches exactly the range asked
/// for; reads that then continue in order grow a new window from there. Reads arriving slightly
/// out of order (the kernel's parallel read-ahead) count as sequential.
///
/// Memory: a part is dropped once all its bytes were read, or when reading moved a window's
/// length past it, so at most `depth + 1` parts (`readAhead` plus one part) are held per open
/// file.
///
/// Everything is guarded by one lock, taken briefly: no actor hop, and a read whose bytes are
/// already here is answered on the calling thread (``readNow(offset:count:)``).
final class FileReader: Sendable {
    /// Where the bytes are: the file's URL, or a signed download URL for a private file.
    typealias URLProvider = @Sendable () async throws -> String

    private struct Part {
        let id: UInt64
        let start: Int64
        let length: Int64
        /// Fetched for a seek (exactly the range read), not as part of a read-ahead window.
        let exact: Bool
        /// The buffers received so far, in order, and where each ends (relative to `start`).
        var chunks: [ByteBuffer] = []
        var chunkEnds: [Int64] = []
        var received: Int64 = 0
        /// Bytes handed out; the part is dropped when it reaches `length`.
        var served: Int64 = 0
        var task: Task<Void, Never>?

        var end: Int64 { start + length }
        func contains(_ offset: Int64) -> Bool { offset >= start && offset < end }
    }

    private struct Waiter {
        let id: UInt64
        let range: Range<Int64>
        let continuation: CheckedContinuation<[ByteBuffer], any Error>
    }

    private struct State {
        /// Sorted by `start`, disjoint.
        var parts: [Part] = []
        var waiters: [Waiter] = []
        var window: Int
        /// Where the previous read ended, to tell sequential reads from seeks.
        var lastEnd: Int64?
        var nextID: UInt64 = 1
        var closed = false

        mutating func newID() -> UInt64 {
            defer { nextID += 1 }
            return nextID
        }

        func index(containing offset: Int64) -> Int? {
            parts.firstIndex { $0.contains(offset) }
        }
    }

    /// What a read found under the lock.
    private enum Plan {
        case ready([ByteBuffer])
        case waiting
        case failed(any Error)
    }

    let size: Int64
    private let name: String
    private let content: MediaManagerClient.Content
    private let urlProvider: URLProvider
    private let initialWindow: Int
    /// The largest part.
    private let maximumWindow: Int
    private let depth: Int
    private let logger: Logger
    private let state: Mutex<State>

    init(
        content: MediaManagerClient.Content, size: Int64, name: String, initialWindow: Int, readAhead: Int, depth: Int = 2,
        logger: Logger, url: @escaping URLProvider
    ) {
        self.content = content
        self.size = size
        self.name = name
        self.depth = max(1, depth)
        self.initialWindow = max(64 << 10, initialWindow)
        self.maximumWindow = max(self.initialWindow, readAhead / self.depth)
        self.logger = logger
        self.urlProvider = url
        self.state = Mutex(State(window: self.initialWindow))
    }

    deinit {
        state.withLock { state in
            for part in state.parts { part.task?.cancel() }
        }
    }

    /// Up to `count` bytes at `offset` (fewer only at the end of the file), if they are already
    /// here; `nil` if the read must wait (the fetch it needs is then started).
    func readNow(offset: Int64, count: Int) -> [ByteBuffer]? {
        guard let range = clamp(offset: offset, count: count) else { return [] }
        return state.withLock { state -> [ByteBuffer]? in
            guard !state.closed else { return nil }
            prepare(&state, range)
            guard available(state, range) else { return nil }
            return take(&state, range)
        }
    }

    /// Up to `count` bytes at `offset`, fewer only at the end of the file, as buffers to send in
    /// order. Cancelling the calling task ends the wait with EINTR (the fetch goes on for the
    /// reads that follow).
    func read(offset: Int64, count: Int) async throws -> [ByteBuffer] {
        guard let range = clamp(offset: offset, count: count) else { return [] }
        let id = state.withLock { $0.newID() }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let plan = state.withLock { state -> Plan in
                        if state.closed { return .failed(FilesystemError(EBADF, "'\(name)' is closed")) }
                        if Task.isCancelled { return .failed(CancellationError()) }
                        prepare(&state, range)
                        if available(state, range) { return .ready(take(&state, range)) }
                        state.waiters.append(Waiter(id: id, range: range, continuation: continuation))
                        return .waiting
                    }
                    switch plan {
                    case .ready(let buffers): continuation.resume(returning: buffers)
                    case .failed(let error): continuation.resume(throwing: error)
                    case .waiting: break
                    }
                }
            } onCancel: {
                let waiter = state.withLock { state -> Waiter? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        } catch is CancellationError {
            throw FilesystemError(EINTR, "Reading '\(name)' was interrupted")
        }
    }

    /// Stops fetching; later reads fail with EBADF.
    func close() async {
        let (parts, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.parts = []
                state.waiters = []
            }
            return (state.parts, state.waiters)
        }
        for part in parts { part.task?.cancel() }
        for waiter in waiters { waiter.continuation.resume(throwing: FilesystemError(EBADF, "'\(name)' was closed")) }
    }

    // MARK: Planning (under the lock)

    private func clamp(offset: Int64, count: Int) -> Range<Int64>? {
        guard offset >= 0, offset < size, count > 0 else { return nil }
        return offset..<min(size, offset + Int64(count))
    }

    /// Makes parts cover `range` (starting fetches where none is) and keeps the read-ahead
    /// going for a read in a window.
    private func prepare(_ state: inout State, _ range: Range<Int64>) {
        var position = range.lowerBound
        var seeking: Bool?
        while position < range.upperBound {
            if let index = state.index(containing: position) {
                position = state.parts[index].end
                continue
            }
            let windowEnd = state.parts.last?.end
            // Just ahead of the window: a read that overtook the one before it.
            let justAhead = windowEnd.map { position >= $0 && position - $0 < Int64(maximumWindow) } ?? false
            if seeking == nil {
                // In order, the rest of a read that began in a part, or just ahead: the window
                // goes on. Anything else is a seek.
                seeking = !(position == 0 || position == state.lastEnd || position > range.lowerBound || justAhead)
                if seeking == true {
                    // Forget the window (but what someone waits for).
                    dropIdleParts(&state)
                    state.window = initialWindow
                }
            }
            if seeking == true {
                // Exactly what was asked.
                position = addPart(&state, at: position, length: range.upperBound - position, exact: true).end
            } else if justAhead, let windowEnd {
                // Fill the gap up to this read; the loop comes back for the read itself.
                addPart(&state, at: windowEnd, length: nextWindow(&state), exact: false)
            } else {
                position = addPart(&state, at: position, length: nextWindow(&state), exact: false).end
            }
        }
        state.lastEnd = range.upperBound
        guard let last = state.index(containing: range.upperBound - 1), !state.parts[last].exact else { return }
        // Read ahead: `depth` parts after the one this read ends in.
        var cursor = state.parts[last].end
        for _ in 0..<depth where cursor < size {
            if let index = state.index(containing: cursor) {
                cursor = state.parts[index].end
            } else {
                cursor = addPart(&state, at: cursor, length: nextWindow(&state), exact: false).end
            }
        }
    }

    /// The size of the next read-ahead part: the window, which then doubles up to the maximum.
    private func nextWindow(_ state: inout State) -> Int64 {
        defer { state.window = min(state.window * 2, maximumWindow) }
        return Int64(state.window)
    }

    /// Adds a part at `start` (shortened to end at the file's end or the next part) and starts
    /// fetching it.
    @discardableResult
    private func addPart(_ state: inout State, at start: Int64, length: Int64, exact: Bool) -> Part {
        let next = state.parts.firstIndex { $0.start > start }
        let limit = next.map { state.parts[$0].start } ?? size
        var part = Part(id: state.newID(), start: start, length: max(1, min(length, limit - start)), exact: exact)
        let id = part.id
        let range = part.start..<part.end
        part.task = Task { [weak self] in await self?.fetch(id, range) }
        state.parts.insert(part, at: next ?? state.parts.endIndex)
        return part
    }

    /// Parts nobody waits for are dropped (their fetches cancelled).
    private func dropIdleParts(_ state: inout State) {
        state.parts.removeAll { part in
            let idle = !state.waiters.contains { $0.range.overlaps(part.start..<part.end) }
            if idle { part.task?.cancel() }
            return idle
        }
    }

    /// Whether every byte of `range` arrived.
    private func available(_ state: State, _ range: Range<Int64>) -> Bool {
        var position = range.lowerBound
        while position < range.upperBound {
            guard let index = state.index(containing: position) else { return false }
            let part = state.parts[index]
            let end = min(range.upperBound, part.end)
            guard part.start + part.received >= end else { return false }
            position = end
        }
        return true
    }

    /// The bytes of `range`, which all arrived, counted as served. Parts read completely, and
    /// parts a window's length behind, go (unless someone waits for them).
    private func take(_ state: inout State, _ range: Range<Int64>) -> [ByteBuffer] {
        var buffers: [ByteBuffer] = []
        // Chunks are usually 64 KiB (a socket read): reserve once.
        buffers.reserveCapacity(range.count / (64 << 10) + 3)
        var position = range.lowerBound
        while position < range.upperBound, let index = state.index(containing: position) {
            let end = min(range.upperBound, state.parts[index].end)
            Self.slices(of: state.parts[index], from: position, to: end, into: &buffers)
            state.parts[index].served += end - position
            position = end
        }
        let behind = range.lowerBound - Int64(maximumWindow)
        let waiters = state.waiters
        state.parts.removeAll { part in
            let done = (part.served >= part.length && part.received == part.length) || part.end <= behind
            guard done, !waiters.contains(where: { $0.range.overlaps(part.start..<part.end) }) else { return false }
            part.task?.cancel()
            return true
        }
        return buffers
    }

    /// Slices (no copy) of a part's buffers covering `from..<to`.
    private static func slices(of part: Part, from: Int64, to: Int64, into buffers: inout [ByteBuffer]) {
        let relativeStart = from - part.start
        let relativeEnd = to - part.start
        // The first chunk ending after `relativeStart`.
        var low = 0
        var high = part.chunkEnds.count - 1
        while low < high {
            let middle = (low + high) / 2
            if part.chunkEnds[middle] > relativeStart { high = middle } else { low = middle + 1 }
        }
        var index = low
        var position = relativeStart
        while position < relativeEnd {
            let chunk = part.chunks[index]
            let chunkStart = part.chunkEnds[index] - Int64(chunk.readableBytes)
            let skip = Int(position - chunkStart)
            let take = Int(min(relativeEnd, part.chunkEnds[index]) - position)
            buffers.append(chunk.getSlice(at: chunk.readerIndex + skip, length: take)!)
            position += Int64(take)
            index += 1
        }
    }

    // MARK: Fetching

    private func fetch(_ id: UInt64, _ range: Range<Int64>) async {
        do {
            let url = try await urlProvider()
            try await content.fetch(url: url, range: range) { [weak self] buffer in
                self?.received(id, buffer)
            }
        } catch {
            failed(id, range, error)
        }
    }

    /// A chunk of part `id` arrived (on an event loop): store it and answer the reads it completes.
    private func received(_ id: UInt64, _ buffer: ByteBuffer) {
        let ready = state.withLock { state -> [(Waiter, [ByteBuffer])] in
            guard let part = state.parts.firstIndex(where: { $0.id == id }) else { return [] }
            state.parts[part].received += Int64(buffer.readableBytes)
            state.parts[part].chunks.append(buffer)
            state.parts[part].chunkEnds.append(state.parts[part].received)
            guard !state.waiters.isEmpty else { return [] }
            var ready: [(Waiter, [ByteBuffer])] = []
            var index = 0
            while index < state.waiters.count {
                guard available(state, state.waiters[index].range) else {
                    index += 1
                    continue
                }
                let waiter = state.waiters.remove(at: index)
                ready.append((waiter, take(&state, waiter.range)))
            }
            return ready
        }
        for (waiter, buffers) in ready { waiter.continuation.resume(returning: buffers) }
    }

    /// Part `id` failed: the reads waiting for it fail, and the part goes (a later read fetches
    /// again).
    private func failed(_ id: UInt64, _ range: Range<Int64>, _ error: any Error) {
        let failure = Self.filesystemError(error, name: name, range: range)
        let waiters = state.withLock { state -> [Waiter] in
            guard let index = state.parts.firstIndex(where: { $0.id == id }) else { return [] }
            state.parts.remove(at: index)
            var failing: [Waiter] = []
            state.waiters.removeAll { waiter in
                let hit = waiter.range.overlaps(range)
                if hit { failing.append(waiter) }
                return hit
            }
            return failing
        }
        guard !waiters.isEmpty else { return }
        logger.error("\(failure)")
        for waiter in waiters { waiter.continuation.resume(throwing: failure) }
    }

    static func filesystemError(_ error: any Error, name: String, range: Range<Int64>) -> FilesystemError {
        if let error = error as? FilesystemError { return error }
        return FilesystemError.remote(error, "Reading '\(name)' (bytes \(range.lowerBound)-\(range.upperBound - 1))")
    }
}
