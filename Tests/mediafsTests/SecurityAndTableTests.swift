import Foundation
import Logging
import MediaServerTesting
import Testing

@testable import mediafs

#if canImport(Glibc)
import CDispatch
import Glibc
#endif

/// Key files, the shared-machine warning, mount point checks and the sd_notify datagram.
@Suite("key files, mount points, sd_notify")
struct SecurityAndTableTests {
    @Test("a key file others may read is refused with the fix; a private one is read")
    func keyFile() async throws {
        try await TemporaryDirectory.with { directory in
            let path = directory.path + "/key"
            try writeKeyFile(path, key: "IST.secret-key", mode: 0o644)
            do {
                _ = try APIKeyFile.read(path: path)
                Issue.record("a 0644 key file was read")
            } catch {
                #expect("\(error)".contains("other users"))
                #expect("\(error)".contains("chmod 600 \(path)"))
                #expect(!"\(error)".contains("secret-key"))
            }
            chmod(path, 0o640)
            #expect(throws: CommandFailure.self) { try APIKeyFile.read(path: path) }
            chmod(path, 0o600)
            #expect(try APIKeyFile.read(path: path) == "IST.secret-key")
            chmod(path, 0o400)
            #expect(try APIKeyFile.read(path: path) == "IST.secret-key")
            try writeKeyFile(path, key: "  ", mode: 0o600)
            #expect(throws: CommandFailure.self) { try APIKeyFile.read(path: path) }
            #expect(throws: CommandFailure.self) { try APIKeyFile.read(path: directory.path + "/missing") }
            #expect(throws: CommandFailure.self) { try APIKeyFile.read(path: directory.path) }
        }
    }

    @Test("the key through a descriptor")
    func keyDescriptor() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let bytes = Array("IST.piped\n".utf8)
        #expect(write(fds[1], bytes, bytes.count) == bytes.count)
        close(fds[1])
        #expect(try APIKeyFile.read(descriptor: fds[0]) == "IST.piped")
    }

    @Test("--api-key is warned about when other people log in to the machine")
    func sharedMachine() {
        let passwd = """
            root:x:0:0:root:/root:/bin/bash
            daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
            alice:x:1000:1000:Alice:/home/alice:/bin/bash
            bob:x:1001:1001:Bob:/home/bob:/bin/zsh
            svc:x:1002:1002::/var/lib/svc:/usr/sbin/nologin
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
            """
        #expect(SharedMachine.otherLoginAccounts(passwd: passwd, currentUser: 0) == ["alice", "bob"])
        #expect(SharedMachine.otherLoginAccounts(passwd: passwd, currentUser: 1000) == ["bob"])
        let warning = SharedMachine.commandLineKeyWarning(otherAccounts: ["alice", "bob"])
        #expect(warning?.contains("--api-key-file") == true)
        #expect(warning?.contains("alice") == true)
        #expect(SharedMachine.commandLineKeyWarning(otherAccounts: []) == nil)
    }

    @Test("mountinfo: escapes, stacking, the mount on top")
    func mountTable() {
        let table = MountTable(mountinfo: """
            22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw
            40 22 0:40 / /mnt/my\\040media rw,relatime shared:20 - tmpfs tmpfs rw
            41 40 0:41 / /mnt/my\\040media rw,nosuid,nodev,relatime - fuse.mediafs media-root rw,user_id=0,group_id=0
            """)
        #expect(table.entries.count == 3)
        #expect(table.top(at: "/mnt/my media") == MountTable.Entry(mountPoint: "/mnt/my media", fileSystemType: "fuse.mediafs", source: "media-root"))
        #expect(table.top(at: "/mnt") == nil)
        #expect(MountTable.unescape("a\\134b\\011") == "a\\b\t")
    }

    @Test("a non-empty directory or one already mounted is refused unless --allow-non-empty")
    func busyMountpoint() async throws {
        try await TemporaryDirectory.with { directory in
            let mountpoint = directory.path + "/mnt"
            try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
            try MountpointCheck.verify(mountpoint, allowNonEmpty: false, table: MountTable(mountinfo: ""))
            try Data("x".utf8).write(to: URL(fileURLWithPath: mountpoint + "/notes.txt"))
            do {
                try MountpointCheck.verify(mountpoint, allowNonEmpty: false, table: MountTable(mountinfo: ""))
                Issue.record("a non-empty mount point was accepted")
            } catch {
                #expect("\(error)".contains("not empty"))
                #expect("\(error)".contains("notes.txt"))
                #expect("\(error)".contains("--allow-non-empty"))
            }
            try MountpointCheck.verify(mountpoint, allowNonEmpty: true, table: MountTable(mountinfo: ""))
            let canonical = MountpointCheck.canonical(mountpoint)
            let sshfs = MountTable(mountinfo: "50 1 0:50 / \(canonical) rw - fuse.sshfs host:/x rw")
            do {
                try MountpointCheck.verify(mountpoint + "/", allowNonEmpty: false, table: sshfs)
                Issue.record("a FUSE mount point was accepted")
            } catch {
                #expect("\(error)".contains("already a mount point (fuse.sshfs"))
            }
            #expect(throws: CommandFailure.self) {
                try MountpointCheck.verify(mountpoint + "/notes.txt", allowNonEmpty: true, table: MountTable(mountinfo: ""))
            }
        }
    }

    @Test("sd_notify datagrams reach the socket named by NOTIFY_SOCKET, abstract or not")
    func notify() async throws {
        try await TemporaryDirectory.with { directory in
            for path in [directory.path + "/notify", "@mediafs-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"] {
                let socket = try NotifySocket(path: path)
                defer { socket.close() }
                let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
                notifier.ready(status: "mounted")
                let ready = try #require(socket.receive(timeout: 5))
                #expect(ready.contains("READY=1"))
                #expect(ready.contains("MAINPID=\(getpid())"))
                notifier.stopping(status: "unmounting")
                notifier.stopping(status: "again")
                #expect(try #require(socket.receive(timeout: 5)).hasPrefix("STOPPING=1"))
                #expect(socket.receive(timeout: 0.2) == nil)
            }
            // Without NOTIFY_SOCKET nothing is sent and nothing fails.
            SystemdNotifier(environment: [:]).ready(status: "x")
        }
    }
}

