import Dispatch
import Foundation
import MediaServer
import MediaServerTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `mediafs` mounted the way a system tool is: from an fstab line through mount(8) and
/// mount.fuse3, detached with readiness, with ownership options and a key file. Each test
/// unmounts and stops what it started, whatever happens.
@Suite("mount as a system tool", .serialized, .enabled(if: getuid() == 0, "mount(8) and other users' access need root"))
struct SystemMountTests {
    /// A server, a private key file, an empty mount point, and state and cache directories of
    /// the test's own.
    struct Setup {
        let server: TestMediaServer
        let mountpoint: String
        let keyFile: String
        let log: String
        let environment: [String: String]
        var directory: String { server.directory.path }

        static func with(_ body: (Setup) async throws -> Void) async throws {
            try await TestMediaServer.with { server in
                let directory = server.directory.path
                // Other users must reach the mount point inside it (the server keeps its data
                // directory private, 0700; what it holds stays 0700/0600).
                chmod(directory, 0o755)
                let mountpoint = directory + "/mnt"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                let keyFile = directory + "/key"
                try writeKeyFile(keyFile, key: TestMediaServer.apiKey, mode: 0o600)
                let environment = [
                    "XDG_STATE_HOME": directory + "/state", "XDG_CACHE_HOME": directory + "/cache",
                    "MEDIAFS_API_KEY": "", "MEDIAFS_SERVER": "",
                ]
                let setup = Setup(server: server, mountpoint: mountpoint, keyFile: keyFile, log: directory + "/mount.log", environment: environment)
                try await withMountCleanup(mountpoint) { try await body(setup) }
            }
        }

