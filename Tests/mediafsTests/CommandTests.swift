import Crypto
import FaultInjection
import Foundation
import Logging
import MediaServer
import MediaServerTesting
import Testing

/// The `mediafs` command line, run as a separate process against an in-process server.
@Suite("mediafs url and upload", .serialized)
struct CommandTests {
    /// Runs `mediafs` to completion.
    static func mediafs(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String) {
        try await Programs.run(try Programs.mediafs, arguments, environment: environment)
    }

    static func environment(_ server: TestMediaServer, baseURL: String? = nil) -> [String: String] {
        [
            "MEDIAFS_SERVER": baseURL ?? server.baseURL, "MEDIAFS_API_KEY": TestMediaServer.apiKey,
            "XDG_STATE_HOME": server.directory.path + "/state",
        ]
    }

    @Test("url prints the generate-resumable-upload-url response; --simple the simple one; bad input is explained")
    func url() async throws {
        try await TestMediaServer.with { server in
            let result = try await Self.mediafs(
                ["url", "--mime-type", "video/mp4", "--file-name", "a.mp4", "--label", "x"], environment: Self.environment(server))
            #expect(result.status == 0, "\(result.output)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
            #expect(json["uploadProtocol"] as? String == "TUS")
            #expect(json["uploadUrl"] as? String == server.baseURL + "/upload/tus")
            #expect((json["uploadToken"] as? String)?.split(separator: ".").count == 3)
            let simple = try await Self.mediafs(["url", "--mime-type", "image/png", "--simple"], environment: Self.environment(server))
            #expect(simple.output.contains("\"uploadUrl\""))
            let bad = try await Self.mediafs(["url", "--mime-type", "png"], environment: Self.environment(server))
            #expect(bad.status != 0)
            #expect(bad.output.contains("--mime-type"))
            var wrongKey = Self.environment(server)
            wrongKey["MEDIAFS_API_KEY"] = "wrong"
            let denied = try await Self.mediafs(["url", "--mime-type", "image/png"], environment: wrongKey)
            #expect(denied.status != 0)
            #expect(denied.output.contains("401"))
        }
    }

    @Test("upload prints each descriptor; small files take the simple URL, large ones the resumable flow")
    func upload() async throws {
        try await TestMediaServer.with { server in
            let big = server.directory.path + "/big.mov"
            let small = server.directory.path + "/small.txt"
            let data = Data.random(12_000_000)
            try data.write(to: URL(fileURLWithPath: big))
            try Data("small".utf8).write(to: URL(fileURLWithPath: small))
            let result = try await Self.mediafs(["upload", big, small, "--label", "cli"], environment: Self.environment(server))
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("\"displayName\" : \"big.mov\""))
            #expect(result.output.contains("\"displayName\" : \"small.txt\""))
            #expect(result.output.contains(Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()))
            #expect(result.output.contains("big.mov: 100%"))
        }
    }

    @Test("upload killed mid-way and run again resumes: the second run sends fewer bytes than the file")
    func resumeAfterKill() async throws {
        let port = try Programs.freePort()
        var logger = Logger(label: "test.proxy")
        logger.logLevel = .critical
        let proxy = try await FaultProxy.start(targetPort: port, logger: logger)
        do {
            try await TestMediaServer.with(configure: { $0.port = port; $0.publicURL = "http://127.0.0.1:\(proxy.port)" }) { server in
                let size = 96 << 20
                let file = server.directory.path + "/long.bin"
                let data = Data.random(size)
                try data.write(to: URL(fileURLWithPath: file))
                let environment = Self.environment(server, baseURL: "http://127.0.0.1:\(proxy.port)")
                let log = server.directory.path + "/first.log"
                let first = try Programs.start(try Programs.mediafs, ["upload", file, "--chunk-size", "4"], log: log, environment: environment)
                try await Programs.waitFor("progress", timeout: .seconds(60)) {
                    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                    // The first progress line: at least one chunk is acknowledged.
                    return text.contains("long.bin: 10%") || text.contains("long.bin: 20%")
                }
                kill(first.processIdentifier, SIGKILL)
                await Programs.wait(first)
                let before = try await proxy.statistics().bytesUpstream
                let second = try await Self.mediafs(["upload", file, "--chunk-size", "4"], environment: environment)
                #expect(second.status == 0, "\(second.output)")
                let sent = try await proxy.statistics().bytesUpstream - before
                #expect(!second.output.contains("resumed from byte 0 "))
                #expect(second.output.contains("resumed from byte"))
                #expect(sent < Int64(size), "second run sent \(sent) bytes of \(size)")
                #expect(second.output.contains(Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()))
            }
        } catch {
            try? await proxy.stop()
            throw error
        }
        try await proxy.stop()
    }
}
