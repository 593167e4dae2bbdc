import FaultInjection
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A simple in-memory POSIX tree: what a local filesystem does for the operations of the
/// model-based tests, errno included. Paths are relative to the mount (`a/b.txt`).
struct FilesystemModel: Sendable {
    enum Node: Sendable, Equatable {
        case file([UInt8], mode: UInt32)
        case directory(mode: UInt32)
    }

    /// Every node but the root, by path.
    private(set) var nodes: [String: Node] = [:]
    /// Modes of new files and directories (0644 and 0755 less the umask).
    let fileMode: UInt32
    let directoryMode: UInt32

    init(umask: UInt32) {
        fileMode = 0o644 & ~umask
        directoryMode = 0o755 & ~umask
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    func isDirectory(_ path: String) -> Bool {
        if path.isEmpty { return true }
        if case .directory? = nodes[path] { return true }
        return false
    }

    func isFile(_ path: String) -> Bool {
        if case .file? = nodes[path] { return true }
        return false
    }

    var files: [String] { nodes.keys.filter(isFile).sorted() }
    var directories: [String] { nodes.keys.filter(isDirectory).sorted() }

    /// The names directly in `directory`, sorted.
    func children(of directory: String) -> [String] {
        let prefix = directory.isEmpty ? "" : directory + "/"
        return nodes.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    /// Sets a file's content (for a model built from what concurrent workers made).
    mutating func setContent(_ path: String, _ content: [UInt8]) {
        nodes[path] = .file(content, mode: fileMode)
    }

    /// ENOENT or ENOTDIR when a component above `path` is missing or not a directory.
    func resolveParent(_ path: String) -> Int32? {
        var prefix = ""
        for part in path.split(separator: "/").dropLast() {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
            switch nodes[prefix] {
            case nil: return ENOENT
            case .file?: return ENOTDIR
            case .directory?: continue
            }
        }
        return nil
    }

    /// What an operation returns on a local filesystem; applies it when it succeeds.
    mutating func apply(_ operation: ModelOperation) -> ModelOutcome {
        switch operation {
        case .create(let path, let payload):
            if let error = resolveParent(path) { return .failed(error) }
            switch nodes[path] {
            case .directory?: return .failed(EISDIR)
            case .file(_, let mode)?: nodes[path] = .file(payload.bytes, mode: mode)
            case nil: nodes[path] = .file(payload.bytes, mode: fileMode)
            }
            return .ok
        case .write(let path, let offset, let payload):
            return change(path) { content in
                let bytes = payload.bytes
                guard !bytes.isEmpty else { return }  // a write of nothing does not extend
                if content.count < offset + bytes.count { content += [UInt8](repeating: 0, count: offset + bytes.count - content.count) }
                content.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            }
        case .append(let path, let payload):
            return change(path) { $0 += payload.bytes }
        case .truncate(let path, let size):
            return change(path) { content in
                if size < content.count { content.removeLast(content.count - size) } else { content += [UInt8](repeating: 0, count: size - content.count) }
            }
        case .rename(let from, let to):
            return rename(from, to)
        case .unlink(let path):
            if let error = resolveParent(path) { return .failed(error) }
            switch nodes[path] {
            case nil: return .failed(ENOENT)
            case .directory?: return .failed(EISDIR)
            case .file?:
                nodes[path] = nil
                return .ok
            }
        case .mkdir(let path):
            if let error = resolveParent(path) { return .failed(error) }
            if nodes[path] != nil { return .failed(EEXIST) }
            nodes[path] = .directory(mode: directoryMode)
            return .ok
        case .rmdir(let path):
            if let error = resolveParent(path) { return .failed(error) }
            switch nodes[path] {
            case nil: return .failed(ENOENT)
            case .file?: return .failed(ENOTDIR)
            case .directory?:
                if !children(of: path).isEmpty { return .failed(ENOTEMPTY) }
                nodes[path] = nil
                return .ok
            }
        case .chmod(let path, let mode):
            if let error = resolveParent(path) { return .failed(error) }
            switch nodes[path] {
            case nil: return .failed(ENOENT)
            case .file(let content, _)?: nodes[path] = .file(content, mode: mode)
            case .directory?: nodes[path] = .directory(mode: mode)
            }
            return .ok
        case .readdir(let path):
            if let error = resolveParent(path) { return .failed(error) }
            if !path.isEmpty {
                switch nodes[path] {
                case nil: return .failed(ENOENT)
                case .file?: return .failed(ENOTDIR)
                case .directory?: break
                }
            }
            return .listed(children(of: path))
        case .read(let path):
            if let error = resolveParent(path) { return .failed(error) }
            switch nodes[path] {
            case nil: return .failed(ENOENT)
            case .directory?: return .failed(EISDIR)
            case .file(let content, _)?: return .read(content)
            }
        case .remount, .sync:
            return .ok
        }
    }

    /// Opens an existing file to change it (`O_RDWR`, `O_APPEND` or `truncate(2)`).
    private mutating func change(_ path: String, _ body: (inout [UInt8]) -> Void) -> ModelOutcome {
        if let error = resolveParent(path) { return .failed(error) }
        switch nodes[path] {
        case nil: return .failed(ENOENT)
        case .directory?: return .failed(EISDIR)
        case .file(var content, let mode)?:
            body(&content)
            nodes[path] = .file(content, mode: mode)
            return .ok
        }
    }

    /// rename(2) as Linux does it, in the order it checks.
    private mutating func rename(_ from: String, _ to: String) -> ModelOutcome {
        // Both parents are resolved before the source is looked up.
        if let error = resolveParent(from) { return .failed(error) }
        if let error = resolveParent(to) { return .failed(error) }
        guard let source = nodes[from] else { return .failed(ENOENT) }
        if from == to { return .ok }
        let sourceIsDirectory = if case .directory = source { true } else { false }
        // Into itself: the target's parent is the source or below it.
        if sourceIsDirectory && to.hasPrefix(from + "/") { return .failed(EINVAL) }
        // Onto one of its own ancestors: that directory holds the source, so it is not empty.
        if from.hasPrefix(to + "/") { return .failed(ENOTEMPTY) }
        if let target = nodes[to] {
            switch (sourceIsDirectory, target) {
            case (false, .directory): return .failed(EISDIR)
            case (true, .file): return .failed(ENOTDIR)
            case (true, .directory):
                if !children(of: to).isEmpty { return .failed(ENOTEMPTY) }
            case (false, .file): break
            }
        }
        var moved: [String: Node] = [:]
        for (path, node) in nodes where path == from || path.hasPrefix(from + "/") {
            moved[to + path.dropFirst(from.count)] = node
            nodes[path] = nil
        }
        nodes[to] = nil
        nodes.merge(moved) { $1 }
        return .ok
    }
}

/// Deterministic bytes: a length and the seed that makes them.
struct Payload: Sendable, Equatable, CustomStringConvertible {
    let length: Int
    let seed: UInt64

    var bytes: [UInt8] {
        var generator = SeededGenerator(seed: seed)
        var bytes = [UInt8]()
        bytes.reserveCapacity(length + 8)
        while bytes.count < length {
            withUnsafeBytes(of: generator.next()) { bytes += $0 }
        }
        return Array(bytes.prefix(length))
    }

    var description: String { "\(length) B#\(String(seed, radix: 16))" }
}

/// One step of a model-based run.
enum ModelOperation: Sendable, Equatable, CustomStringConvertible {
    /// open(O_CREAT|O_WRONLY|O_TRUNC), write, close.
    case create(String, Payload)
    /// open(O_RDWR), pwrite at `offset`, close.
    case write(String, offset: Int, Payload)
    /// open(O_WRONLY|O_APPEND), write, close.
    case append(String, Payload)
    /// truncate(2) of a file that is not open.
    case truncate(String, Int)
    case rename(String, String)
    case unlink(String)
    case mkdir(String)
    case rmdir(String)
    case chmod(String, UInt32)
    case readdir(String)
    case read(String)
    /// Unmount and mount again (the same server, journal and attribute store).
    case remount
    /// Wait until the Media Manager has every file, and compare its view with the model.
    case sync

    var description: String {
        switch self {
        case .create(let path, let payload): "create \(path) \(payload)"
        case .write(let path, let offset, let payload): "write \(path) @\(offset) \(payload)"
        case .append(let path, let payload): "append \(path) \(payload)"
        case .truncate(let path, let size): "truncate \(path) \(size)"
        case .rename(let from, let to): "rename \(from) -> \(to)"
        case .unlink(let path): "unlink \(path)"
        case .mkdir(let path): "mkdir \(path)"
        case .rmdir(let path): "rmdir \(path)"
        case .chmod(let path, let mode): "chmod \(path) \(String(mode, radix: 8))"
        case .readdir(let path): "readdir \(path.isEmpty ? "." : path)"
        case .read(let path): "read \(path)"
        case .remount: "remount"
        case .sync: "sync"
        }
    }
}

/// What an operation returned.
enum ModelOutcome: Sendable, Equatable, CustomStringConvertible {
    case ok
    case failed(Int32)
    case listed([String])
    case read([UInt8])

    var description: String {
        switch self {
        case .ok: "OK"
        case .failed(let code): Posix.name(code)
        case .listed(let names): "\(names)"
        case .read(let bytes): "\(bytes.count) bytes"
        }
    }

    /// Equal, counting errnos POSIX allows for the same case as one (a non-empty directory as
    /// a rename target: ENOTEMPTY or EEXIST).
    func matches(_ other: ModelOutcome) -> Bool {
        switch (self, other) {
        case (.failed(let a), .failed(let b)): Self.errnoClass(a) == Self.errnoClass(b)
        default: self == other
        }
    }

    private static func errnoClass(_ code: Int32) -> Int32 { code == EEXIST ? ENOTEMPTY : code }
}

/// Random operation sequences over a small name space, so that names collide often (renames onto
/// existing names, creates over files, mkdir over anything).
struct OperationGenerator {
    static let names = ["a", "b", "c", "notes.txt", "clip.mp4", "pic.jpg", "data.bin"]
    static let modes: [UInt32] = [0o600, 0o640, 0o644, 0o700, 0o755, 0o777, 0o444]

    var generator: SeededGenerator
    var model: FilesystemModel
    let remounts: Bool

    init(seed: UInt64, umask: UInt32, remounts: Bool = true) {
        generator = SeededGenerator(seed: seed)
        model = FilesystemModel(umask: umask)
        self.remounts = remounts
    }

    /// `steps` operations, each drawn against the model's state after the ones before.
    mutating func operations(_ steps: Int) -> [ModelOperation] {
        (0..<steps).map { _ in
            let operation = next()
            _ = model.apply(operation)
            return operation
        }
    }

    private mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &generator) < percent }