        /// Writes an fstab holding one line for the mount point, in mount.fuse3's `PROGRAM#SOURCE`
        /// form with type `fuse`. (mount(8) clears PATH, so for type fuse.mediafs mount.fuse3's
        /// /bin/sh finds `mediafs` only where `make install` puts it, /usr/local/bin or /usr/bin;
        /// the built binary is named by its path instead. mount.fuse3 runs both the same way.)
        func fstab(_ options: String) throws -> String {
            let path = directory + "/fstab"
            let line = "\(try Programs.mediafs)#media-root \(mountpoint) fuse \(options) 0 0\n"
            try Data("# test\n\(line)".utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// `mount -T FSTAB MOUNTPOINT`, timed.
        func mount(_ fstab: String) async throws -> (status: Int32, output: String, seconds: Double) {
            let clock = ContinuousClock()
            let start = clock.now
            let result = try await Programs.run("/bin/mount", ["-T", fstab, mountpoint], environment: environment)
            let elapsed = clock.now - start
            return (result.status, result.output, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }

        var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "(no log)" }

        func mediafs(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> (status: Int32, output: String) {
            try await Programs.run(try Programs.mediafs, arguments, environment: environment.merging(extra) { $1 })
        }

        /// Unmounts with umount(8) and waits until the daemon has exited.
        func unmount(daemon pid: Int32) async throws {
            let result = try await Programs.run("/bin/umount", [mountpoint])
            #expect(result.status == 0, "\(result.output)")
            try await Programs.waitFor("the mount process to exit", timeout: .seconds(60)) { ProcessTable.isGone(pid) }
            #expect(!Mounts.isMounted(mountpoint))
        }

        func stat(_ path: String) async throws -> String {
            try await sh("stat -c '%u %g %a' \(quoted(path))").output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test("mount -T with an fstab line: -o options set owner and modes, allow_other; umount drains and the daemon exits")
    func fstabMount() async throws {
        try await Setup.with { setup in
            let existing = setup.directory + "/existing.txt"
            try Data("existing content".utf8).write(to: URL(fileURLWithPath: existing))
            let upload = try await setup.mediafs(
                ["upload", existing], environment: ["MEDIAFS_SERVER": setup.server.baseURL, "MEDIAFS_API_KEY": TestMediaServer.apiKey])
            #expect(upload.status == 0, "\(upload.output)")

            let fstab = try setup.fstab(
                "_netdev,nofail,nosuid,nodev,noatime,x-systemd.automount,server=\(setup.server.baseURL),api_key_file=\(setup.keyFile),"
                    + "uid=4242,gid=4343,umask=027,allow_other,log_file=\(setup.log),attr_ttl=0.2,dir_ttl=0.2,drain_timeout=20")
            let mounted = try await setup.mount(fstab)
            try #require(mounted.status == 0, "\(mounted.output)\n\(setup.logText)")
            #expect(mounted.output.isEmpty, "a mount helper succeeds silently: \(mounted.output)")
            #expect(Mounts.types(at: setup.mountpoint) == ["fuse.mediafs"])
            let pid = try #require(ProcessTable.daemon(of: setup.mountpoint))

            // Existing items: the configured owner, group and umask.
            #expect(try await setup.stat(setup.mountpoint) == "4242 4343 750")
            #expect(try await setup.stat(setup.mountpoint + "/existing.txt") == "4242 4343 640")
            // New items belong to whoever created them (root here), with the creator's mode, as on
            // a local filesystem; --uid/--gid/--umask cover items with no stored attributes.
            let created = try await sh("umask 077 && printf hello > \(quoted(setup.mountpoint))/new.txt && mkdir \(quoted(setup.mountpoint))/newdir")
            #expect(created.status == 0, "\(created.output)")
            #expect(try await setup.stat(setup.mountpoint + "/new.txt") == "0 0 600")
            #expect(try await setup.stat(setup.mountpoint + "/newdir") == "0 0 700")
            // allow_other lets the owner in; the mode keeps a stranger out.
            let owner = try await sh("setpriv --reuid=4242 --regid=4343 --clear-groups cat \(quoted(setup.mountpoint))/existing.txt")
            #expect(owner.status == 0 && owner.output == "existing content", "\(owner.output)")
            let stranger = try await sh("setpriv --reuid=4444 --regid=4444 --clear-groups cat \(quoted(setup.mountpoint))/existing.txt")
            #expect(stranger.status != 0 && stranger.output.contains("Permission denied"), "\(stranger.output)")
            // The mount options reached the kernel.
            let options = try await sh("findmnt -no OPTIONS \(quoted(setup.mountpoint))")
            #expect(options.output.contains("nosuid") && options.output.contains("nodev") && options.output.contains("noatime"), "\(options.output)")

            try await setup.unmount(daemon: pid)
            let files = try await remoteRootFiles(setup.server.baseURL, key: TestMediaServer.apiKey)
            let url = try #require(files["new.txt"], "new.txt is in the Media Manager")
            #expect(try await Programs.run("/usr/bin/curl", ["-sf", url]).output == "hello")
            #expect(setup.logText.contains("Drained"), "\(setup.logText)")
            #expect(!setup.logText.contains(TestMediaServer.apiKey))
        }
    }

    @Test("readiness: a refused key, an unreachable server or an unknown option fail mount at once, with the reason")
    func readinessFailures() async throws {
        try await Setup.with { setup in
            let wrongKey = setup.directory + "/wrong-key"
            try writeKeyFile(wrongKey, key: "not-the-key", mode: 0o600)
            let refused = try await setup.mount(setup.fstab("server=\(setup.server.baseURL),api_key_file=\(wrongKey),log_file=\(setup.log)"))
            #expect(refused.status != 0)
            #expect(refused.output.contains("refused the API key (401)"), "\(refused.output)")
            #expect(refused.seconds < 20, "took \(refused.seconds) s")

            let port = try Programs.freePort()
            let unreachable = try await setup.mount(setup.fstab("server=http://127.0.0.1:\(port),api_key_file=\(setup.keyFile)"))
            #expect(unreachable.status != 0)
            #expect(unreachable.output.contains("Cannot reach the Media Manager at http://127.0.0.1:\(port)"), "\(unreachable.output)")
            #expect(unreachable.seconds < 20, "took \(unreachable.seconds) s")

            let unknown = try await setup.mount(setup.fstab("server=\(setup.server.baseURL),api_key_file=\(setup.keyFile),frobnicate=2"))
            #expect(unknown.status != 0)
            #expect(unknown.output.contains("unknown mount option 'frobnicate'"), "\(unknown.output)")

            #expect(!Mounts.isMounted(setup.mountpoint))
            try await Programs.waitFor("failed mount processes to exit", timeout: .seconds(20)) {
                ProcessTable.daemon(of: setup.mountpoint) == nil
            }
        }
    }

    @Test("a busy mount point: a second mount on a mediafs mount and a mount on a non-empty directory are refused")
    func busyMountpoint() async throws {
        try await Setup.with { setup in
            let fstab = try setup.fstab("server=\(setup.server.baseURL),api_key_file=\(setup.keyFile)")
            let first = try await setup.mount(fstab)
            try #require(first.status == 0, "\(first.output)")
            let pid = try #require(ProcessTable.daemon(of: setup.mountpoint))
            let second = try await setup.mount(fstab)
            #expect(second.status != 0)
            #expect(second.output.contains("already a mediafs mount"), "\(second.output)")
            let direct = try await setup.mediafs(["mount", setup.mountpoint, "--daemon"])
            #expect(direct.status != 0 && direct.output.contains("already a mediafs mount"), "\(direct.output)")
            #expect(Mounts.types(at: setup.mountpoint) == ["fuse.mediafs"])
            try await setup.unmount(daemon: pid)

            try Data("mine".utf8).write(to: URL(fileURLWithPath: setup.mountpoint + "/local.txt"))
            let nonEmpty = try await setup.mount(fstab)
            #expect(nonEmpty.status != 0)
            #expect(nonEmpty.output.contains("is not empty") && nonEmpty.output.contains("local.txt"), "\(nonEmpty.output)")
            #expect(!Mounts.isMounted(setup.mountpoint))
            // Asked for, it mounts over the files, which come back afterwards.
            let over = try await setup.mount(setup.fstab("server=\(setup.server.baseURL),api_key_file=\(setup.keyFile),nonempty"))
            #expect(over.status == 0, "\(over.output)")
            let overPid = try #require(ProcessTable.daemon(of: setup.mountpoint))
            #expect(!FileManager.default.fileExists(atPath: setup.mountpoint + "/local.txt"))
            try await setup.unmount(daemon: overPid)
            #expect(FileManager.default.fileExists(atPath: setup.mountpoint + "/local.txt"))
        }
    }

    @Test("--api-key-file: mode 0644 is refused, 0600 works; the key is absent from the daemon's command line and environment")
    func keyFileAndDaemon() async throws {
        try await Setup.with { setup in
            let loose = setup.directory + "/loose-key"
            try writeKeyFile(loose, key: TestMediaServer.apiKey, mode: 0o644)
            let refused = try await setup.mediafs(["mount", setup.mountpoint, "--daemon", "--server", setup.server.baseURL, "--api-key-file", loose])
            #expect(refused.status != 0)
            #expect(refused.output.contains("chmod 600 \(loose)"), "\(refused.output)")
            #expect(!Mounts.isMounted(setup.mountpoint))

            let mounted = try await setup.mediafs([
                "mount", setup.mountpoint, "--daemon", "--server", setup.server.baseURL, "--api-key-file", setup.keyFile, "--uid", "4242",
                "--log-file", setup.log,
            ])
            try #require(mounted.status == 0, "\(mounted.output)\n\(setup.logText)")
            #expect(mounted.output.contains("mounted the Media Manager at \(setup.server.baseURL) on \(setup.mountpoint)"), "\(mounted.output)")
            let pid = try #require(ProcessTable.daemon(of: setup.mountpoint))
            #expect(!ProcessTable.commandLine(pid).joined(separator: " ").contains(TestMediaServer.apiKey))
            #expect(!ProcessTable.environment(pid).joined(separator: " ").contains(TestMediaServer.apiKey))
            #expect(ProcessTable.commandLine(pid).contains("--foreground"))
            // allow_other only when asked: even the configured owner is kept out without it.
            let owner = try await sh("setpriv --reuid=4242 --regid=4242 --clear-groups ls \(quoted(setup.mountpoint))")
            #expect(owner.status != 0 && owner.output.contains("Permission denied"), "\(owner.output)")
            try await setup.unmount(daemon: pid)

            // A key on the command line or in the environment of the starter stays out of the daemon's.
            for (arguments, environment) in [
                (["--api-key", TestMediaServer.apiKey], [String: String]()), ([], ["MEDIAFS_API_KEY": TestMediaServer.apiKey]),
            ] {
                let started = try await setup.mediafs(
                    ["mount", setup.mountpoint, "--daemon", "--server", setup.server.baseURL] + arguments, environment: environment)
                try #require(started.status == 0, "\(started.output)")
                let daemon = try #require(ProcessTable.daemon(of: setup.mountpoint))
                #expect(!ProcessTable.commandLine(daemon).joined(separator: " ").contains(TestMediaServer.apiKey))
                #expect(!ProcessTable.environment(daemon).joined(separator: " ").contains(TestMediaServer.apiKey))
                #expect(try await sh("ls \(quoted(setup.mountpoint))").status == 0)
                try await setup.unmount(daemon: daemon)
            }
        }
    }

    @Test("mount(8) running mount.fuse.mediafs directly, with its own flags; -f mounts nothing")
    func directHelper() async throws {
        try await Setup.with { setup in
            let helper = setup.directory + "/mount.fuse.mediafs"
            try FileManager.default.createSymbolicLink(atPath: helper, withDestinationPath: try Programs.mediafs)
            let options = "rw,_netdev,server=\(setup.server.baseURL),api_key_file=\(setup.keyFile),read_only"
            let fake = try await Programs.run(helper, ["media-root", setup.mountpoint, "-f", "-o", options], environment: setup.environment)
            #expect(fake.status == 0, "\(fake.output)")
            #expect(!Mounts.isMounted(setup.mountpoint))
            let mounted = try await Programs.run(
                helper, ["media-root", setup.mountpoint, "-n", "-v", "-t", "fuse.mediafs", "-o", options], environment: setup.environment)
            try #require(mounted.status == 0, "\(mounted.output)")
            let pid = try #require(ProcessTable.daemon(of: setup.mountpoint))
            let write = try await sh("echo x > \(quoted(setup.mountpoint))/refused.txt")
            #expect(write.status != 0 && write.output.contains("Read-only file system"), "\(write.output)")
            try await setup.unmount(daemon: pid)
        }
    }

    @Test("in the foreground under systemd: READY=1 once the mount answers, STOPPING=1 on SIGTERM, then a clean exit")
    func systemdNotify() async throws {
        try await Setup.with { setup in
            let socketPath = setup.directory + "/notify"
            let socket = try NotifySocket(path: socketPath)
            defer { socket.close() }
            let process = try Programs.start(
                try Programs.mediafs, ["mount", setup.mountpoint, "--data", setup.directory + "/embedded"], log: setup.log,
                environment: setup.environment.merging(["NOTIFY_SOCKET": socketPath]) { $1 })
            let ready = await Self.receive(socket, timeout: 60)
            #expect(ready?.contains("READY=1") == true, "\(ready ?? "nothing")\n\(setup.logText)")
            #expect(ready?.contains("MAINPID=\(process.processIdentifier)") == true)
            #expect(Mounts.types(at: setup.mountpoint) == ["fuse.mediafs"])
            process.terminate()
            let stopping = await Self.receive(socket, timeout: 30)
            #expect(stopping?.hasPrefix("STOPPING=1") == true, "\(stopping ?? "nothing")")
            await Programs.wait(process)
            #expect(process.terminationStatus == 0, "\(setup.logText)")
            #expect(!Mounts.isMounted(setup.mountpoint))
            #expect(setup.logText.contains("mediafs: unmounted"))
        }
    }

    /// A datagram, waited for off the concurrency pool.
    static func receive(_ socket: NotifySocket, timeout: Double) async -> String? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: socket.receive(timeout: timeout)) }
        }
    }
}
