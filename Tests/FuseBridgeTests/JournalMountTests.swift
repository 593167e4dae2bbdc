import Crypto
import FaultInjection
import Foundation
import Journal
import Logging
import MediaFS
import MediaManager
import MediaServer
import MediaServerTesting
import Testing

/// The write journal through real mounts: write patterns, write-back, names settling locally,
/// a full journal, reads of files being written.
@Suite("The write journal through real FUSE mounts", .serialized)
struct JournalMountTests {
    static func md5(_ data: Data) -> String {
        Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// A server whose upload host is behind a fault proxy (listings go straight to it), mounted.
    static func withProxiedUploads(
        journal: @escaping (inout Journal.Configuration) -> Void = { _ in },
        _ body: (MountFixture, FaultProxy) async throws -> Void
    ) async throws {
        try await WriteTests.withProxy(seed: 3) { proxy, port in
            try await MountFixture.with(
                journal: journal, apiURL: "http://127.0.0.1:\(port)", server: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }
            ) { mount in
                try await body(mount, proxy)
            }
        }
    }

    @Test("write patterns: >>, O_RDWR rewrite in the middle, truncate up and down, a header rewritten after 50 MB, sparse seeks; byte-exact after a remount")
    func writePatterns() async throws {
        let script = """
            import os, hashlib, sys
            sums = {}
            def record(name, data):
                sums[name] = hashlib.md5(data).hexdigest()
            # >>: appends to a saved file.
            open('append.txt', 'wb').write(b'first line\\n')
            with open('append.txt', 'ab') as f: f.write(b'second line\\n')
            record('append.txt', b'first line\\nsecond line\\n')
            # O_RDWR rewrite in the middle of a saved file.
            body = bytearray(os.urandom(3 << 20))
            open('middle.bin', 'wb').write(body)
            fd = os.open('middle.bin', os.O_RDWR)
            os.pwrite(fd, b'X' * 1000, 1 << 20)
            os.close(fd)
            body[1 << 20:(1 << 20) + 1000] = b'X' * 1000
            record('middle.bin', bytes(body))
            # Truncate down and up, through a handle and by path.
            data = os.urandom(2 << 20)
            open('trunc.bin', 'wb').write(data)
            os.truncate('trunc.bin', 1000)
            with open('trunc.bin', 'r+b') as f: f.truncate(5000)
            record('trunc.bin', data[:1000] + bytes(4000))
            # A muxer: 50 MB of body, then the header written at the start.
            payload = os.urandom(50 << 20)
            with open('movie.mp4', 'wb') as f:
                f.write(bytes(64))
                f.write(payload)
                f.seek(0)
                f.write(b'ftypisom' + bytes(56))
            record('movie.mp4', b'ftypisom' + bytes(56) + payload)
            # Sparse: forward seeks leave zeros.
            with open('sparse.bin', 'wb') as f:
                f.write(b'start')
                f.seek(10 << 20)
                f.write(b'middle')
                f.seek(12 << 20)
                f.write(b'end')
            record('sparse.bin', b'start' + bytes((10 << 20) - 5) + b'middle' + bytes((2 << 20) - 6) + b'end')
            for name in sorted(sums): print(name, sums[name])
            """
        try await TestMediaServer.with { server in
            var expected: [String: String] = [:]
            try await MountFixture.mounted(server: server, journal: { $0.streamChunk = 1 << 20 }) { mount in
                let result = try await mount.sh("python3 -c \"\(script)\"")
                for line in result.lines {
                    let parts = line.split(separator: " ")
                    expected[String(parts[0])] = String(parts[1])
                }
                #expect(expected.count == 5, "\(result.output)")
            }
            try await MountFixture.mounted(server: server) { mount in
                for (name, sum) in expected {
                    #expect(try await mount.sh("md5sum \(name)").output.hasPrefix(sum), "\(name) through the mount")
                    let file = try #require(try await mount.remoteFiles()[name], "\(name) is in the Media Manager")
                    #expect(file.hash == sum, "\(name) in the Media Manager")
                }
                // Each change replaced its file: the older versions are in the trash, no duplicates.
                #expect(try await mount.remoteFiles().count == expected.count)
            }
        }
    }

