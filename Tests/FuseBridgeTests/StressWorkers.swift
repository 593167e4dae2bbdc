import FaultInjection
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// File contents that say what they are: 4 KiB blocks, each with a header (owner, block index,
/// version) and bytes derived from it, so that a reader can check any content it sees (a block
/// is valid, or all zeros where a file was extended) without knowing what the writer did last.
enum StressContent {
    static let blockSize = 4096
    static let magic: [UInt8] = Array("MFS1".utf8)

    static func block(owner: UInt32, index: Int, version: UInt32) -> [UInt8] {
        var header = magic
        withUnsafeBytes(of: owner.littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt32(index).littleEndian) { header += $0 }
        withUnsafeBytes(of: version.littleEndian) { header += $0 }
        var generator = SeededGenerator(seed: UInt64(owner) << 40 ^ UInt64(index) << 20 ^ UInt64(version))
        var bytes = header
        bytes.reserveCapacity(blockSize + 8)
        while bytes.count < blockSize { withUnsafeBytes(of: generator.next()) { bytes += $0 } }
        return Array(bytes.prefix(blockSize))
    }

    static func blocks(owner: UInt32, from first: Int, count: Int, version: UInt32) -> [UInt8] {
        (first..<first + count).flatMap { block(owner: owner, index: $0, version: version) }
    }

    /// Why `content` cannot be what writers of `owner` wrote, or `nil` if it can.
    static func problem(_ content: [UInt8], owner: UInt32?) -> String? {
        for start in stride(from: 0, to: content.count, by: blockSize) {
            let piece = content[start..<min(content.count, start + blockSize)]
            if piece.allSatisfy({ $0 == 0 }) { continue }
            guard piece.count >= 16, Array(piece.prefix(4)) == magic else { return "block at \(start) has no header" }
            let header = Array(piece.prefix(16))
            let blockOwner = header[4..<8].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            let index = header[8..<12].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            let version = header[12..<16].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            if let owner, blockOwner != owner { return "block at \(start) belongs to \(blockOwner), not \(owner)" }
            guard Int(index) == start / blockSize else { return "block at \(start) says it is block \(index)" }
            let expected = block(owner: blockOwner, index: Int(index), version: version)
            guard piece.elementsEqual(expected.prefix(piece.count)) else { return "block at \(start) (version \(version)) is corrupt" }
        }
        return nil
    }
}

/// What the workers of a stress run share: failures, counts and the longest operation.
final class StressLedger: Sendable {
    struct Counts: Sendable {
        var operations = 0
        var failures: [String] = []
        /// Failures of the known listing race (``StressTests/listingRace``), kept apart.
        var listingRaces: [String] = []
        var longest: Duration = .zero
        var longestOperation = ""
        var byKind: [String: Int] = [:]
    }

    let counts = Mutex(Counts())
    let started = ContinuousClock.now
    /// Set when the run is over; the workers finish the operation at hand and return.
    private let over = Atomic<Bool>(false)

    var isOver: Bool { over.load(ordering: .acquiring) }

    func end() { over.store(true, ordering: .releasing) }

    func record(_ kind: String, _ description: String, took duration: Duration) {
        counts.withLock { counts in
            counts.operations += 1
            counts.byKind[kind, default: 0] += 1
            if duration > counts.longest {
                counts.longest = duration
                counts.longestOperation = description
            }
        }
    }

    /// Records a failure; `listingRace` when it is a symptom of the known listing race.
    func fail(_ message: String, listingRace: Bool = false) {
        counts.withLock { counts in
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let line = String(format: "+%07.3fs ", seconds) + message
            if listingRace {
                if counts.listingRaces.count < 50 { counts.listingRaces.append(line) }
            } else if counts.failures.count < 50 {
                counts.failures.append(line)
            }
        }
    }
}

/// One worker of a stress run: a loop of system calls on a thread of its own until the run ends.
/// Writers and renamers each own their files and keep a model of them (path → content); readers
/// and listers check what they see against what any writer could have made.
struct StressWorker: Sendable {
    enum Role: String, Sendable { case writer, renamer, reader, lister }

    let role: Role
    let number: Int
    let root: String
    let seed: UInt64
    let ledger: StressLedger
    static let directories = ["d0", "d1", "d2"]

    /// Runs until the ledger says the run is over; returns the files it owns at the end (path → content).
    func run() -> [String: [UInt8]] {
        var generator = SeededGenerator(seed: seed)
        switch role {
        case .writer: return writer(&generator)
        case .renamer: return renamer(&generator)
        case .reader: reader(&generator)
        case .lister: lister(&generator)
        }
        return [:]
    }

    var owner: UInt32 { UInt32(number + (role == .renamer ? 100 : 0)) }

