import Crypto
import Foundation
import Journal
import MediaManager
import MediaServerTesting
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs operation sequences against a real mount of a fresh server and against
/// ``FilesystemModel``, comparing after each step: the operation's result (errno included), then
/// the whole tree as the mount shows it (names, types, modes, sizes, contents); at each `sync`
/// and at the end, the Media Manager's view through the API. Shrinks a failing sequence by delta
/// debugging, each candidate replayed on a fresh mount.
struct ModelRunner: Sendable {
    /// Close mode: `--write-back` or the default (close waits for the upload).
    let writeBack: Bool
    let umask: UInt32
    /// Threads that list and stat the whole tree over and over while the steps run (they change
    /// nothing, so the model stays right; they make listings refresh in the middle of changes).
    var listers = 0

    /// The first step whose result or tree differs from the model's.
    struct Failure: Error, Sendable, CustomStringConvertible {
        let step: Int
        let operation: ModelOperation
        let detail: String
        var description: String { "step \(step) (\(operation)): \(detail)" }
    }

    func configureJournal(_ configuration: inout Journal.Configuration) {
        configuration.writeBack = writeBack
        // Small chunks: files of a few hundred kilobytes stream while written, and writes behind
        // what was sent restart their uploads.
        configuration.streamChunk = 64 << 10
    }

    /// Runs `operations`; returns the first mismatch, or `nil` when every step matched.
    func run(_ operations: [ModelOperation]) async throws -> Failure? {
        try await TestMediaServer.with { server in
            var model = FilesystemModel(umask: umask)
            var index = 0
            while true {
                let (next, failure, updated) = try await MountFixture.mounted(server: server, journal: configureJournal) {
                    mount -> (Int, Failure?, FilesystemModel) in
                    let stop = StopFlag()
                    defer { stop.set() }
                    let root = mount.mountpoint
                    let background = (0..<listers).map { _ in Task { await Posix.offPool { Self.listUntil(stop, root: root) } } }
                    let outcome = try await steps(operations, from: index, model, mount)
                    stop.set()
                    for lister in background { await lister.value }
                    return outcome
                }
                if let failure { return failure }
                if next >= operations.count { return nil }
                (index, model) = (next, updated)
            }
        }
    }

    /// The steps from `index` up to the next remount (or the end, or the first failure) on one
    /// mount; returns where it stopped, the failure, and the model.
    private func steps(_ operations: [ModelOperation], from index: Int, _ model: FilesystemModel, _ mount: MountFixture) async throws
        -> (Int, Failure?, FilesystemModel)
    {
        var current = model
        var position = index
        if position > 0, let difference = await Self.compareTree(mount.mountpoint, current) {
            return (position, Failure(step: position - 1, operation: .remount, detail: difference), current)
        }
        while position < operations.count {
            let operation = operations[position]
            position += 1
            if operation == .remount { return (position, nil, current) }
            if let failure = try await step(position - 1, operation, &current, mount) { return (position, failure, current) }
        }
        return (position, nil, current)
    }

    /// One operation on the mount and on the model, then the comparisons.
    private func step(_ index: Int, _ operation: ModelOperation, _ model: inout FilesystemModel, _ mount: MountFixture) async throws
        -> Failure?
    {
        let expected = model.apply(operation)
        let actual = await Self.perform(operation, root: mount.mountpoint)
        guard expected.matches(actual) else {
            return Failure(step: index, operation: operation, detail: "the mount returned \(actual), the model \(expected)")
        }
        if operation == .sync {
            if case .failure(let error) = await Posix.offPool({ Posix.xattr(mount.mountpoint, "user.mediafs.sync") }) {
                return Failure(step: index, operation: operation, detail: "user.mediafs.sync failed: \(error)")
            }
            if let difference = try await Self.compareRemote(mount.client, model) {
                return Failure(step: index, operation: operation, detail: "the Media Manager differs: \(difference)")
            }
        }
        if let difference = await Self.compareTree(mount.mountpoint, model) {
            // Where the difference is: the Media Manager's view tells a wrong change from a stale cache.
            let remote = (try? await Self.compareRemote(mount.client, model)) ?? "the same as the model"
            return Failure(step: index, operation: operation, detail: "the tree differs: \(difference) [the Media Manager, not synced: \(remote)]")
        }
        return nil
    }