    @Test("--write-back: close returns before the upload; fsync waits for it; rename and unlink of queued files cost no API call")
    func writeBackNamesSettleLocally() async throws {
        try await Self.withProxiedUploads(journal: { $0.writeBack = true }) { mount, proxy in
            try await proxy.beginOutage(.refuse)
            // Closes return although nothing can be uploaded.
            try await mount.sh("printf one > .one.txt.tmp && mv .one.txt.tmp one.txt && printf two > two.txt && printf three > three.txt")
            #expect(try await mount.sh("cat one.txt two.txt").output == "onetwo")
            let waiting = try await mount.sh("getfattr -n user.mediafs.uploadState --only-values two.txt").output
            #expect(waiting.hasPrefix("queued") || waiting.hasPrefix("uploading"), "\(waiting)")
            // An unlink does not wait for the server to forget the upload (that retries through
            // the outage, for up to the outage limit of 300 s).
            let clock = ContinuousClock()
            let unlinked = clock.now
            try await mount.sh("rm three.txt")
            #expect(clock.now - unlinked < .seconds(30), "rm of a queued file waited for the network")
            try await mount.sh("mkdir sub && mv two.txt sub/deux.txt && setfattr -n user.mediafs.labels -v 'holiday,2026' one.txt")
            #expect(try await mount.sh("getfattr -n user.mediafs.labels --only-values one.txt").output == "holiday,2026")
            #expect(try await mount.sh("ls").lines == ["one.txt", "sub"])
            #expect(try await mount.sh("cat sub/deux.txt").output == "two")
            let queue = try await mount.sh("getfattr -n user.mediafs.queue --only-values .").output
            let status = try JSONDecoder().decode(QueueStatus.self, from: Data(queue.utf8))
            #expect(status.writeBack && status.queued + status.inFlight == 2, "\(queue)")
            #expect(try await mount.remoteFiles().isEmpty)
            try await proxy.endOutage()
            // fsync of a closed file waits until the Media Manager has it.
            try await mount.sh("python3 -c \"import os; fd = os.open('one.txt', os.O_RDONLY); os.fsync(fd)\"")
            #expect(try await mount.remoteFiles()["one.txt"] != nil)
            try await mount.sh("getfattr -n user.mediafs.sync . > /dev/null")
            // Saved under their final names in their final folders, once each; nothing trashed.
            #expect(try await mount.remoteFiles().keys.sorted() == ["one.txt"])
            #expect(try await mount.remoteFiles()["one.txt"]?.labels == ["holiday", "2026"])
            #expect(try await mount.remoteFiles("sub").keys.sorted() == ["deux.txt"])
            #expect(try await mount.client.files.listDeleted().files.isEmpty)
            #expect(try await mount.sh("getfattr -n user.mediafs.uploadState --only-values sub/deux.txt").output == "done")
        }
    }

    @Test("a full journal: writes wait (nothing fails) and complete once uploads make room")
    func fullJournalWaits() async throws {
        try await Self.withProxiedUploads(journal: { $0.writeBack = true; $0.maximumSize = 4 << 20 }) { mount, proxy in
            let source = mount.server.directory.path + "/big.bin"
            let data = Data.random(24 << 20)
            try data.write(to: URL(fileURLWithPath: source))
            try await proxy.beginOutage(.refuse)
            async let copy = mount.sh("cp \(source) big.bin && printf small > small.txt")
            // The journal fills up to its limit and the copy waits there.
            try await Programs.waitFor("the journal to fill", timeout: .seconds(60)) {
                guard let queue = try? await mount.sh("getfattr -n user.mediafs.queue --only-values .").output,
                    let status = try? JSONDecoder().decode(QueueStatus.self, from: Data(queue.utf8))
                else { return false }
                return status.unacknowledgedBytes >= 4 << 20
            }
            let waiting = try await mount.sh("stat -c %s big.bin").output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect((Int(waiting) ?? 0) < 24 << 20, "the copy went past the limit: \(waiting)")
            try await proxy.endOutage()
            let result = try await copy
            #expect(result.status == 0, "\(result.output)")
            try await mount.sh("getfattr -n user.mediafs.sync . > /dev/null")
            let file = try #require(try await mount.remoteFiles()["big.bin"])
            #expect(file.hash == Self.md5(data))
            #expect(try await mount.remoteFiles()["small.txt"] != nil)
        }
    }

    @Test("a file being written reads back what was written so far, from the journal")
    func readWhileWriting() async throws {
        try await MountFixture.with(journal: { $0.streamChunk = 1 << 20 }) { mount in
            let script = """
                import os
                first = os.urandom(3 << 20)
                with open('live.bin', 'wb') as w:
                    w.write(first); w.flush()
                    with open('live.bin', 'rb') as r:
                        assert r.read() == first, 'first part'
                    w.write(b'tail')
                    w.flush()
                    with open('live.bin', 'rb') as r:
                        assert r.read() == first + b'tail', 'with tail'
                print('ok')
                """
            let result = try await mount.sh("python3 -c \"\(script)\"")
            #expect(result.output.contains("ok"))
            #expect(try await mount.remoteFiles()["live.bin"]?.sizeInBytes == (3 << 20) + 4)
        }
    }
}
