import FaultInjection
import Foundation
import Testing

/// Random sequences of create, write, append, truncate, rename (files and folders, onto existing
/// names), unlink, mkdir, rmdir, chmod, readdir, read, sync and remount, run against a real mount
/// (with another thread listing the tree meanwhile) and against ``FilesystemModel`` and compared
/// after each step (as mountpoint-s3's reference
/// tests do). A failing sequence is shrunk and printed.
///
/// Each run prints its seed. `MEDIAFS_MODEL_SEED=<seed>` replays one (the same sequence in both
/// close modes), `MEDIAFS_MODEL_STEPS=<n>` sets the number of steps, and
/// `MEDIAFS_MODEL_SHRINK_SECONDS=<s>` bounds the shrinking of a failure (default 180), and
/// `MEDIAFS_MODEL_LISTERS=<n>` sets how many threads list and stat the tree meanwhile (default 1:
/// listings refresh in the middle of changes, as a file manager makes them).
@Suite("Model-based: random operation sequences, the mount against a model", .serialized)
struct ModelBasedTests {
    static let environment = ProcessInfo.processInfo.environment
    /// About 15–30 s per close mode on the CI machine.
    static let defaultSteps = 300

    static var seed: UInt64 {
        if let text = environment["MEDIAFS_MODEL_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1...UInt64(UInt32.max))
    }

    @Test("random sequences match the model (default close, and --write-back)", arguments: [false, true])
    func randomSequences(writeBack: Bool) async throws {
        let seed = Self.seed
        let steps = Self.environment["MEDIAFS_MODEL_STEPS"].flatMap(Int.init) ?? Self.defaultSteps
        let mode = writeBack ? "--write-back" : "default close"
        print("model-based run (\(mode)): seed \(seed), \(steps) steps; replay with MEDIAFS_MODEL_SEED=\(seed) MEDIAFS_MODEL_STEPS=\(steps)")
        let umask = UInt32(Posix.umask)
        var generator = OperationGenerator(seed: seed, umask: umask)
        let operations = generator.operations(steps) + [.sync]
        var runner = ModelRunner(writeBack: writeBack, umask: umask)
        runner.listers = Self.environment["MEDIAFS_MODEL_LISTERS"].flatMap(Int.init) ?? 1
        let clock = ContinuousClock()
        let started = clock.now
        guard let failure = try await runner.run(operations) else {
            print("model-based run (\(mode)), seed \(seed): \(operations.count) steps matched in \(clock.now - started)")
            return
        }
        print("model-based run (\(mode)), seed \(seed) failed at \(failure); shrinking")
        let budget = Self.environment["MEDIAFS_MODEL_SHRINK_SECONDS"].flatMap(Int.init) ?? 180
        let (shrunk, shrunkFailure, replays) = try await runner.shrink(operations, failure, budget: .seconds(budget))
        let listing = shrunk.enumerated().map { "  \($0.offset): \($0.element)" }.joined(separator: "\n")
        let report = """
            The mount differs from the model (\(mode), seed \(seed), \(steps) steps; MEDIAFS_MODEL_SEED=\(seed) MEDIAFS_MODEL_STEPS=\(steps)).
            First failure: \(failure)
            Shrunk to \(shrunk.count) operations (\(replays) replays), failing at \(shrunkFailure):
            \(listing)
            """
        print(report)
        Issue.record(Comment(rawValue: report))
    }

    @Test("the model itself: POSIX answers for the cases the runs depend on")
    func modelAnswers() {
        var model = FilesystemModel(umask: 0o022)
        let payload = Payload(length: 3, seed: 1)
        #expect(model.apply(.mkdir("a")) == .ok)
        #expect(model.apply(.mkdir("a")) == .failed(EEXIST))
        #expect(model.apply(.create("a/x", payload)) == .ok)
        #expect(model.apply(.create("a/x/y", payload)) == .failed(ENOTDIR))
        #expect(model.apply(.create("b/y", payload)) == .failed(ENOENT))
        #expect(model.apply(.rename("a", "a/b")) == .failed(EINVAL))
        #expect(model.apply(.mkdir("c")) == .ok)
        #expect(model.apply(.rename("c", "a")) == .failed(ENOTEMPTY))
        #expect(model.apply(.rename("a/x", "c")) == .failed(EISDIR))
        #expect(model.apply(.rename("a/x", "a")) == .failed(ENOTEMPTY))
        #expect(model.apply(.rename("missing", "a/x/y")) == .failed(ENOTDIR))
        #expect(model.apply(.create("f", payload)) == .ok)
        #expect(model.apply(.rename("c", "f")) == .failed(ENOTDIR))
        #expect(model.apply(.rename("a", "c")) == .ok)
        #expect(model.children(of: "c") == ["x"])
        #expect(model.apply(.rmdir("c")) == .failed(ENOTEMPTY))
        #expect(model.apply(.unlink("c")) == .failed(EISDIR))
        #expect(model.apply(.rmdir("f")) == .failed(ENOTDIR))
        #expect(model.apply(.write("f", offset: 5, payload)) == .ok)
        #expect(model.apply(.read("f")) == .read(payload.bytes + [0, 0] + payload.bytes))
        #expect(model.apply(.truncate("f", 2)) == .ok)
        #expect(model.apply(.read("f")) == .read(Array(payload.bytes.prefix(2))))
        #expect(model.apply(.readdir("")) == .listed(["c", "f"]))
        // A sequence is the same for a seed, whatever runs it.
        var first = OperationGenerator(seed: 99, umask: 0o022)
        var second = OperationGenerator(seed: 99, umask: 0o022)
        #expect(first.operations(200) == second.operations(200))
    }
}