    /// Lists and stats everything under `root` until `stop` is set; errors are expected (names
    /// come and go) and ignored.
    static func listUntil(_ stop: StopFlag, root: String) {
        while !stop.isSet {
            var pending = [root]
            while let directory = pending.popLast(), !stop.isSet {
                guard case .success(let names) = Posix.list(directory) else { continue }
                for name in names {
                    if case .success(let st) = Posix.status(directory + "/" + name), st.st_mode & S_IFMT == S_IFDIR {
                        pending.append(directory + "/" + name)
                    }
                }
            }
        }
    }

    /// The operation through system calls on the mount.
    static func perform(_ operation: ModelOperation, root: String) async -> ModelOutcome {
        return await Posix.offPool {
            @Sendable func at(_ path: String) -> String { path.isEmpty ? root : root + "/" + path }
            @Sendable func code(_ errno: Int32) -> ModelOutcome { errno == 0 ? .ok : .failed(errno) }
            switch operation {
            case .create(let path, let payload):
                return code(Posix.openWriteClose(at(path), flags: O_CREAT | O_WRONLY | O_TRUNC, payload.bytes))
            case .write(let path, let offset, let payload):
                return code(Posix.openWriteClose(at(path), flags: O_RDWR, payload.bytes, at: offset))
            case .append(let path, let payload):
                return code(Posix.openWriteClose(at(path), flags: O_WRONLY | O_APPEND, payload.bytes))
            case .truncate(let path, let size): return code(Posix.truncate(at(path), size))
            case .rename(let from, let to): return code(Posix.rename(at(from), at(to)))
            case .unlink(let path): return code(Posix.unlink(at(path)))
            case .mkdir(let path): return code(Posix.mkdir(at(path)))
            case .rmdir(let path): return code(Posix.rmdir(at(path)))
            case .chmod(let path, let mode): return code(Posix.chmod(at(path), mode_t(mode)))
            case .readdir(let path):
                switch Posix.list(at(path)) {
                case .success(let names): return .listed(names)
                case .failure(let error): return .failed(error.code)
                }
            case .read(let path):
                switch Posix.readAll(at(path)) {
                case .success(let bytes): return .read(bytes)
                case .failure(let error): return .failed(error.code)
                }
            case .remount, .sync:
                return .ok
            }
        }
    }

    /// The tree under `root` as the mount shows it, by relative path.
    static func snapshot(_ root: String) async -> Result<[String: FilesystemModel.Node], Failure> {
        await Posix.offPool {
            var nodes: [String: FilesystemModel.Node] = [:]
            var pending = [""]
            var problems: [String] = []
            while let directory = pending.popLast() {
                let names: [String]
                switch Posix.list(directory.isEmpty ? root : root + "/" + directory) {
                case .success(let listed): names = listed
                case .failure(let error):
                    problems.append("listing '\(directory)': \(error)")
                    continue
                }
                for name in names {
                    let path = directory.isEmpty ? name : directory + "/" + name
                    let full = root + "/" + path
                    guard case .success(let st) = Posix.status(full) else {
                        problems.append("stat '\(path)' failed though it is listed")
                        continue
                    }
                    let mode = UInt32(st.st_mode) & 0o7777
                    if st.st_mode & S_IFMT == S_IFDIR {
                        nodes[path] = .directory(mode: mode)
                        pending.append(path)
                        continue
                    }
                    switch Posix.readAll(full) {
                    case .success(let content):
                        if content.count != Int(st.st_size) {
                            problems.append("'\(path)': stat says \(st.st_size) bytes, reading gives \(content.count)")
                        }
                        nodes[path] = .file(content, mode: mode)
                    case .failure(let error):
                        problems.append("reading '\(path)': \(error)")
                    }
                }
            }
            if !problems.isEmpty {
                return .failure(Failure(step: -1, operation: .sync, detail: problems.joined(separator: "; ")))
            }
            return .success(nodes)
        }
    }

    /// What differs between the mount's tree and the model (modes included, or not), or `nil`.
    static func compareTree(_ root: String, _ model: FilesystemModel, modes: Bool = true) async -> String? {
        var observed: [String: FilesystemModel.Node]
        switch await snapshot(root) {
        case .success(let nodes): observed = nodes
        case .failure(let failure): return failure.detail
        }
        var expected = model.nodes
        if !modes {
            func withoutMode(_ node: FilesystemModel.Node) -> FilesystemModel.Node {
                switch node {
                case .file(let content, _): .file(content, mode: 0)
                case .directory: .directory(mode: 0)
                }
            }
            observed = observed.mapValues(withoutMode)
            expected = expected.mapValues(withoutMode)
        }
        var differences: [String] = []
        for path in Set(observed.keys).union(expected.keys).sorted() {
            switch (expected[path], observed[path]) {
            case (nil, let found?): differences.append("'\(path)' is there (\(describe(found))) but should not be")
            case (let expected?, nil): differences.append("'\(path)' (\(describe(expected))) is missing")
            case (let expected?, let found?) where expected != found:
                differences.append("'\(path)' is \(describe(found)), the model has \(describe(expected))\(firstDifference(expected, found))")
            default: break
            }
        }
        return differences.isEmpty ? nil : differences.joined(separator: "; ")
    }