@Suite("log destinations")
struct LogDestinationTests {
    @Test("the journal is chosen when stderr is the stream JOURNAL_STREAM names; --log-file wins; syslog when detached")
    func choice() throws {
        var status = stat()
        #expect(fstat(STDERR_FILENO, &status) == 0)
        #expect(LogDestination.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)"]))
        #expect(!LogDestination.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino &+ 1)"]))
        #expect(!LogDestination.standardErrorIsJournal(environment: [:]))
        #expect(LogDestination.choose(logFile: "/var/log/m.log", detached: true) == .file("/var/log/m.log"))
        if !LogDestination.standardErrorIsJournal() {
            #expect(LogDestination.choose(logFile: nil, detached: true) == .syslog)
            #expect(LogDestination.choose(logFile: nil, detached: false) == .standardError)
        }
    }

    @Test("log lines: timestamped in a file, with the syslog priority for the journal")
    func lines() async throws {
        try await TemporaryDirectory.with { directory in
            let path = directory.path + "/log"
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            let sink = LogSink(fd: fd, ownsDescriptor: true)
            let file = Logger(label: "mediafs") { LineLogHandler(label: $0, sink: sink, format: .timestamped, logLevel: .info) }
            file.info("Mounted", metadata: ["mountpoint": "/mnt/media"])
            file.debug("not shown")
            let journal = Logger(label: "mediafs") { LineLogHandler(label: $0, sink: sink, format: .journal, logLevel: .debug) }
            journal.warning("Draining took long")
            journal.error("Mounting failed")
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines.count == 3)
            #expect(lines[0].hasSuffix(" info mediafs: Mounted mountpoint=/mnt/media"), "\(lines[0])")
            #expect(lines[0].first?.isNumber == true && lines[0].contains("T") && lines[0].contains("Z "))
            #expect(lines[1] == "<4>Draining took long")
            #expect(lines[2] == "<3>Mounting failed")
        }
    }
}

/// A datagram socket standing in for systemd's notification socket.
final class NotifySocket: @unchecked Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard bound == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
    }

    /// The next datagram, or nil after `timeout` seconds.
    func receive(timeout: Double) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    func close() {
        _ = Glibc.close(fd)
    }
}
