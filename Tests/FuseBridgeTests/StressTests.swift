import FaultInjection
import Foundation
import Journal
import Logging
import MediaFS
import MediaManager
import MediaServer
import NIOCore
import MediaServerTesting
import Synchronization
import Testing

/// Writers, readers, renamers and listers in one tree for a while, with the upload host behind a
/// fault proxy (cuts inside PATCH bodies, short outages). At the end the tree, the Media Manager's
/// view and the workers' models agree, no operation took longer than a bound, and the process's
/// resident memory stayed bounded (the mount runs in this process).
///
/// `MEDIAFS_STRESS_SECONDS` sets the duration of each close mode's run (default 30: a minute in
/// all); `MEDIAFS_STRESS_SEED` replays a seed (the workers' choices and the proxy's cuts; the
/// interleaving itself is up to the scheduler).
@Suite("Stress: concurrent writers, readers, renamers and listers under upload faults", .serialized)
struct StressTests {
    static let environment = ProcessInfo.processInfo.environment
    static let seconds = environment["MEDIAFS_STRESS_SECONDS"].flatMap(Int.init) ?? 30
    /// No operation may take longer (outages last at most 1.5 s; a close waits for its upload,
    /// retrying with backoff; the whole suite shares two cores with this run).
    static let operationBound: Duration = .seconds(60)
    /// The open defect the runs can still meet (in either close mode, rarely since two of its
    /// causes were fixed): for a fraction of a second around a save, a listing misses a writer's
    /// just-saved file (a call on it gives ENOENT) or shows it twice (`name (2)`). Only those two
    /// symptoms are reported as known; every other failure, and the final trees, fail the run.
    static let listingRace: Comment =
        "a listing applied around a save misses the saved file for a moment (ENOENT) or shows it twice (name (2))"

    /// Creates, reads and listings a run makes at least (it goes on past its time until then).
    static let minimumOperations = 10
    /// How much the resident set may grow over the run.
    static let memoryBound = 512 << 20

    @Test("writers, readers, renamers and listers under faults agree with their models, within bounds", arguments: [false, true])
    func mixedLoad(writeBack: Bool) async throws {
        let seed = Self.environment["MEDIAFS_STRESS_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let mode = writeBack ? "--write-back" : "default close"
        print("stress run (\(mode)): seed \(seed), \(Self.seconds) s; replay with MEDIAFS_STRESS_SEED=\(seed)")
        try await WriteTests.withProxy(seed: seed) { proxy, port in
            try await MountFixture.with(
                journal: { $0.writeBack = writeBack; $0.streamChunk = 64 << 10; $0.maximumPatch = 256 << 10 },
                apiURL: "http://127.0.0.1:\(port)",
                server: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }
            ) { mount in
                try await run(mount, proxy, seed: seed, mode: mode)
            }
        }
    }

