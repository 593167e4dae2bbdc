import Foundation
import MediaManager
import MediaServerTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// POSIX behaviour a local filesystem has: permissions and ownership for other users, modes kept
/// per file, truncate(2), atime apart from mtime, and the error codes of the usual edge cases,
/// each compared with what a local directory answers.
@Suite("POSIX semantics through real FUSE mounts", .serialized)
struct PosixTests {
    /// Runs as another user (no supplementary groups).
    static func asUser(_ uid: Int, _ gid: Int, _ command: String) -> String {
        "setpriv --reuid=\(uid) --regid=\(gid) --clear-groups sh -c '\(command)'"
    }

    @Test("a directory chmod'ed 0777 lets another user create files and directories there, owned by that user; across a remount")
    func otherUserInOpenDirectory() async throws {
        try await TestMediaServer.with { server in
            try await MountFixture.mounted(server: server, options: ["allow_other"]) { mount in
                try await mount.sh("mkdir shared && chmod 0777 shared && mkdir closed")
                #expect(try await mount.sh("stat -c %a shared").output.hasPrefix("777"))
                let created = try await mount.sh(Self.asUser(4242, 4343, "printf hi > shared/mine.txt && mkdir shared/sub && printf x > shared/sub/deep.txt"), expect: nil)
                #expect(created.status == 0, "\(created.output)")
                #expect(
                    try await mount.sh("stat -c '%u:%g %a %n' shared/mine.txt shared/sub shared/sub/deep.txt").lines
                        == ["4242:4343 644 shared/mine.txt", "4242:4343 755 shared/sub", "4242:4343 644 shared/sub/deep.txt"])
                // A directory it may not write stays closed to it.
                let refused = try await mount.sh(Self.asUser(4242, 4343, "printf no > closed/x.txt"), expect: nil)
                #expect(refused.status != 0 && refused.output.contains("Permission denied"), "\(refused.output)")
                // Once the kernel's and the listing's caches expire, the mode is still there.
                try await Programs.waitFor("the listing to expire", timeout: .seconds(30)) {
                    let again = try? await mount.sh(Self.asUser(4242, 4343, "printf again > shared/later.txt"), expect: nil)
                    return again?.status == 0
                }
            }
            try await MountFixture.mounted(server: server, options: ["allow_other"]) { mount in
                #expect(try await mount.sh("stat -c '%a %U' shared").output.hasPrefix("777 root"))
                #expect(try await mount.sh("stat -c '%u:%g %a' shared/mine.txt shared/sub").lines == ["4242:4343 644", "4242:4343 755"])
                let after = try await mount.sh(Self.asUser(4242, 4343, "printf after > shared/after.txt && cat shared/after.txt"), expect: nil)
                #expect(after.status == 0 && after.output == "after", "\(after.output)")
                #expect(try await mount.sh("stat -c '%u:%g' shared/after.txt").output.hasPrefix("4242:4343"))
            }
        }
    }

    @Test("chmod of one file changes that file only: empty files, files being written, saved files; across a remount")
    func modesStayPerFile() async throws {
        try await TestMediaServer.with { server in
            try await MountFixture.mounted(server: server) { mount in
                try await mount.sh("touch e1 e2 e3 && printf one > s1 && printf two > s2 && mkdir d1 d2")
                try await mount.sh("chmod 600 e1 && chmod 640 s1 && chmod 700 d1")
                let script = """
                    import os
                    f = open('w1', 'wb'); f.write(b'x' * 1000); f.flush()
                    os.chmod('w1', 0o604)
                    g = open('w2', 'wb'); g.write(b'y'); g.flush()
                    print(oct(os.stat('w2').st_mode & 0o777), oct(os.stat('w1').st_mode & 0o777))
                    f.close(); g.close()
                    """
                #expect(try await mount.sh("python3 -c \"\(script)\"").output.hasPrefix("0o644 0o604"))
                let expected = ["600 e1", "644 e2", "644 e3", "640 s1", "644 s2", "700 d1", "755 d2", "604 w1", "644 w2"]
                #expect(try await mount.sh("stat -c '%a %n' e1 e2 e3 s1 s2 d1 d2 w1 w2").lines == expected)
                try await mount.sh("getfattr -n user.mediafs.sync . > /dev/null")
                #expect(try await mount.sh("stat -c '%a %n' e1 e2 e3 s1 s2 d1 d2 w1 w2").lines == expected)
            }
            try await MountFixture.mounted(server: server) { mount async throws in
                #expect(
                    try await mount.sh("stat -c '%a %n' e1 e2 e3 s1 s2 d1 d2 w1 w2").lines
                        == ["600 e1", "644 e2", "644 e3", "640 s1", "644 s2", "700 d1", "755 d2", "604 w1", "644 w2"])
            }
        }
    }

    @Test("truncate(2) of a file that is not open: down, up, to zero; saved and being written; across a remount")
    func truncateUnopened() async throws {
        try await TestMediaServer.with { server in
            try await MountFixture.mounted(server: server) { mount in
                try await mount.sh("printf 0123456789 > t.txt && printf abc > u.txt")
                let root = mount.mountpoint
                let results = await Posix.offPool {
                    [Posix.truncate(root + "/t.txt", 4), Posix.truncate(root + "/u.txt", 6), Posix.truncate(root + "/missing", 1)]
                }
                #expect(results == [0, 0, ENOENT])
                #expect(try await mount.sh("cat t.txt").output == "0123")
                #expect(try await mount.sh("od -An -c u.txt | tr -s ' '").output.trimmingCharacters(in: .whitespacesAndNewlines) == "a b c \\0 \\0 \\0")
                #expect(await Posix.offPool { Posix.truncate(root + "/t.txt", 0) } == 0)
                #expect(try await mount.sh("stat -c %s t.txt").output.hasPrefix("0"))
            }
            try await MountFixture.mounted(server: server) { mount async throws in
                #expect(try await mount.sh("stat -c %s t.txt u.txt").lines == ["0", "6"])
                #expect(try await mount.remoteFiles()["u.txt"]?.sizeInBytes == 6)
            }
        }
    }

    @Test("atime and mtime are kept apart: set separately, shown separately; files, saved files, directories; across a remount")
    func accessTimeApartFromModificationTime() async throws {
        try await TestMediaServer.with { server in
            try await MountFixture.mounted(server: server) { mount in
                try await mount.sh("printf x > saved.txt && mkdir dir")
                try await mount.sh("touch -a -d '2001-01-01 00:00:00 UTC' saved.txt dir && touch -m -d '2002-02-02 00:00:00 UTC' saved.txt dir")
                #expect(try await mount.sh("stat -c '%X %Y' saved.txt dir").lines == ["978307200 1012608000", "978307200 1012608000"])
                // Being written: utimensat through the open file.
                let script = """
                    import os
                    f = open('open.bin', 'wb'); f.write(b'data'); f.flush()
                    os.utime('open.bin', (1000000000, 1100000000))
                    st = os.stat('open.bin'); print(int(st.st_atime), int(st.st_mtime))
                    f.close()
                    """
                #expect(try await mount.sh("python3 -c \"\(script)\"").output.hasPrefix("1000000000 1100000000"))
                try await mount.sh("getfattr -n user.mediafs.sync . > /dev/null")
                #expect(try await mount.sh("stat -c '%X %Y' open.bin").output.hasPrefix("1000000000 1100000000"))
            }
            try await MountFixture.mounted(server: server) { mount async throws in
                #expect(
                    try await mount.sh("stat -c '%X %Y' saved.txt dir open.bin").lines
                        == ["978307200 1012608000", "978307200 1012608000", "1000000000 1100000000"])
            }
        }
    }

    /// One row of the error table: an operation on paths of the fixture tree, and the errno a
    /// local filesystem (Linux) answers.
    struct ErrorCase: Sendable, CustomStringConvertible {
        let operation: String
        let paths: [String]
        let expected: Int32
        var description: String { "\(operation) \(paths.joined(separator: " → ")) → \(Posix.name(expected))" }

        /// Runs the operation under `root`; returns 0 or its errno.
        func run(under root: String) -> Int32 {
            let full = paths.map { root + "/" + $0 }
            switch operation {
            case "mkdir": return Posix.mkdir(full[0])
            case "rmdir": return Posix.rmdir(full[0])
            case "unlink": return Posix.unlink(full[0])
            case "rename": return Posix.rename(full[0], full[1])
            case "stat":
                if case .failure(let error) = Posix.status(full[0]) { return error.code }
                return 0
            case "open(O_RDONLY)": return Posix.openClose(full[0], O_RDONLY)
            case "open(O_WRONLY)": return Posix.openClose(full[0], O_WRONLY)
            case "open(O_CREAT)": return Posix.openClose(full[0], O_WRONLY | O_CREAT)
            case "open(O_CREAT|O_EXCL)": return Posix.openClose(full[0], O_WRONLY | O_CREAT | O_EXCL)
            default: return -1
            }
        }
    }

    static let long = String(repeating: "n", count: 256)

    /// The table (also in the README): every case fails, with the errno Linux gives.
    static let errorTable: [ErrorCase] = [
        ErrorCase(operation: "mkdir", paths: ["dir"], expected: EEXIST),
        ErrorCase(operation: "mkdir", paths: ["file"], expected: EEXIST),
        ErrorCase(operation: "mkdir", paths: ["file/x"], expected: ENOTDIR),
        ErrorCase(operation: "mkdir", paths: ["missing/x"], expected: ENOENT),
        ErrorCase(operation: "mkdir", paths: [long], expected: ENAMETOOLONG),
        ErrorCase(operation: "rmdir", paths: ["missing"], expected: ENOENT),
        ErrorCase(operation: "rmdir", paths: ["file"], expected: ENOTDIR),
        ErrorCase(operation: "rmdir", paths: ["full"], expected: ENOTEMPTY),
        ErrorCase(operation: "rmdir", paths: ["dir/."], expected: EINVAL),
        ErrorCase(operation: "rmdir", paths: [long], expected: ENAMETOOLONG),
        ErrorCase(operation: "unlink", paths: ["dir"], expected: EISDIR),
        ErrorCase(operation: "unlink", paths: ["missing"], expected: ENOENT),
        ErrorCase(operation: "unlink", paths: ["file/x"], expected: ENOTDIR),
        ErrorCase(operation: "unlink", paths: [long], expected: ENAMETOOLONG),
        ErrorCase(operation: "rename", paths: ["missing", "x"], expected: ENOENT),
        ErrorCase(operation: "rename", paths: ["file", "missing/x"], expected: ENOENT),
        ErrorCase(operation: "rename", paths: ["file", "file2/x"], expected: ENOTDIR),
        ErrorCase(operation: "rename", paths: ["missing", "file2/x"], expected: ENOTDIR),
        ErrorCase(operation: "rename", paths: ["dir", "dir/sub/inside"], expected: EINVAL),
        ErrorCase(operation: "rename", paths: ["dir", "dir/inside"], expected: EINVAL),
        ErrorCase(operation: "rename", paths: ["file", "dir"], expected: EISDIR),
        ErrorCase(operation: "rename", paths: ["empty", "file"], expected: ENOTDIR),
        ErrorCase(operation: "rename", paths: ["empty", "full"], expected: ENOTEMPTY),
        ErrorCase(operation: "rename", paths: ["full/f", "full"], expected: ENOTEMPTY),
        ErrorCase(operation: "rename", paths: ["file", long], expected: ENAMETOOLONG),
        ErrorCase(operation: "rename", paths: [long, "x"], expected: ENAMETOOLONG),
        ErrorCase(operation: "stat", paths: ["missing"], expected: ENOENT),
        ErrorCase(operation: "stat", paths: ["file/x"], expected: ENOTDIR),
        ErrorCase(operation: "stat", paths: [long], expected: ENAMETOOLONG),
        ErrorCase(operation: "open(O_RDONLY)", paths: ["missing"], expected: ENOENT),
        ErrorCase(operation: "open(O_WRONLY)", paths: ["dir"], expected: EISDIR),
        ErrorCase(operation: "open(O_CREAT)", paths: ["dir"], expected: EISDIR),
        ErrorCase(operation: "open(O_CREAT)", paths: ["missing/x"], expected: ENOENT),
        ErrorCase(operation: "open(O_CREAT)", paths: ["file/x"], expected: ENOTDIR),
        ErrorCase(operation: "open(O_CREAT)", paths: [long], expected: ENAMETOOLONG),
        ErrorCase(operation: "open(O_CREAT|O_EXCL)", paths: ["file"], expected: EEXIST),
        ErrorCase(operation: "open(O_CREAT|O_EXCL)", paths: ["dir"], expected: EEXIST),
    ]

    @Test("error codes of mkdir, rmdir, unlink, rename, stat and open in the usual edge cases, as a local directory gives them")
    func errorCodes() async throws {
        try await MountFixture.with { mount in
            let local = mount.server.directory.path + "/local"
            try FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
            let setup = "mkdir -p dir/sub full empty && printf f > full/f && printf a > file && printf b > file2"
            try await mount.sh(setup)
            _ = try await Shell.run(setup, directory: local)
            for row in Self.errorTable {
                let (mounted, reference) = await Posix.offPool { (row.run(under: mount.mountpoint), row.run(under: local)) }
                #expect(reference == row.expected, "the local directory gives \(Posix.name(reference)) for \(row)")
                #expect(mounted == reference, "the mount gives \(Posix.name(mounted)) for \(row), a local directory \(Posix.name(reference))")
            }
            // Nothing changed: every case failed.
            #expect(try await mount.sh("find . | sort").lines == (try await Shell.run("find . | sort", directory: local)).lines)
        }
    }

    @Test("statfs reports the longest name the mount accepts (255 bytes)")
    func nameMaximum() async throws {
        try await MountFixture.with { mount in
            #expect(try await mount.sh("stat -f -c %l .").output.hasPrefix("255"))
            let name = String(repeating: "m", count: 255)
            try await mount.sh("printf ok > \(name) && cat \(name) > /dev/null")
            #expect(try await mount.remoteFiles()[name] != nil)
        }
    }
}

