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

@Suite("Writing into real FUSE mounts", .serialized)
struct WriteTests {
    /// A tree with the sizes the issue names: 0, 1, 10 MB ± 1 and 100 MB.
    static func makeTree(at path: String) async throws -> [String: String] {
        let files: [(String, Int)] = [
            ("empty.bin", 0), ("one.txt", 1), ("sub/ten-minus.mp4", 10_000_000 - 1), ("sub/ten-plus.jpg", 10_000_000 + 1),
            ("sub/deep/hundred.mov", 100_000_000),
        ]
        var sums: [String: String] = [:]
        for (name, size) in files {
            let url = URL(fileURLWithPath: path + "/" + name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let data = Data.random(size)
            try data.write(to: url)
            sums[name] = Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
        }
        _ = try await Shell.run("chmod 600 one.txt && touch -d '2021-05-06 07:08:09' sub/ten-plus.jpg", directory: path)
        return sums
    }

    /// Checks every file of the tree through the API's download.
    static func verify(_ mount: MountFixture, root: String, _ sums: [String: String]) async throws {
        for (name, sum) in sums {
            let parts = (root + "/" + name).split(separator: "/")
            let files = try await mount.remoteFiles(parts.dropLast().joined(separator: "/"))
            let file = try #require(files[String(parts.last!)], "\(root)/\(name) is in the Media Manager")
            #expect(try await mount.remoteMD5(file) == sum, "\(root)/\(name)")
        }
    }

    @Test("cp, cp -a, rsync -a and tar of 0 B, 1 B, 10 MB ± 1 and 100 MB files; MD5s checked through the API")
    func copyTools() async throws {
        try await MountFixture.with { mount in
            let source = mount.server.directory.path + "/source"
            let sums = try await Self.makeTree(at: source)
            try await mount.sh("cp -r \(source) cp-r")
            try await mount.sh("cp -a \(source) cp-a")
            try await mount.sh("rsync -a \(source)/ rsync/")
            try await mount.sh("mkdir tar && tar -C \(source) -cf - . | tar -C tar -xf -")
            for root in ["cp-r", "cp-a", "rsync", "tar"] {
                try await Self.verify(mount, root: root, sums)
            }
            // cp -a and rsync -a kept mode and mtime; a second rsync transfers nothing.
            #expect(try await mount.sh("stat -c '%a' cp-a/one.txt rsync/one.txt").lines == ["600", "600"])
            #expect(try await mount.sh("stat -c '%Y' rsync/sub/ten-plus.jpg").output.hasPrefix("1620284889"))
            let second = try await mount.sh("rsync -a --itemize-changes \(source)/ rsync/")
            #expect(second.lines.isEmpty, "second rsync: \(second.output)")
            try await mount.sh("cmp \(source)/sub/deep/hundred.mov rsync/sub/deep/hundred.mov")
        }
    }

    @Test("rsync -a --partial, dd, and the mtime kept across a remount")
    func rsyncAcrossRemount() async throws {
        try await TestMediaServer.with { server in
            let source = server.directory.path + "/source"
            try FileManager.default.createDirectory(atPath: source + "/d", withIntermediateDirectories: true)
            for index in 0..<5 { try Data.random(3000 * index).write(to: URL(fileURLWithPath: "\(source)/d/f\(index).dat")) }
            _ = try await Shell.run("touch -d '2019-01-01' d/f1.dat && chmod 640 d/f2.dat", directory: source)
            try await MountFixture.mounted(server: server) { mount in
                try await mount.sh("rsync -a --partial \(source)/ copy/")
                try await mount.sh("dd if=/dev/urandom of=dd.bin bs=1M count=3 status=none")
                #expect(try await mount.sh("stat -c %s dd.bin").output.trimmingCharacters(in: .whitespacesAndNewlines) == "3145728")
            }
            try await MountFixture.mounted(server: server) { mount in
                let again = try await mount.sh("rsync -a --itemize-changes \(source)/ copy/")
                #expect(again.lines.isEmpty, "after remount: \(again.output)")
                #expect(try await mount.sh("stat -c %a copy/d/f2.dat").output.hasPrefix("640"))
            }
        }
    }

    @Test("a file being written is visible with its size so far, and in the Media Manager only once closed")
    func visibleWhileWriting() async throws {
        try await MountFixture.with(journal: { $0.streamChunk = 1 << 20 }) { mount in
            let script = """
                import os, sys, time
                with open('growing.bin', 'wb') as f:
                    f.write(os.urandom(3 << 20)); f.flush()
                    open('ready', 'w').close()
                    while not os.path.exists('go'): time.sleep(0.05)
                    f.write(os.urandom(1 << 20))
                """
            async let writer = mount.sh("python3 -c \"\(script)\"")
            try await Programs.waitFor("the writer") { (try? await mount.sh("test -e ready", expect: 0)) != nil }
            #expect(try await mount.sh("stat -c %s growing.bin").output.hasPrefix("3145728"))
            #expect(try await mount.remoteFiles()["growing.bin"] == nil)
            try await mount.sh("touch go")
            _ = try await writer
            let file = try #require(try await mount.remoteFiles()["growing.bin"])
            #expect(file.sizeInBytes == 4 << 20)
            #expect(try await mount.sh("stat -c %s growing.bin").output.hasPrefix("4194304"))
        }
    }

    @Test("overwriting replaces the file; the old one goes to the trash (O_TRUNC and rename onto it)")
    func overwrite() async throws {
        try await MountFixture.with { mount in
            try await mount.sh("printf first > a.txt && printf second > a.txt")
            #expect(try await mount.sh("cat a.txt").output == "second")
            #expect(try await mount.remoteFiles().keys.sorted() == ["a.txt"])
            try await mount.sh("printf third > b.txt && mv b.txt a.txt")
            #expect(try await mount.sh("ls").lines == ["a.txt"])
            #expect(try await mount.sh("cat a.txt").output == "third")
            // The rename of a saved file is sent in the background.
            try await mount.sync()
            #expect(try await mount.remoteFiles().keys.sorted() == ["a.txt"])
            let trash = try await mount.client.files.listDeleted().files.map(\.displayName).sorted()
            #expect(trash == ["a.txt", "a.txt"])
            // chmod and chown succeed, and the mode is kept.
            try await mount.sh("chmod 640 a.txt && chown 0:0 a.txt")
            #expect(try await mount.sh("stat -c %a a.txt").output.hasPrefix("640"))
        }
    }

    @Test("shell patterns: touch, empty files renamed at once, >>, umask, rm while writing, rmdir of a folder being written")
    func shellPatterns() async throws {
        try await MountFixture.with(journal: { $0.streamChunk = 1 << 20 }) { mount in
            try await mount.sh("printf data > kept.txt && touch kept.txt && touch -d '2020-02-02' kept.txt")
            #expect(try await mount.sh("cat kept.txt").output == "data")
            #expect(try await mount.sh("stat -c %Y kept.txt").output.hasPrefix("1580601600"))
            try await mount.sh("touch empty && mv empty moved && : > blank && cat blank && printf x > blank2 && mv blank2 blank")
            #expect(try await mount.sh("ls").lines == ["blank", "kept.txt", "moved"])
            #expect(try await mount.sh("cat blank").output == "x")
            try await mount.sync()
            #expect(try await mount.remoteFiles().keys.sorted() == ["blank", "kept.txt", "moved"])
            // Appending to an existing file changes it: it starts from its current content.
            try await mount.sh("printf more >> kept.txt")
            #expect(try await mount.sh("cat kept.txt").output == "datamore")
            #expect(try await mount.remoteMD5(try #require(try await mount.remoteFiles()["kept.txt"])) == "6816e239236f42deccdd84296350e18a")
            try await mount.sh("umask 077 && printf s > secret.txt && mkdir private")
            #expect(try await mount.sh("stat -c %a secret.txt private").lines == ["600", "700"])
            // A file removed while being written is not saved; the writer does not fail.
            let script = """
                import os
                f = open('gone.bin', 'wb')
                f.write(os.urandom(3 << 20))
                os.unlink('gone.bin')
                f.write(os.urandom(1 << 20))
                f.close()
                """
            try await mount.sh("python3 -c \"\(script)\"")
            #expect(try await mount.remoteFiles()["gone.bin"] == nil)
            // A folder holding a file being written is not empty.
            let hold = """
                import os, time
                os.mkdir('busy')
                f = open('busy/in.bin', 'wb'); f.write(b'x'); f.flush()
                r = os.system('rmdir busy 2>/dev/null')
                f.close()
                print('rmdir', r)
                """
            #expect(try await mount.sh("python3 -c \"\(hold)\"").output.contains("rmdir 256"))
            #expect(try await mount.remoteFiles("busy")["in.bin"] != nil)
        }
    }

    @Test("a header rewritten after the body (a muxer's pattern) lands byte-exact; appends and truncates change files")
    func rewriteHeader() async throws {
        let script = """
            import os
            body = os.urandom(3 << 20)
            with open('muxed.mp4', 'wb') as f:
                f.write(body)
                f.seek(0)
                f.write(b'HEADER')
            expected = b'HEADER' + body[6:]
            import hashlib; print(hashlib.md5(expected).hexdigest())
            """
        try await MountFixture.with(journal: { $0.streamChunk = 1 << 20 }) { mount in
            let result = try await mount.sh("python3 -c \"\(script)\"")
            let expected = result.lines.last ?? ""
            let file = try #require(try await mount.remoteFiles()["muxed.mp4"])
            #expect(try await mount.remoteMD5(file) == expected)
            try await mount.sh("printf abc > t.txt && printf def >> t.txt && truncate -s 4 t.txt")
            #expect(try await mount.sh("cat t.txt").output == "abcd")
        }
    }

    /// A fault proxy in front of a server port chosen here (the server listens there and hands
    /// out the proxy's URL); always stopped.
    static func withProxy(seed: UInt64, _ body: (FaultProxy, Int) async throws -> Void) async throws {
        let port = try Programs.freePort()
        var logger = Logger(label: "test.proxy")
        logger.logLevel = .critical
        let proxy = try await FaultProxy.start(targetPort: port, seed: seed, logger: logger)
        do {
            try await body(proxy, port)
        } catch {
            try? await proxy.stop()
            throw error
        }
        try await proxy.stop()
    }

    @Test("cuts inside PATCH bodies during a 300 MB cp: the cp succeeds and the MD5 matches")
    func faultsDuringCopy() async throws {
        try await Self.withProxy(seed: 42) { proxy, port in
            // PATCH bodies of one chunk, so that the cuts fall in many of them.
            try await MountFixture.with(
                journal: { $0.maximumPatch = 8 << 20 }, server: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }
            ) { mount in
                let source = mount.server.directory.path + "/big.bin"
                let data = Data.random(300_000_000)
                try data.write(to: URL(fileURLWithPath: source))
                let sum = Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
                try await proxy.setCutPolicy(.insidePatchBodies(bytes: 1000...7_000_000, probability: 0.3, maximumCuts: 8))
                try await mount.sh("cp \(source) big.bin")
                let statistics = try await proxy.statistics()
                #expect(statistics.cuts > 0)
                let file = try #require(try await mount.remoteFiles()["big.bin"])
                #expect(file.hash == sum)
                #expect(try await mount.remoteMD5(file) == sum)
            }
        }
    }