    private func run(_ mount: MountFixture, _ proxy: FaultProxy, seed: UInt64, mode: String) async throws {
        for directory in StressWorker.directories {
            #expect(await Posix.offPool { Posix.mkdir(mount.mountpoint + "/" + directory) } == 0)
        }
        let ledger = StressLedger()
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(Self.seconds)
        let baseline = Posix.residentBytes
        let peak = Atomic<Int>(baseline)
        let sampler = Task {
            while !Task.isCancelled {
                let resident = Posix.residentBytes
                _ = peak.max(resident, ordering: .relaxed)
                // The sampling period, not a synchronisation.
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { sampler.cancel() }
        try await proxy.setCutPolicy(.insidePatchBodies(bytes: 500...200_000, probability: 0.25))
        let faults = Task {
            var generator = SeededGenerator(seed: seed ^ 0xFA17)
            var outages = 0
            while !ledger.isOver && !Task.isCancelled {
                // The fault schedule: quiet for 2–5 s, then an outage of 0.3–1.5 s.
                try? await Task.sleep(for: .milliseconds(Int.random(in: 2000...5000, using: &generator)))
                try? await proxy.outage(for: .milliseconds(Int.random(in: 300...1500, using: &generator)))
                outages += 1
            }
            return outages
        }
        var workers: [StressWorker] = []
        var generator = SeededGenerator(seed: seed)
        for (role, count) in [(StressWorker.Role.writer, 3), (.renamer, 2), (.reader, 2), (.lister, 2)] {
            for number in 0..<count {
                workers.append(StressWorker(role: role, number: number, root: mount.mountpoint, seed: generator.next(), ledger: ledger))
            }
        }
        // The run lasts `seconds`, and longer on a slow or busy machine until it did enough of
        // what it is there for (files created, read and listed; PATCH bodies cut), up to three
        // times as long.
        let referee = Task {
            // The run's length: a measured duration, not a synchronisation.
            try? await Task.sleep(until: deadline)
            while clock.now < deadline + .seconds(2 * Self.seconds) {
                let kinds = ledger.counts.withLock { $0.byKind }
                let cuts = (try? await proxy.statistics().cuts) ?? 0
                if kinds["create", default: 0] >= Self.minimumOperations && kinds["read", default: 0] >= Self.minimumOperations
                    && kinds["list", default: 0] >= Self.minimumOperations && cuts > 0
                {
                    break
                }
                try? await Task.sleep(for: .milliseconds(200))  // polling the counts, not a synchronisation
            }
            ledger.end()
        }
        let owned = await withTaskGroup(of: [String: [UInt8]].self) { group in
            for worker in workers {
                group.addTask { await Posix.offPool { worker.run() } }
            }
            var all: [String: [UInt8]] = [:]
            for await files in group { all.merge(files) { $1 } }
            return all
        }
        let outages = await faults.value
        try await proxy.setCutPolicy(nil)
        let statistics = try await proxy.statistics()
        let counts = ledger.counts.withLock { $0 }
        // Every closed file reaches the Media Manager.
        let synced = await Posix.offPool { Posix.xattr(mount.mountpoint, "user.mediafs.sync") }
        let elapsed = clock.now - deadline + .seconds(Self.seconds)
        sampler.cancel()
        let grown = peak.load(ordering: .relaxed) - baseline
        print(
            """
            stress run (\(mode)), seed \(seed): \(counts.operations) operations in \(elapsed) \(counts.byKind.sorted { $0.key < $1.key }); \
            \(statistics.cuts) cuts, \(outages) outages; longest operation \(counts.longest) (\(counts.longestOperation)); \
            resident set \(baseline >> 20) MiB, peak +\(grown >> 20) MiB
            """)
        #expect(counts.failures.isEmpty, "\(counts.failures.sorted().joined(separator: "\n"))")
        if !counts.listingRaces.isEmpty {
            // Known and open (see `listingRace`): reported, not failing the run.
            withKnownIssue(Self.listingRace, isIntermittent: true) {
                Issue.record(Comment(rawValue: "seed \(seed): " + counts.listingRaces.sorted().joined(separator: "\n")))
            }
        }
        #expect(counts.longest < Self.operationBound, "\(counts.longestOperation) took \(counts.longest)")
        #expect(grown < Self.memoryBound, "the resident set grew by \(grown >> 20) MiB")
        await referee.value
        // The run did something of each kind.
        #expect(
            counts.byKind["create", default: 0] >= Self.minimumOperations && counts.byKind["read", default: 0] >= Self.minimumOperations
                && counts.byKind["list", default: 0] >= Self.minimumOperations)
        #expect(statistics.cuts > 0 && outages > 0, "faults were injected")
        if case .failure(let error) = synced { Issue.record("user.mediafs.sync failed: \(error)") }

        // The tree as the mount shows it, and as the Media Manager has it, is what the workers made.
        var model = FilesystemModel(umask: UInt32(Posix.umask))
        for directory in StressWorker.directories { _ = model.apply(.mkdir(directory)) }
        for path in owned.keys.sorted() where !path.hasSuffix(".bin") { _ = model.apply(.mkdir(path)) }
        for (path, content) in owned where path.hasSuffix(".bin") { _ = model.apply(.create(path, Payload(length: 0, seed: 0))); model.setContent(path, content) }
        if let difference = await ModelRunner.compareTree(mount.mountpoint, model, modes: false) {
            Issue.record("the mount's tree differs from the workers' models (seed \(seed)): \(difference)")
        }
        if let difference = try await ModelRunner.compareRemote(mount.client, model) {
            Issue.record("the Media Manager differs from the workers' models (seed \(seed)): \(difference)")
        }
    }
}

extension StressTests {
    @Test("--write-back: files read back while their uploads complete read whole (never empty, never EIO)")
    func readsRacingCompletion() async throws {
        try await MountFixture.with(journal: { $0.writeBack = true }) { mount in
            let root = mount.mountpoint
            let problems = await Posix.offPool { () -> [String] in
                var problems: [String] = []
                for index in 0..<150 {
                    let path = root + "/race-\(index % 10).bin"
                    let content = Payload(length: 1000 + index * 37, seed: UInt64(index)).bytes
                    let created = Posix.openWriteClose(path, flags: O_CREAT | O_WRONLY | O_TRUNC, content)
                    if created != 0 {
                        problems.append("create \(path): \(Posix.name(created))")
                        continue
                    }
                    // Read while the upload runs and completes.
                    for _ in 0..<15 {
                        switch Posix.readAll(path) {
                        case .success(let read) where read == content: continue
                        case .success(let read): problems.append("\(path) read \(read.count) bytes of \(content.count)")
                        case .failure(let error): problems.append("\(path) read failed: \(error)")
                        }
                    }
                    if problems.count > 10 { break }
                }
                return problems
            }
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        }
    }
}

extension StressTests {
    @Test("a file stat'ed and opened just after its upload completed shows its size and reads whole, before the filesystem has taken the saved file")
    func openRightAfterCompletion() async throws {
        try await MountFixture.with(journal: { $0.writeBack = true }) { mount in
            let filesystem = mount.filesystem
            for index in 0..<20 {
                let data = Payload(length: 5000 + index, seed: UInt64(index)).bytes
                let (entry, handle) = try await filesystem.create(parent: 1, name: "done-\(index).bin", flags: O_WRONLY, context: nil)
                _ = try await filesystem.write(handle: handle, offset: 0, data: ByteBuffer(bytes: data))
                try await filesystem.flush(handle: handle, context: nil)
                await filesystem.release(handle: handle)
                let record = try #require(mount.journal.entries().first { $0.displayName == "done-\(index).bin" }?.id)
                _ = try await mount.journal.finalized(record)
                // The journal has finished the record; the filesystem may not have heard yet.
                let size = try await filesystem.getattr(entry.attributes.inode).size
                #expect(size == Int64(data.count), "done-\(index).bin: stat says \(size) bytes of \(data.count)")
                let reader = try await filesystem.open(entry.attributes.inode, flags: O_RDONLY)
                let read = try await filesystem.read(handle: reader, offset: 0, size: 1 << 20)
                await filesystem.release(handle: reader)
                let whole = Array(read.readableBytesView) == data
                #expect(whole, "done-\(index).bin: read \(read.readableBytes) of \(data.count) bytes")
            }
        }
    }
}

extension StressTests {
    @Test("reads of a saved file, and changes that download it first, go through a short outage of the content host")
    func readsThroughShortOutage() async throws {
        try await WriteTests.withProxy(seed: 11) { proxy, port in
            try await MountFixture.with(
                apiURL: "http://127.0.0.1:\(port)", server: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }
            ) { mount in
                let data = Data.random(300_000)
                try data.write(to: URL(fileURLWithPath: mount.server.directory.path + "/source.bin"))
                try await mount.sh("cp \(mount.server.directory.path)/source.bin saved.bin && cp saved.bin other.bin")
                for (command, what) in [("cat saved.bin | md5sum", "a read"), ("printf tail >> other.bin && md5sum other.bin", "an append")] {
                    try await proxy.beginOutage(.closeImmediately)
                    let before = try await proxy.statistics().connectionsRejected
                    async let result = mount.sh(command, expect: nil)
                    // The content host refuses it at least once, then comes back.
                    try await Programs.waitFor("\(what) to meet the outage", timeout: .seconds(30)) {
                        ((try? await proxy.statistics())?.connectionsRejected ?? 0) > before
                    }
                    try await proxy.endOutage()
                    let finished = try await result
                    #expect(finished.status == 0, "\(what) failed: \(finished.output)")
                }
                #expect(try await mount.sh("cat saved.bin | md5sum").output.hasPrefix(JournalMountTests.md5(data)))
                #expect(try await mount.sh("md5sum other.bin").output.hasPrefix(JournalMountTests.md5(data + Data("tail".utf8))))
            }
        }
    }
}