    /// Runs one timed call; a result other than 0 (or one of `allowed`) is a failure.
    @discardableResult
    private func timed(_ kind: String, _ description: String, allowed: Set<Int32> = [], _ call: () -> Int32) -> Int32 {
        let clock = ContinuousClock()
        let started = clock.now
        let result = call()
        ledger.record(kind, "\(role) \(number): \(description)", took: clock.now - started)
        if result != 0 && !allowed.contains(result) {
            // A writer's call on its own file finding no file is the listing race.
            ledger.fail("\(role) \(number): \(description) failed with \(Posix.name(result))", listingRace: role == .writer && result == ENOENT)
        }
        return result
    }

    private func path(_ relative: String) -> String { root + "/" + relative }

    // MARK: Writers

    private func writer(_ generator: inout SeededGenerator) -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        var version: UInt32 = 0
        func randomPath(_ generator: inout SeededGenerator) -> String {
            "\(Self.directories.randomElement(using: &generator)!)/w\(number)-\(Int.random(in: 0..<4, using: &generator)).bin"
        }
        func blockCount(_ generator: inout SeededGenerator) -> Int {
            Int.random(in: 0..<10, using: &generator) < 8 ? Int.random(in: 0...8, using: &generator) : Int.random(in: 16...400, using: &generator)
        }
        while !ledger.isOver {
            version += 1
            let existing = files.keys.sorted().randomElement(using: &generator)
            switch Int.random(in: 0..<100, using: &generator) {
            case 0..<30:
                let target = randomPath(&generator)
                let content = StressContent.blocks(owner: owner, from: 0, count: blockCount(&generator), version: version)
                if timed("create", "create \(target) (\(content.count) B)", { Posix.openWriteClose(path(target), flags: O_CREAT | O_WRONLY | O_TRUNC, content) }) == 0 {
                    files[target] = content
                } else {
                    return files
                }
            case 30..<45:
                guard let existing, let content = files[existing] else { continue }
                let added = StressContent.blocks(owner: owner, from: content.count / StressContent.blockSize, count: Int.random(in: 1...16, using: &generator), version: version)
                if timed("append", "append \(existing) (\(added.count) B)", { Posix.openWriteClose(path(existing), flags: O_WRONLY | O_APPEND, added) }) == 0 {
                    files[existing] = content + added
                } else {
                    return files
                }
            case 45..<58:
                guard let existing, var content = files[existing], !content.isEmpty else { continue }
                let index = Int.random(in: 0..<content.count / StressContent.blockSize, using: &generator)
                let block = StressContent.block(owner: owner, index: index, version: version)
                let offset = index * StressContent.blockSize
                if timed("rewrite", "rewrite block \(index) of \(existing)", { Posix.openWriteClose(path(existing), flags: O_RDWR, block, at: offset) }) == 0 {
                    content.replaceSubrange(offset..<offset + StressContent.blockSize, with: block)
                    files[existing] = content
                } else {
                    return files
                }
            case 58..<68:
                guard let existing, var content = files[existing] else { continue }
                let blocks = Int.random(in: 0...(content.count / StressContent.blockSize + 2), using: &generator)
                let size = blocks * StressContent.blockSize
                if timed("truncate", "truncate \(existing) to \(size)", { Posix.truncate(path(existing), size) }) == 0 {
                    if size < content.count { content.removeLast(content.count - size) } else { content += [UInt8](repeating: 0, count: size - content.count) }
                    files[existing] = content
                } else {
                    return files
                }
            case 68..<78:
                guard let existing else { continue }
                if timed("unlink", "unlink \(existing)", { Posix.unlink(path(existing)) }) == 0 {
                    files[existing] = nil
                } else {
                    return files
                }
            default:
                guard let existing else { continue }
                let target = randomPath(&generator)
                if timed("rename", "rename \(existing) -> \(target)", { Posix.rename(path(existing), path(target)) }) == 0 {
                    let content = files.removeValue(forKey: existing)
                    files[target] = content
                } else {
                    return files
                }
            }
        }
        return files
    }

    // MARK: Renamers

    /// Owns `rN`, a directory it moves between the shared directories, and the files in it, which
    /// it renames onto each other and makes again.
    private func renamer(_ generator: inout SeededGenerator) -> [String: [UInt8]] {
        var parent = Self.directories[number % Self.directories.count]
        let name = "r\(number)"
        var files: [String: [UInt8]] = [:]  // by file name inside the directory
        var version: UInt32 = 0
        guard timed("mkdir", "mkdir \(parent)/\(name)", { Posix.mkdir(path("\(parent)/\(name)")) }) == 0 else { return [:] }
        while !ledger.isOver {
            version += 1
            let directory = "\(parent)/\(name)"
            switch Int.random(in: 0..<100, using: &generator) {
            case 0..<30:
                let next = Self.directories.randomElement(using: &generator)!
                guard timed("rename-directory", "rename \(directory) -> \(next)/\(name)", { Posix.rename(path(directory), path("\(next)/\(name)")) }) == 0
                else { return owned(parent, name, files) }
                parent = next
            case 30..<60:
                let file = "f\(Int.random(in: 0..<3, using: &generator)).bin"
                let content = StressContent.blocks(owner: owner, from: 0, count: Int.random(in: 0...24, using: &generator), version: version)
                guard timed("create", "create \(directory)/\(file)", { Posix.openWriteClose(path("\(directory)/\(file)"), flags: O_CREAT | O_WRONLY | O_TRUNC, content) }) == 0
                else { return owned(parent, name, files) }
                files[file] = content
            default:
                guard let from = files.keys.sorted().randomElement(using: &generator) else { continue }
                let to = "f\(Int.random(in: 0..<3, using: &generator)).bin"
                guard timed("rename", "rename \(directory)/\(from) -> \(directory)/\(to)", { Posix.rename(path("\(directory)/\(from)"), path("\(directory)/\(to)")) }) == 0
                else { return owned(parent, name, files) }
                let content = files.removeValue(forKey: from)
                files[to] = content
            }
        }
        return owned(parent, name, files)
    }

    /// A renamer's directory and files, by path.
    private func owned(_ parent: String, _ name: String, _ files: [String: [UInt8]]) -> [String: [UInt8]] {
        var owned: [String: [UInt8]] = ["\(parent)/\(name)": []]
        for (file, content) in files { owned["\(parent)/\(name)/\(file)"] = content }
        return owned
    }

    // MARK: Readers and listers

    /// Reads whole files it finds (they may move or go meanwhile: ENOENT is fine) and checks
    /// that each is something a writer made.
    private func reader(_ generator: inout SeededGenerator) {
        while !ledger.isOver {
            let directory = Self.directories.randomElement(using: &generator)!
            guard case .success(let names) = Posix.list(path(directory)) else { continue }
            var candidates = names.filter { $0.hasSuffix(".bin") }.map { "\(directory)/\($0)" }
            for sub in names where sub.hasPrefix("r") {
                if case .success(let inner) = Posix.list(path("\(directory)/\(sub)")) {
                    candidates += inner.map { "\(directory)/\(sub)/\($0)" }
                }
            }
            guard let file = candidates.randomElement(using: &generator) else { continue }
            var content: [UInt8] = []
            let result = timed("read", "read \(file)", allowed: [ENOENT]) {
                switch Posix.readAll(path(file)) {
                case .success(let bytes):
                    content = bytes
                    return 0
                case .failure(let error): return error.code
                }
            }
            if result == 0, let problem = StressContent.problem(content, owner: nil) {
                ledger.fail("reader \(number): \(file) (\(content.count) B) is not what a writer made: \(problem)")
            }
        }
    }

    /// Lists the shared directories and the renamers' directories: every name is one a worker
    /// uses (no numbered duplicates, nothing half-renamed), and each stats (or is gone: ENOENT).
    private func lister(_ generator: inout SeededGenerator) {
        while !ledger.isOver {
            for directory in Self.directories.shuffled(using: &generator) {
                var names: [String] = []
                let result = timed("list", "list \(directory)") {
                    switch Posix.list(path(directory)) {
                    case .success(let listed):
                        names = listed
                        return 0
                    case .failure(let error): return error.code
                    }
                }
                guard result == 0 else { continue }
                for name in names {
                    let valid = Self.isWriterFile(name) || (name.hasPrefix("r") && Int(name.dropFirst()) != nil)
                    if !valid {
                        // A writer's file shown twice is the listing race.
                        ledger.fail("lister \(number): unexpected name '\(name)' in \(directory)", listingRace: Self.isNumberedWriterFile(name))
                    }
                    timed("stat", "stat \(directory)/\(name)", allowed: [ENOENT]) {
                        if case .failure(let error) = Posix.status(path("\(directory)/\(name)")) { return error.code }
                        return 0
                    }
                    if name.hasPrefix("r"), case .success(let inner) = Posix.list(path("\(directory)/\(name)")) {
                        for file in inner where !(file.hasPrefix("f") && file.hasSuffix(".bin")) {
                            ledger.fail("lister \(number): unexpected name '\(file)' in \(directory)/\(name)")
                        }
                    }
                }
            }
        }
    }

    static func isWriterFile(_ name: String) -> Bool {
        guard name.hasPrefix("w"), name.hasSuffix(".bin") else { return false }
        let parts = name.dropFirst().dropLast(4).split(separator: "-")
        return parts.count == 2 && parts.allSatisfy { Int($0) != nil }
    }

    /// A writer's file name numbered as a duplicate (`w2-3 (2).bin`).
    static func isNumberedWriterFile(_ name: String) -> Bool {
        guard name.hasSuffix(").bin"), let open = name.range(of: " (", options: .backwards) else { return false }
        let number = name[open.upperBound..<name.index(name.endIndex, offsetBy: -5)]
        return Int(number) != nil && isWriterFile(String(name[..<open.lowerBound]) + ".bin")
    }
}
