import ArgumentParser
import Foundation
import Testing

@testable import mediafs

/// The `-o` spelling of `mediafs mount` and the mount helper's command lines.
@Suite("mount options and invocations")
struct MountOptionTests {
    /// A command with options `mediafs mount` does not have, as the lead will add them.
    struct LaterCommand: ParsableArguments {
        @Option(name: .long, help: "x") var writeBack: String?
        @Option(name: .long, help: "x") var transfers: Int = 4
        @Flag(name: .long, help: "x") var cacheEverything = false
        @Option(name: .long, help: .private) var internalFd: Int32?
        @Argument var mountpoint: String
    }

    @Test("every visible option of mount has an -o spelling derived from its declaration")
    func derivedFromDeclarations() throws {
        let spelling = MountOptionSpelling.mount
        let expected: [String: MountOptionSpelling.Meaning] = [
            "api_key_file": .option(long: "api-key-file"), "server": .option(long: "server"), "site_id": .option(long: "site-id"),
            "uid": .option(long: "uid"), "gid": .option(long: "gid"), "umask": .option(long: "umask"),
            "file_mode": .option(long: "file-mode"), "dir_mode": .option(long: "dir-mode"),
            "allow_other": .flag(long: "allow-other"), "read_only": .flag(long: "read-only"), "ro": .flag(long: "read-only"),
            "allow_non_empty": .flag(long: "allow-non-empty"), "nonempty": .flag(long: "allow-non-empty"),
            "drain_timeout": .option(long: "drain-timeout"), "log_file": .option(long: "log-file"),
            "cache_dir": .option(long: "cache-dir"), "attr_ttl": .option(long: "attr-ttl"), "foreground": .flag(long: "foreground"),
            "daemon": .flag(long: "daemon"), "root_folder": .option(long: "root-folder"), "write_back": .flag(long: "write-back"), "transfers": .option(long: "transfers"),
            "cache_max_size": .option(long: "cache-max-size"),
        ]
        for (name, meaning) in expected {
            #expect(spelling.declared[name] == meaning, "\(name)")
        }
        // Private options (the daemon's descriptors) and help have none.
        for name in ["ready_fd", "api_key_fd", "helper", "sloppy", "help"] {
            #expect(spelling.declared[name] == nil, "\(name)")
        }
        // Every long option the help shows is spelled, so none is forgotten.
        let visible = DeclaredArguments.of(MountCommand.self).filter { $0.visible && $0.kind != .positional }.flatMap(\.longNames)
        #expect(visible.count > 20)
        for long in visible where long != "help" {
            #expect(spelling.declared[long.replacingOccurrences(of: "-", with: "_")] != nil, "\(long)")
        }
    }

    @Test("an option added later gets its -o spelling with no code")
    func laterOptions() throws {
        let spelling = MountOptionSpelling(command: LaterCommand.self)
        #expect(spelling.declared["write_back"] == .option(long: "write-back"))
        #expect(spelling.declared["transfers"] == .option(long: "transfers"))
        #expect(spelling.declared["cache_everything"] == .flag(long: "cache-everything"))
        #expect(spelling.declared["internal_fd"] == nil)
        #expect(spelling.declared["mountpoint"] == nil)
        let expanded = try spelling.expand(["/mnt", "-o", "write_back=always,transfers=8,cache_everything,nosuid"])
        #expect(expanded == ["/mnt", "--write-back", "always", "--transfers", "8", "--cache-everything", "-o", "nosuid"])
        #expect(try LaterCommand.parse(Array(expanded.dropLast(2))).transfers == 8)
    }

