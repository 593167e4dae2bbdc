import Foundation
import MediaServerTesting

#if canImport(Glibc)
import Glibc
#endif

/// The processes of this machine, read from /proc.
enum ProcessTable {
    /// The arguments of `pid` (its /proc/PID/cmdline), empty if it is gone.
    static func commandLine(_ pid: Int32) -> [String] {
        words(in: "/proc/\(pid)/cmdline")
    }

    /// The environment of `pid`.
    static func environment(_ pid: Int32) -> [String] {
        words(in: "/proc/\(pid)/environ")
    }

    private static func words(in path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Processes whose command line holds every one of `words`.
    static func pids(withArguments words: [String]) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            let arguments = commandLine(pid)
            return !arguments.isEmpty && words.allSatisfy { word in arguments.contains { $0.contains(word) } }
        }
    }

    /// The detached mount daemon serving `mountpoint` (it reports on --ready-fd).
    static func daemon(of mountpoint: String) -> Int32? {
        pids(withArguments: ["--ready-fd", mountpoint]).filter { !isGone($0) }.first
    }

    /// Whether `pid` has exited (no longer in /proc, or a zombie nobody reaped).
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state == "Z" || state == "X"
    }
}

/// The mount table, read independently of mediafs.
enum Mounts {
    /// The file system types mounted at `path`.
    static func types(at path: String) -> [String] {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4].replacingOccurrences(of: "\\040", with: " ") == path,
                let separator = fields.firstIndex(of: "-"), separator + 1 < fields.count
            else { return nil }
            return String(fields[separator + 1])
        }
    }

    static func isMounted(_ path: String) -> Bool { !types(at: path).isEmpty }
}

/// Runs `body` with a mount point that is unmounted afterwards and whose daemon is stopped,
/// whatever `body` did or threw.
func withMountCleanup<T>(_ mountpoint: String, _ body: () async throws -> T) async throws -> T {
    do {
        let result = try await body()
        await cleanUpMount(mountpoint)
        return result
    } catch {
        await cleanUpMount(mountpoint)
        throw error
    }
}

func cleanUpMount(_ mountpoint: String) async {
    while Mounts.isMounted(mountpoint) {
        let result = try? await Programs.run("/bin/umount", ["-l", mountpoint])
        if result?.status != 0 { break }
    }
    for pid in ProcessTable.pids(withArguments: ["--ready-fd", mountpoint]) {
        kill(pid, SIGKILL)
    }
}

/// Runs a shell command off the concurrency pool.
@discardableResult
func sh(_ command: String, environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    try await Programs.run("/bin/sh", ["-c", command], environment: environment)
}

/// Single-quotes `text` for the shell.
func quoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A file holding `key` with `mode`.
func writeKeyFile(_ path: String, key: String, mode: Int) throws {
    try Data((key + "\n").utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, mode_t(mode))
}

/// The files of the media root through the API (with curl), by display name: id, url.
func remoteRootFiles(_ baseURL: String, key: String) async throws -> [String: String] {
    let result = try await Programs.run(
        "/usr/bin/curl", ["-sf", "-H", "Authorization: \(key)", baseURL + "/site-media/v1/files?parentFolderId=media-root&paging.limit=100"])
    guard result.status == 0, let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
        let files = json["files"] as? [[String: Any]]
    else { throw TestFailure("listing failed: \(result.output)") }
    var byName: [String: String] = [:]
    for file in files {
        if let name = file["displayName"] as? String, let url = file["url"] as? String { byName[name] = url }
    }
    return byName
}

/// A test step that could not be done.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