    private mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items.randomElement(using: &generator) }

    /// A path that may or may not exist: a pool name in an existing directory, or (sometimes)
    /// below a missing one or a file.
    private mutating func freshPath() -> String {
        let parent: String
        if chance(88) {
            parent = pick([""] + model.directories)!
        } else {
            parent = pick(model.files + [Self.names.randomElement(using: &generator)!])!
        }
        let name = pick(Self.names)!
        return parent.isEmpty ? name : parent + "/" + name
    }

    private mutating func existingFile() -> String { chance(90) ? (pick(model.files) ?? freshPath()) : freshPath() }
    private mutating func existingDirectory() -> String { chance(90) ? (pick(model.directories) ?? freshPath()) : freshPath() }
    private mutating func existingAnything() -> String {
        chance(90) ? (pick(model.files + model.directories) ?? freshPath()) : freshPath()
    }

    private mutating func payload() -> Payload {
        let roll = Int.random(in: 0..<100, using: &generator)
        let length =
            switch roll {
            case 0..<8: 0
            case 8..<60: Int.random(in: 1...4000, using: &generator)
            case 60..<88: Int.random(in: 4000...200_000, using: &generator)
            default: Int.random(in: 200_000...1_500_000, using: &generator)
            }
        return Payload(length: length, seed: generator.next())
    }

    private mutating func size(of path: String) -> Int {
        if case .file(let content, _)? = model.nodes[path] { return content.count }
        return 0
    }

    mutating func next() -> ModelOperation {
        let roll = Int.random(in: 0..<100, using: &generator)
        switch roll {
        case 0..<18:
            return .create(chance(75) ? freshPath() : existingFile(), payload())
        case 18..<28:
            let path = existingFile()
            let size = size(of: path)
            let offset = chance(80) ? Int.random(in: 0...size, using: &generator) : size + Int.random(in: 1...100_000, using: &generator)
            return .write(path, offset: offset, payload())
        case 28..<36:
            return .append(existingFile(), payload())
        case 36..<43:
            let path = existingFile()
            let size = size(of: path)
            return .truncate(path, chance(70) ? Int.random(in: 0...size, using: &generator) : size + Int.random(in: 1...300_000, using: &generator))
        case 43..<57:
            let from = existingAnything()
            let to = chance(40) ? existingAnything() : freshPath()
            return .rename(from, to)
        case 57..<63:
            return .unlink(existingFile())
        case 63..<72:
            return .mkdir(chance(85) ? freshPath() : existingAnything())
        case 72..<77:
            return .rmdir(existingDirectory())
        case 77..<82:
            return .chmod(existingAnything(), pick(Self.modes)!)
        case 82..<87:
            return .readdir(chance(30) ? "" : existingDirectory())
        case 87..<96:
            return .read(existingFile())
        case 96..<98:
            return remounts ? .remount : .sync
        default:
            return .sync
        }
    }
}