    @Test("an outage longer than the limit: cp fails with EIO and nothing appears in the folder")
    func outageBeyondLimit() async throws {
        try await Self.withProxy(seed: 7) { proxy, port in
            try await MountFixture.with(outageLimit: .seconds(2), server: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }) { mount in
                let source = mount.server.directory.path + "/data.bin"
                try Data.random(40_000_000).write(to: URL(fileURLWithPath: source))
                async let copy = mount.sh("cp \(source) lost.bin", expect: nil)
                // The outage begins once the upload has started.
                try await Programs.waitFor("the upload to start", timeout: .seconds(30)) {
                    ((try? await proxy.statistics())?.bytesUpstream ?? 0) > 0
                }
                try await proxy.beginOutage(.refuse)
                let result = try await copy
                try await proxy.endOutage()
                #expect(result.status != 0)
                #expect(result.output.contains("Input/output error"), "\(result.output)")
                // Nothing is left to upload that could still make it appear.
                try await Programs.waitFor("the queue to empty", timeout: .seconds(30)) {
                    guard let queue = try? await mount.sh("getfattr -n user.mediafs.queue --only-values .").output,
                        let status = try? JSONDecoder().decode(QueueStatus.self, from: Data(queue.utf8))
                    else { return false }
                    return status.queued + status.inFlight == 0
                }
                #expect(try await mount.remoteFiles()["lost.bin"] == nil)
                #expect(try await mount.sh("ls").lines.isEmpty)
            }
        }
    }
}
