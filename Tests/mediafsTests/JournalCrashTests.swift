import AsyncHTTPClient
import Crypto
import FaultInjection
import Foundation
import Logging
import MediaManager
import MediaServer
import MediaServerTesting
import Testing

/// `mediafs mount` processes killed with SIGKILL mid-copy, then mounted again with the same
/// cache directory: what the journal promises about files that were closed, and files that were
/// not.
@Suite("The write journal across a killed mount", .serialized)
struct JournalCrashTests {
    /// A `mediafs mount` process, always unmounted and stopped by its owner.
    struct MountProcess {
        let process: Process
        let mountpoint: String
        let log: String

        static func start(
            _ mountpoint: String, server: String, cache: String, state: String, log: String, _ extra: [String] = []
        ) async throws -> MountProcess {
            try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
            let process = try Programs.start(
                try Programs.mediafs,
                ["mount", mountpoint, "--server", server, "--api-key", TestMediaServer.apiKey, "--cache-dir", cache, "--log-level", "info"] + extra,
                log: log, environment: ["XDG_STATE_HOME": state])
            let mount = MountProcess(process: process, mountpoint: mountpoint, log: log)
            do {
                try await Programs.waitFor("the mount at \(mountpoint)", timeout: .seconds(60)) {
                    guard process.isRunning else { return true }
                    return Self.isMounted(mountpoint)
                }
                guard process.isRunning else {
                    throw ProgramError(message: "mediafs mount exited: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                }
            } catch {
                await mount.kill()
                throw error
            }
            return mount
        }

        static func isMounted(_ path: String) -> Bool {
            let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            return table.split(separator: "\n").contains { line in
                line.split(separator: " ").dropFirst(4).first.map(String.init) == path && line.contains("fuse")
            }
        }

        /// SIGKILL: no unmount, no drain; the dead mount is then detached.
        func kill() async {
            if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
            await Programs.wait(process)
            _ = try? await Programs.run("/bin/fusermount3", ["-u", "-z", mountpoint])
        }

        /// A clean unmount, waiting for the process to finish.
        func unmount() async throws {
            let result = try await Programs.run("/bin/fusermount3", ["-u", mountpoint])
            if result.status != 0 { await kill() }
            await Programs.wait(process)
        }

        /// Waits until every closed file is in the Media Manager (`mediafs sync`'s attribute).
        func sync(timeout: Int = 180) async throws {
            let result = try await Programs.run("/usr/bin/timeout", ["\(timeout)", "getfattr", "-n", "user.mediafs.sync", "--only-values", mountpoint])
            guard result.status == 0 else {
                throw ProgramError(message: "sync of \(mountpoint) failed: \(result.output)\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
        }

        func sh(_ command: String) async throws -> (status: Int32, output: String) {
            try await Programs.run("/bin/sh", ["-c", command], directory: mountpoint)
        }
    }

    /// A server whose upload host (tus and finalize) is reached through a fault proxy, so that
    /// uploads can be held back while listings still work. Stopped whatever happens.
    static func withServer(_ body: (TestMediaServer, FaultProxy, Int) async throws -> Void) async throws {
        // The server's port is chosen before it binds (the proxy must know it): another test may
        // take it in between, so binding is tried again on a new port, a few times.
        for attempt in 1... {
            let port = try Programs.freePort()
            var logger = Logger(label: "test.proxy")
            logger.logLevel = .critical
            let proxy = try await FaultProxy.start(targetPort: port, logger: logger)
            var started = false
            do {
                try await TestMediaServer.with(configure: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }) { server in
                    started = true
                    try await body(server, proxy, port)
                }
            } catch {
                try? await proxy.stop()
                if !started, attempt < 5, "\(error)".contains("Address already in use") { continue }
                throw error
            }
            try await proxy.stop()
            return
        }
    }

    static func md5(_ data: Data) -> String {
        Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// Every file of a folder and of the trash, through the API.
    static func remote(_ direct: String) async throws -> (files: [MediaManager.FileDescriptor], trash: [MediaManager.FileDescriptor]) {
        let client = MediaManagerClient(
            configuration: .init(baseURL: direct, apiKey: TestMediaServer.apiKey, siteID: nil), httpClient: HTTPClient.shared,
            logger: Logger(label: "test.client"))
        var files: [MediaManager.FileDescriptor] = []
        var cursor: String?
        repeat {
            let page = try await client.files.list(parentFolderId: FolderID.mediaRoot, limit: 1000, cursor: cursor)
            files += page.files
            cursor = page.nextCursor.nextCursor
        } while cursor != nil
        let trash = try await client.files.listDeleted(limit: 1000).files
        return (files, trash)
    }

    /// Source files: name → content.
    static func makeSources(_ directory: String, count: Int, size: Int) throws -> [String: Data] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var sources: [String: Data] = [:]
        for index in 0..<count {
            let name = String(format: "photo-%03d.jpg", index)
            let data = Data.random(size + index)
            try data.write(to: URL(fileURLWithPath: directory + "/" + name))
            sources[name] = data
        }
        return sources
    }

    @Test("--write-back: rsync of 300 files returns, the mount is killed before the queue drained; the next mount saves each exactly once")
    func killAfterWriteBackRsync() async throws {
        try await Self.withServer { server, proxy, port in
            let root = server.directory.path
            let sources = try Self.makeSources(root + "/source", count: 300, size: 32 << 10)
            // Uploads wait: nothing can be saved before the kill.
            try await proxy.beginOutage(.refuse)
            let first = try await MountProcess.start(
                root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/first.log", ["--write-back"])
            do {
                let rsync = try await Programs.run("/usr/bin/rsync", ["-a", root + "/source/", root + "/mnt/"])
                #expect(rsync.status == 0, "\(rsync.output)")
                let state = try await first.sh("getfattr -n user.mediafs.uploadState --only-values photo-000.jpg").output
                #expect(state.hasPrefix("queued") || state.hasPrefix("uploading"), "\(state)")
            } catch {
                await first.kill()
                throw error
            }
            await first.kill()
            #expect(try await Self.remote("http://127.0.0.1:\(port)").files.isEmpty)
            try await proxy.endOutage()
            let second = try await MountProcess.start(
                root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/second.log", ["--write-back"])
            do {
                try await second.sync()
                let listed = try await second.sh("ls | wc -l").output.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(listed == "300")
            } catch {
                await second.kill()
                throw error
            }
            try await second.unmount()
            let (files, trash) = try await Self.remote("http://127.0.0.1:\(port)")
            #expect(files.count == 300)
            #expect(Set(files.map(\.displayName)) == Set(sources.keys))
            for file in files {
                #expect(file.hash == Self.md5(sources[file.displayName] ?? Data()), "\(file.displayName)")
            }
            #expect(trash.isEmpty, "\(trash.map(\.displayName))")
        }
    }

    @Test("--write-back: the mount is killed while a program writes file after file; every closed file is saved once, the open one never")
    func killDuringWriteBackCopy() async throws {
        try await Self.withServer { server, proxy, port in
            let root = server.directory.path
            let sources = try Self.makeSources(root + "/source", count: 300, size: 64 << 10)
            try await proxy.beginOutage(.refuse)
            let first = try await MountProcess.start(
                root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/first.log", ["--write-back"])
            // Copies the files one by one, printing each name once its close returned; the 151st
            // is left half written and open (a program still writing when the mount dies).
            let script = """
                import os, sys, time
                src, dst = sys.argv[1], sys.argv[2]
                for number, name in enumerate(sorted(os.listdir(src))):
                    data = open(os.path.join(src, name), 'rb').read()
                    try:
                        with open(os.path.join(dst, name), 'wb') as f:
                            for i in range(0, len(data), 16384):
                                f.write(data[i:i + 16384])
                                if number == 150 and i >= len(data) // 2:
                                    print('open', flush=True)
                                    time.sleep(600)
                    except OSError:
                        break
                    print(name, flush=True)
                """
            let log = root + "/copy.log"
            let copier = try Programs.start("/usr/bin/python3", ["-c", script, root + "/source", root + "/mnt"], log: log)
            do {
                try await Programs.waitFor("half of the copy", timeout: .seconds(120)) {
                    ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").hasSuffix("open\n") || !copier.isRunning
                }
            } catch {
                await first.kill()
                Glibc.kill(copier.processIdentifier, SIGKILL)
                throw error
            }
            await first.kill()
            // SIGKILL: a child may inherit SIGTERM ignored from the test process.
            Glibc.kill(copier.processIdentifier, SIGKILL)
            await Programs.wait(copier)
            let closed = Set(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)).subtracting(["open"])
            #expect(closed.count == 150)
            try await proxy.endOutage()
            let second = try await MountProcess.start(
                root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/second.log", ["--write-back"])
            do {
                try await second.sync()
            } catch {
                await second.kill()
                throw error
            }
            try await second.unmount()
            let (files, trash) = try await Self.remote("http://127.0.0.1:\(port)")
            let names = files.map(\.displayName)
            #expect(names.count == Set(names).count, "duplicates: \(names.sorted())")
            #expect(closed.isSubset(of: Set(names)), "missing: \(closed.subtracting(names).sorted())")
            // The file left open is never saved; whatever is saved is whole.
            #expect(Set(names).subtracting(closed).isEmpty, "extra: \(Set(names).subtracting(closed).sorted())")
            for file in files {
                #expect(file.hash == Self.md5(sources[file.displayName] ?? Data()), "\(file.displayName) is not whole")
            }
            #expect(trash.isEmpty)
        }
    }

    @Test("default mode: the mount is killed during a 200 MB cp; cp fails and nothing of the file is left anywhere")
    func killDuringDefaultCopy() async throws {
        try await Self.withServer { server, _, port in
            let root = server.directory.path
            let source = root + "/big.bin"
            try Data.random(200_000_000).write(to: URL(fileURLWithPath: source))
            let first = try await MountProcess.start(
                root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/first.log")
            let copy = try Programs.start("/bin/cp", [source, root + "/mnt/big.bin"], log: root + "/cp.log")
            do {
                try await Programs.waitFor("the copy to be under way", timeout: .seconds(60)) {
                    let size = (try? FileManager.default.attributesOfItem(atPath: root + "/mnt/big.bin")[.size] as? NSNumber)?.int64Value ?? 0
                    return size > 40_000_000 || !copy.isRunning
                }
            } catch {
                await first.kill()
                throw error
            }
            #expect(copy.isRunning, "cp finished before the kill")
            await first.kill()
            await Programs.wait(copy)
            #expect(copy.terminationStatus != 0)
            let second = try await MountProcess.start(
                root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/second.log",
                ["--log-level", "debug"])
            do {
                try await second.sync()
                #expect(try await second.sh("ls -A").output.isEmpty)
            } catch {
                await second.kill()
                throw error
            }
            try await second.unmount()
            let (files, trash) = try await Self.remote("http://127.0.0.1:\(port)")
            #expect(files.isEmpty, "\(files.map(\.displayName))")
            #expect(trash.isEmpty)
            let log = (try? String(contentsOfFile: root + "/second.log", encoding: .utf8)) ?? ""
            #expect(log.contains("'big.bin' was being written when mediafs stopped"), "\(log)")
            // Its tus upload was terminated: the server holds no upload still open.
            let query = "import sqlite3; print(sqlite3.connect('\(root)/mediafs.sqlite').execute(\"select count(*) from upload where state = 'active'\").fetchone()[0])"
            let open = try await Programs.run("/usr/bin/python3", ["-c", query])
            #expect(open.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(open.output)\n\(log)")
        }
    }

    @Test("the server stops while the next mount resumes, and starts again: every file is saved once")
    func serverStopsDuringRecovery() async throws {
        let port = try Programs.freePort()
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let proxy = try await FaultProxy.start(targetPort: port, logger: logger)
        try await TemporaryDirectory.with(prefix: "mediafs-crash") { directory in
            let root = directory.path
            var configuration = MediaServerConfiguration(
                dataDirectory: root + "/server", host: "127.0.0.1", port: port, apiKey: TestMediaServer.apiKey)
            configuration.publicURL = "http://127.0.0.1:\(proxy.port)"
            var server = try await MediaServer.start(configuration, logger: logger)
            do {
                let sources = try Self.makeSources(root + "/source", count: 120, size: 256 << 10)
                try await proxy.beginOutage(.refuse)
                let first = try await MountProcess.start(
                    root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/first.log",
                    ["--write-back"])
                do {
                    let rsync = try await Programs.run("/usr/bin/rsync", ["-a", root + "/source/", root + "/mnt/"])
                    #expect(rsync.status == 0, "\(rsync.output)")
                } catch {
                    await first.kill()
                    throw error
                }
                await first.kill()
                try await proxy.endOutage()
                let second = try await MountProcess.start(
                    root + "/mnt", server: "http://127.0.0.1:\(port)", cache: root + "/cache", state: root + "/state", log: root + "/second.log",
                    ["--write-back", "--transfers", "2"])
                do {
                    // The server goes away while the queue resumes, and comes back.
                    await server.stop()
                    server = try await MediaServer.start(configuration, logger: logger)
                    try await second.sync()
                } catch {
                    await second.kill()
                    throw error
                }
                try await second.unmount()
                let client = MediaManagerClient(
                    configuration: .init(baseURL: "http://127.0.0.1:\(port)", apiKey: TestMediaServer.apiKey, siteID: nil),
                    httpClient: HTTPClient.shared, logger: logger)
                let files = try await client.files.list(parentFolderId: FolderID.mediaRoot, limit: 1000).files
                #expect(files.count == sources.count, "\(files.map(\.displayName).sorted())")
                #expect(Set(files.map(\.displayName)) == Set(sources.keys))
                for file in files {
                    #expect(file.hash == Self.md5(sources[file.displayName] ?? Data()), "\(file.displayName)")
                }
                #expect(try await client.files.listDeleted(limit: 1000).files.isEmpty)
            } catch {
                await server.stop()
                try? await proxy.stop()
                throw error
            }
            await server.stop()
        }
        try await proxy.stop()
    }
}