extension PosixTests {
    @Test("a renamed or removed name is gone at once while another process lists the directory (readdirplus hands out no stale names)")
    func namesGoneWhileListed() async throws {
        try await MountFixture.with { mount in
            let root = mount.mountpoint
            let stop = StopFlag()
            let lister = Task { await Posix.offPool { ModelRunner.listUntil(stop, root: root) } }
            let problems = await Posix.offPool { () -> [String] in
                var problems: [String] = []
                for index in 0..<60 {
                    let name = "name-\(index % 4).txt"
                    let created = Posix.openWriteClose(root + "/" + name, flags: O_CREAT | O_WRONLY | O_TRUNC, Array("x".utf8))
                    let renamed = Posix.rename(root + "/" + name, root + "/renamed-\(index % 4).txt")
                    if created != 0 || renamed != 0 { problems.append("\(name): create \(Posix.name(created)), rename \(Posix.name(renamed))") }
                    if case .success = Posix.status(root + "/" + name) { problems.append("\(name) is still there after its rename") }
                    if index % 3 == 0 {
                        let removed = Posix.unlink(root + "/renamed-\(index % 4).txt")
                        if removed != 0 { problems.append("unlink renamed-\(index % 4).txt: \(Posix.name(removed))") }
                        if case .success = Posix.status(root + "/renamed-\(index % 4).txt") { problems.append("renamed-\(index % 4).txt is still there after unlink") }
                    }
                }
                return problems
            }
            stop.set()
            await lister.value
            #expect(problems.isEmpty, "\(problems.prefix(10).joined(separator: "\n"))")
        }
    }
}