    static func describe(_ node: FilesystemModel.Node) -> String {
        switch node {
        case .directory(let mode): "directory \(String(mode, radix: 8))"
        case .file(let content, let mode): "file \(String(mode, radix: 8)) \(content.count) B md5 \(md5(content).prefix(8))"
        }
    }

    static func firstDifference(_ a: FilesystemModel.Node, _ b: FilesystemModel.Node) -> String {
        guard case .file(let x, _) = a, case .file(let y, _) = b, x != y else { return "" }
        let offset = zip(x, y).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(x.count, y.count)
        return " (contents differ from byte \(offset))"
    }

    static func md5(_ bytes: [UInt8]) -> String {
        Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// What differs between the Media Manager's folders and files and the model, or `nil`.
    static func compareRemote(_ client: MediaManagerClient, _ model: FilesystemModel) async throws -> String? {
        var differences: [String] = []
        var remote: [String: (size: Int64, hash: String)?] = [:]
        var pending: [(String, String)] = [("", FolderID.mediaRoot)]
        while let (path, id) = pending.popLast() {
            let folders = try await client.folders.list(parentFolderId: id, limit: 1000).folders
            let files = try await client.files.list(parentFolderId: id, limit: 1000).files
            for folder in folders {
                let child = path.isEmpty ? folder.displayName : path + "/" + folder.displayName
                if remote.updateValue(nil, forKey: child) != nil { differences.append("'\(child)' is there twice") }
                pending.append((child, folder.id))
            }
            for file in files {
                let child = path.isEmpty ? file.displayName : path + "/" + file.displayName
                if remote.updateValue((file.sizeInBytes, file.hash), forKey: child) != nil { differences.append("'\(child)' is there twice") }
            }
        }
        for path in Set(remote.keys).union(model.nodes.keys).sorted() {
            switch (model.nodes[path], remote[path]) {
            case (nil, _?): differences.append("'\(path)' is in the Media Manager but should not be")
            case (_?, nil): differences.append("'\(path)' is not in the Media Manager")
            case (.directory?, let found??): differences.append("'\(path)' is a file (\(found.size) B), the model has a directory")
            case (.file?, .some(.none)): differences.append("'\(path)' is a folder, the model has a file")
            case (.file(let content, _)?, let found??):
                if found.size != content.count || found.hash.lowercased() != md5(content) {
                    differences.append("'\(path)' has \(found.size) B md5 \(found.hash.prefix(8)), the model \(content.count) B md5 \(md5(content).prefix(8))")
                }
            default: break
            }
        }
        return differences.isEmpty ? nil : differences.joined(separator: "; ")
    }

    // MARK: Shrinking

    /// Delta debugging over the operation list: drops chunks (halves, quarters, … single
    /// operations) while some mismatch remains, replaying each candidate on a fresh mount, within
    /// `budget`. Returns the smallest failing sequence found and its failure.
    func shrink(_ operations: [ModelOperation], _ failure: Failure, budget: Duration) async throws -> ([ModelOperation], Failure, Int) {
        let clock = ContinuousClock()
        let deadline = clock.now + budget
        var current = Array(operations.prefix(failure.step + 1))
        var currentFailure = failure
        var granularity = 2
        var replays = 0
        while current.count >= 2 && clock.now < deadline {
            let chunk = (current.count + granularity - 1) / granularity
            var reduced = false
            for start in stride(from: 0, to: current.count, by: chunk) where clock.now < deadline {
                let candidate = Array(current[..<start] + current[min(current.count, start + chunk)...])
                guard !candidate.isEmpty else { continue }
                replays += 1
                if let found = try await run(candidate) {
                    current = Array(candidate.prefix(found.step + 1))
                    currentFailure = found
                    granularity = max(granularity - 1, 2)
                    reduced = true
                    break
                }
            }
            if !reduced {
                if granularity >= current.count { break }
                granularity = min(granularity * 2, current.count)
            }
        }
        return (current, currentFailure, replays)
    }
}

/// A flag that background threads poll to stop.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}
