import Crypto
import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// `kill -9` of a separate `mediafs serve` in the middle of an upload, then restart and resume.
@Suite("Durability across kill -9", .serialized)
struct DurabilityTests {
    @Test("an acknowledged offset survives kill -9; the upload resumes after restart and the MD5 matches")
    func killAndResume() async throws {
        try await TemporaryDirectory.with(prefix: "mediafs-durability") { directory in
            let binary = try Programs.mediafs
            let port = try Programs.freePort()
            let base = "http://127.0.0.1:\(port)"
            let arguments = ["serve", "--data", directory.path + "/data", "--port", String(port), "--api-key", "durable-key"]
            var server = try Programs.start(binary, arguments, log: directory.path + "/server1.log")
            defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
            try await Programs.waitFor("server") { (try? await TestHTTP.send(.OPTIONS, base + "/upload/tus")) != nil }

            let generated = try await TestHTTP.api(
                .POST, base + "/site-media/v1/files/generate-resumable-upload-url", key: "durable-key",
                json: ["mimeType": "video/mp4", "fileName": "long.mp4"])
            let uploadUrl = try #require(generated.json["uploadUrl"] as? String)
            let token = try #require(generated.json["uploadToken"] as? String)
            let total = 48 << 20
            let data = Data.random(total)
            let (location, _) = try await TusTest.create(uploadUrl, token: token, length: total, name: "long.mp4")
            // Acknowledge a first part for certain.
            #expect(try await TusTest.patch(location, offset: 0, data: data.prefix(8 << 20)).status == 204)

            // Stream the rest in one PATCH and kill the server while it arrives.
            let url = try #require(URL(string: location))
            let pid = server.processIdentifier
            // Killed once the server has checkpointed part of this PATCH (HEAD shows it).
            let killer = Task {
                try await Programs.waitFor("part of the PATCH to be checkpointed", timeout: .seconds(30)) {
                    (Int((try? await TusTest.head(location))?.header("Upload-Offset") ?? "") ?? 0) > 8 << 20
                }
                kill(pid, SIGKILL)
            }
            _ = try? await RawHTTP.sendPartial(
                host: url.host!, port: url.port!,
                head: """
                    PATCH \(url.path) HTTP/1.1\r
                    Host: \(url.host!):\(url.port!)\r
                    Tus-Resumable: 1.0.0\r
                    Upload-Offset: \(8 << 20)\r
                    Content-Type: application/offset+octet-stream\r
                    Content-Length: \(total - (8 << 20))\r
                    \r\n
                    """,
                body: data.suffix(from: 8 << 20))
            _ = try await killer.value
            await Programs.wait(server)

            server = try Programs.start(binary, arguments, log: directory.path + "/server2.log")
            try await Programs.waitFor("restarted server") { (try? await TestHTTP.send(.OPTIONS, base + "/upload/tus")) != nil }
            let head = try await TusTest.head(location)
            #expect(head.status == 200)
            let offset = try #require(Int(head.header("Upload-Offset") ?? ""))
            #expect(offset >= 8 << 20, "the acknowledged part survived")
            #expect(offset <= total)
            if offset < total {
                #expect(try await TusTest.patch(location, offset: offset, data: data.suffix(from: offset)).status == 204)
            }
            let done = try await TusTest.finalize(uploadUrl, token: token, name: "long.mp4")
            #expect(done.status == 200)
            let file = try #require(done.json["file"] as? [String: Any])
            let expected = Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
            #expect(file["hash"] as? String == expected)
            let content = try await TestHTTP.send(.GET, try #require(file["url"] as? String))
            #expect(Insecure.MD5.hash(data: content.body).map { String(format: "%02x", $0) }.joined() == expected)
            kill(server.processIdentifier, SIGKILL)
            await Programs.wait(server)
        }
    }
}
