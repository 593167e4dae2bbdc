import Foundation
import MediaServerTesting
import Testing

/// `mediafs mount` when the kernel mount fails: status 1, one line saying what failed and what
/// to do, and no crash (it once aborted with "free(): double free detected").
@Suite("mediafs mount failures", .serialized)
struct MountFailureTests {
    static let nobody: UInt32 = 65534

    @Test("a user without access to /dev/fuse: exit status 1 and one clear line, no abort")
    func deviceNotAccessible() async throws {
        let binary = try Programs.mediafs
        try await TestMediaServer.with { server in
            try await TemporaryDirectory.with(prefix: "mediafs-nobody") { home in
                // A home the unprivileged user owns, with a mount point in it.
                let mountpoint = home.path + "/mnt"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                for path in [home.path, mountpoint] {
                    try FileManager.default.setAttributes(
                        [.ownerAccountID: Self.nobody, .groupOwnerAccountID: Self.nobody, .posixPermissions: 0o755], ofItemAtPath: path)
                }
                // /dev/fuse made inaccessible for this user only: inside a private mount
                // namespace, an unreadable file is bound over it.
                let blocker = home.path + "/no-fuse"
                _ = FileManager.default.createFile(atPath: blocker, contents: nil, attributes: [.posixPermissions: 0])
                let script = """
                    mount --bind '\(blocker)' /dev/fuse && exec setpriv --reuid=\(Self.nobody) --regid=\(Self.nobody) --clear-groups -- \
                    '\(binary)' mount '\(mountpoint)' --server '\(server.baseURL)' --api-key '\(TestMediaServer.apiKey)'
                    """
                let environment = [
                    "HOME": home.path, "XDG_STATE_HOME": home.path + "/state", "XDG_CACHE_HOME": home.path + "/cache",
                    "XDG_DATA_HOME": home.path + "/data",
                ]
                let result = try await Programs.run(
                    "/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script], environment: environment)
                let lines = result.output.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                #expect(result.status == 1, "\(result.output)")
                for crash in ["double free", "Aborted", "Fatal error", "core dumped"] {
                    #expect(!result.output.contains(crash), "\(result.output)")
                }
                // One line tells what failed and what to do; libfuse's own words are in it, not beside it.
                let last = try #require(lines.last)
                #expect(last.contains("Cannot mount on \(mountpoint)"), "\(result.output)")
                #expect(last.contains("/dev/fuse") && last.contains("Permission denied"), "\(result.output)")
                #expect(last.contains("run as root"), "\(result.output)")
                #expect(lines.filter { $0.contains("/dev/fuse") }.count == 1, "\(result.output)")
                // Nothing stayed mounted.
                let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
                #expect(!mounts.contains(mountpoint))
            }
        }
    }
}