    @Test("-o words become flags; FUSE options stay for FUSE; mount(8)'s are dropped")
    func expand() throws {
        let expanded = try MountOptionSpelling.mount.expand([
            "mount", "/mnt/media", "-o",
            "_netdev,nofail,x-systemd.automount,defaults,rw,server=https://www.wixapis.com,site_id=abc,api_key_file=/etc/mediafs/key,uid=1000,gid=1000,allow_other,nosuid,nodev,noatime,ro",
            "-oumask=027",
        ])
        #expect(
            expanded == [
                "mount", "/mnt/media", "--server", "https://www.wixapis.com", "--site-id", "abc", "--api-key-file", "/etc/mediafs/key",
                "--uid", "1000", "--gid", "1000", "--allow-other", "--read-only", "--umask", "027", "-o", "nosuid,nodev,noatime",
            ])
        let command = try MountCommand.parse(Array(expanded.dropFirst()))
        #expect(command.uid == "1000")
        #expect(command.allowOther)
        #expect(command.readOnly)
        #expect(command.fuseOptions == ["nosuid", "nodev", "noatime", "allow_other", "ro"])
        #expect(try command.ownership == Ownership(uid: "1000", gid: "1000", umask: "027", fileMode: nil, directoryMode: nil))
    }

    @Test("unknown, valueless and refused options are errors that name them")
    func errors() throws {
        let spelling = MountOptionSpelling.mount
        #expect(throws: MountOptionError.self) { try spelling.expand(["mount", "/m", "-o", "uid=1,frobnicate"]) }
        do {
            _ = try spelling.expand(["mount", "/m", "-o", "frobnicate=3"])
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("unknown mount option 'frobnicate'"))
        }
        do {
            _ = try spelling.expand(["mount", "/m", "-o", "uid"])
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("'uid' needs a value"))
        }
        do {
            _ = try spelling.expand(["mount", "/m", "-o", "api_key=secret"])
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("api_key_file"))
            #expect(!"\(error)".contains("secret"))
        }
        #expect(try spelling.translate("read_only=no") == .ignored)
        #expect(throws: MountOptionError.self) { try spelling.translate("read_only=maybe") }
        // mount(8) -s: unknown options are dropped.
        #expect(try spelling.expand(["mount", "/m", "-o", "frobnicate,uid=3"], sloppy: true) == ["mount", "/m", "--uid", "3"])
        // An -o that reaches the command unexpanded is checked too.
        #expect(throws: (any Error).self) { try MountCommand.parse(["/m", "-o", "uid=3"]) }
    }

    @Test("mount.fuse3's form and mount(8)'s helper form become mount commands")
    func helperInvocations() throws {
        let fromMountFuse = try Invocation(
            program: "mediafs", arguments: ["media-root", "/mnt/media", "-o", "rw,server=http://h,api_key_file=/k,uid=5,dev,suid"])
        #expect(fromMountFuse.isMountHelper)
        #expect(
            fromMountFuse.arguments == [
                "mount", "/mnt/media", "--root-folder", "media-root", "--helper", "--server", "http://h", "--api-key-file", "/k", "--uid", "5", "-o",
                "fsname=media-root,dev,suid",
            ])
        let command = try MountCommand.parse(Array(fromMountFuse.arguments.dropFirst()))
        #expect(command.detaches)
        #expect(command.rootFolder == "media-root")

        let direct = try Invocation(
            program: "mount.fuse.mediafs", arguments: ["folder-1", "/mnt/x", "-n", "-v", "-t", "fuse.mediafs", "-o", "_netdev,foreground"])
        #expect(direct.arguments == ["mount", "/mnt/x", "--root-folder", "folder-1", "--helper", "--foreground", "-o", "fsname=folder-1"])
        #expect(try !MountCommand.parse(Array(direct.arguments.dropFirst())).detaches)

        let fake = try Invocation(program: "mount.fuse.mediafs", arguments: ["media-root", "/mnt/x", "-f", "-o", "uid=1"])
        #expect(fake.fake)
        #expect(throws: HelperUsageError.self) {
            try Invocation(program: "mediafs", arguments: ["media-root", "/dev/fd/7", "-o", "dev,suid"])
        }
        // Typed commands are left alone.
        #expect(try Invocation(program: "mediafs", arguments: ["upload", "a", "b", "-o", "x"]).arguments == ["upload", "a", "b", "-o", "x"])
        #expect(try !Invocation(program: "mediafs", arguments: ["uplaod", "a.txt", "b.txt"]).isMountHelper)
        #expect(try Invocation(program: "mediafs", arguments: ["--help"]).arguments == ["--help"])
    }

    @Test("the detached child's command line: foreground, descriptors, and no key")
    func childArguments() {
        let child = MountCommand.childArguments(
            ["mount", "/mnt/m", "--daemon", "--api-key", "s3cret", "--api-key=s3cret2", "--uid", "5", "-o", "nosuid", "--helper"],
            passesKey: true)
        #expect(child == ["mount", "--foreground", "--ready-fd", "3", "--api-key-fd", "4", "/mnt/m", "--uid", "5", "-o", "nosuid"])
        #expect(!child.joined().contains("s3cret"))
    }

    @Test("--uid, --gid, --umask, --file-mode, --dir-mode")
    func ownership() throws {
        let masked = try Ownership(uid: "4242", gid: "root", umask: "027", fileMode: nil, directoryMode: nil)
        #expect(masked == Ownership(uid: 4242, gid: 0, fileMode: 0o640, directoryMode: 0o750))
        let explicit = try Ownership(uid: "root", gid: nil, umask: "077", fileMode: "0444", directoryMode: "0o555")
        #expect(explicit.uid == 0)
        #expect(explicit.fileMode == 0o444)
        #expect(explicit.directoryMode == 0o555)
        let defaults = try Ownership(uid: nil, gid: nil, umask: nil, fileMode: nil, directoryMode: nil)
        #expect(defaults.fileMode == 0o644 && defaults.directoryMode == 0o755 && defaults.uid == getuid())
        #expect(throws: ValidationError.self) { try Ownership(uid: "no-such-user-here", gid: nil, umask: nil, fileMode: nil, directoryMode: nil) }
        #expect(throws: ValidationError.self) { try Ownership(uid: nil, gid: nil, umask: "999", fileMode: nil, directoryMode: nil) }
        #expect(throws: (any Error).self) { try MountCommand.parse(["/m", "--file-mode", "rw-r--r--"]) }
    }
}
