import Backoff
import Crypto
import FaultInjection
import Foundation
import FuseBridge
import MediaFS
import MediaManager
import MediaServerTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The FUSE bridge on real mounts: interrupts, unmounting with requests in flight, and kernel
/// cache invalidation.
@Suite("FUSE bridge: interrupts, unmount, invalidation", .serialized)
struct BridgeTests {
    /// Retries slow enough that a read blocked by an outage stays blocked for the whole test.
    static let patientRetry = RetryPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(1), jitter: 0, maximumAttempts: 40)

    /// Long kernel and filesystem caches: once looked up, a file opens without the server.
    static func longCaches(_ configuration: inout FilesystemConfiguration) {
        configuration.entryTTL = .seconds(120)
        configuration.attributeTTL = .seconds(120)
        configuration.directoryTTL = .seconds(120)
    }

    static func md5(_ data: Data) -> String {
        Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// Waits until the proxy turned away one more connection than `before`: the mount is trying
    /// to fetch.
    static func waitForRejection(_ proxy: FaultProxy, after before: Int) async throws {
        try await Programs.waitFor("the mount to try the server") {
            (try? await proxy.statistics().connectionsRejected).map { $0 > before } ?? false
        }
    }

    /// Waits until `process` exits, or `timeout` passes, without holding a thread (the tasks that
    /// answer FUSE requests need the pool); whether it exited.
    static func exit(of process: Process, within timeout: Duration = .seconds(60)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Starts a program with SIGINT at its default action (the test runner may ignore it, and
    /// children inherit that).
    static func start(_ command: [String], log: String) throws -> Process {
        try Programs.start("/usr/bin/env", ["--default-signal=INT"] + command, log: log)
    }

    /// Whether SIGINT reaches process `pid` (not ignored).
    static func catchesSIGINT(_ pid: Int32) throws -> Bool {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigIgn:") }),
            let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << (UInt64(SIGINT) - 1)) == 0
    }

    @Test("SIGINT ends a read blocked by an outage at once; the mount works afterwards")
    func interruptedRead() async throws {
        try await BridgeMount.with(behindProxy: true, retry: Self.patientRetry, configure: Self.longCaches) { mount in
            let proxy = try #require(mount.proxy)
            let data = Data.random(3 << 20 + 5)
            try await mount.upload("clip.mp4", data)
            try await mount.sh("stat clip.mp4 >/dev/null")
            let path = mount.mountpoint + "/clip.mp4"
            let log = mount.server.directory.path + "/programs.log"
            try await proxy.beginOutage(.closeImmediately)

            // O_DIRECT: a synchronous read request, which the kernel interrupts on a signal and
            // then waits for our answer.
            var rejected = try await proxy.statistics().connectionsRejected
            let dd = try Self.start(["dd", "if=\(path)", "of=/dev/null", "bs=1M", "iflag=direct"], log: log)
            try await Self.waitForRejection(proxy, after: rejected)
            #expect(dd.isRunning)
            #expect(try Self.catchesSIGINT(dd.processIdentifier))
            var started = ContinuousClock.now
            kill(dd.processIdentifier, SIGINT)
            #expect(try await Self.exit(of: dd))
            let ddElapsed = ContinuousClock.now - started
            #expect(ddElapsed < .seconds(5), "dd took \(ddElapsed) to stop after SIGINT")

            // Through the page cache: the kernel's read-ahead waits for us in the background.
            rejected = try await proxy.statistics().connectionsRejected
            let cat = try Self.start(["cat", path], log: log)
            try await Self.waitForRejection(proxy, after: rejected)
            #expect(try Self.catchesSIGINT(cat.processIdentifier))
            started = ContinuousClock.now
            kill(cat.processIdentifier, SIGINT)
            #expect(try await Self.exit(of: cat))
            #expect(ContinuousClock.now - started < .seconds(5))

            try await proxy.endOutage()
            #expect(try await mount.sh("cat clip.mp4 | md5sum").output.hasPrefix(Self.md5(data)))
            #expect(try await mount.sh("dd if=clip.mp4 iflag=direct bs=1M 2>/dev/null | md5sum").output.hasPrefix(Self.md5(data)))
            #expect(try await mount.sh("ls").lines == ["clip.mp4"])
        }
    }

    @Test("fusermount3 -u right after 60 touches: when run() returns, every file is in the Media Manager")
    func unmountDrains() async throws {
        try await BridgeMount.with { mount in
            let names = (1...60).map { "f\($0).txt" }
            let touches = names.map { "touch '\(mount.mountpoint)/\($0)'" }.joined(separator: "; ")
            // From outside the mount, so that it is not busy.
            try await mount.sh("\(touches); fusermount3 -u '\(mount.mountpoint)'", in: mount.server.directory.path)
            try await mount.loop.value
            await mount.filesystem.shutdown(timeout: .seconds(30))
            let stored = try await mount.client.files.list(limit: 1000).files.map(\.displayName)
            #expect(Set(stored) == Set(names), "missing: \(Set(names).subtracting(stored).sorted())")
        }
    }

    @Test("a request still running at unmount holds run() up to the drain timeout; its late answer is dropped")
    func drainTimeout() async throws {
        try await BridgeMount.with(behindProxy: true, retry: Self.patientRetry, drainTimeout: .milliseconds(800), configure: Self.longCaches) {
            mount in
            let proxy = try #require(mount.proxy)
            try await mount.upload("movie.mov", Data.random(2 << 20))
            try await mount.sh("stat movie.mov >/dev/null")
            try await proxy.beginOutage(.closeImmediately)
            let rejected = try await proxy.statistics().connectionsRejected
            // cat dies at once on SIGKILL; the kernel's read-ahead request stays with us.
            let cat = try Programs.start("/bin/cat", [mount.mountpoint + "/movie.mov"], log: mount.server.directory.path + "/cat.log")
            try await Self.waitForRejection(proxy, after: rejected)
            kill(cat.processIdentifier, SIGKILL)
            #expect(try await Self.exit(of: cat))

            let started = ContinuousClock.now
            mount.session.unmount()
            try await mount.loop.value
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(750), "run() returned after \(elapsed), before the read finished or timed out")
            #expect(elapsed < .seconds(5), "run() took \(elapsed)")

            // The read now completes; its answer must not reach the closed session.
            let forwarded = try await proxy.statistics().connectionsForwarded
            try await proxy.endOutage()
            try await Programs.waitFor("the read to reach the server") {
                (try? await proxy.statistics().connectionsForwarded).map { $0 > forwarded } ?? false
            }
            // And an invalidation after the close is dropped too.
            mount.session.notifier.invalidateInode(1)
            await mount.session.notifier.delivered()
        }
    }

    @Test("invalidations reach the kernel: stat shows the new state at once despite 120 s caches")
    func invalidation() async throws {
        try await BridgeMount.with(configure: Self.longCaches) { mount in
            try await mount.upload("a.txt", Data("hello".utf8))
            #expect(try await mount.sh("stat -c %a a.txt").output.hasPrefix("644"))
            let inode = try await mount.inode("a.txt")

            // Changed behind the kernel's back: it keeps showing what it cached.
            var changes = SetAttributes()
            changes.mode = 0o600
            _ = try await mount.filesystem.setattr(inode, changes, handle: nil)
            #expect(try await mount.sh("stat -c %a a.txt").output.hasPrefix("644"))
            mount.session.notifier.invalidateInode(inode)
            await mount.session.notifier.delivered()
            #expect(try await mount.sh("stat -c %a a.txt").output.hasPrefix("600"))

            try await mount.filesystem.rename(parent: 1, name: "a.txt", newParent: 1, newName: "b.txt", flags: 0)
            #expect(try await mount.sh("stat -c %i a.txt").output.hasPrefix("\(inode)"))
            mount.session.notifier.invalidateEntry(parent: 1, name: "a.txt")
            await mount.session.notifier.delivered()
            #expect(try await mount.sh("stat a.txt", expect: 1).output.contains("No such file"))
            #expect(try await mount.sh("cat b.txt").output == "hello")
        }
    }
}
