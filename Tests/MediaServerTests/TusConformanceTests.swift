import AsyncHTTPClient
import Crypto
import Foundation
import MediaServer
import MediaServerTesting
import NIOCore
import NIOPosix
import NIOHTTP1
import Testing

/// The conformance cases of `shared/reference/tus.md` §7, numbered as there.
@Suite("tus 1.0.0 conformance")
struct TusConformanceTests {
    /// A fresh upload of `length` bytes (or deferred), its tus URL and the generation values.
    func newUpload(_ server: TestMediaServer, length: Int?) async throws -> (location: String, uploadUrl: String, token: String) {
        let (uploadUrl, token) = try await TusTest.generate(server)
        let (location, _) = try await TusTest.create(uploadUrl, token: token, length: length)
        return (location, uploadUrl, token)
    }

    @Test("#1 #2 OPTIONS advertises version, extensions, max size and checksum algorithms, ignoring Tus-Resumable")
    func options() async throws {
        try await TestMediaServer.with { server in
            for headers in [[], [("Tus-Resumable", "0.9.9")]] {
                let response = try await TestHTTP.send(.OPTIONS, server.baseURL + "/upload/tus", headers: headers)
                #expect(response.status == 204)
                #expect(response.header("Tus-Version") == "1.0.0")
                let extensions = Set((response.header("Tus-Extension") ?? "").split(separator: ",").map(String.init))
                #expect(extensions.isSuperset(of: ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"]))
                #expect(response.header("Tus-Max-Size") != nil)
                #expect(response.header("Tus-Checksum-Algorithm")?.contains("sha1") == true)
            }
        }
    }

    @Test("#3 #4 #5 #6 #7 #8 creation and its refusals")
    func creation() async throws {
        try await TestMediaServer.with(configure: { $0.maxUploadSize = 1000 }) { server in
            let (uploadUrl, token) = try await TusTest.generate(server)
            let metadata = ("Upload-Metadata", TusTest.metadata(["token": token]))
            let noVersion = try await TestHTTP.send(.POST, uploadUrl, headers: [("Upload-Length", "100"), metadata])
            #expect(noVersion.status == 412)
            #expect(noVersion.header("Tus-Version") == "1.0.0")
            let wrongVersion = try await TestHTTP.send(.POST, uploadUrl, headers: [("Tus-Resumable", "2.0.0"), ("Upload-Length", "100"), metadata])
            #expect(wrongVersion.status == 412)
            #expect(try await TestHTTP.send(.POST, uploadUrl, headers: TusTest.base + [metadata]).status == 400)
            #expect(try await TestHTTP.send(.POST, uploadUrl, headers: TusTest.base + [("Upload-Defer-Length", "2"), metadata]).status == 400)
            #expect(try await TestHTTP.send(.POST, uploadUrl, headers: TusTest.base + [("Upload-Length", "1001"), metadata]).status == 413)
            #expect(try await TestHTTP.send(.POST, uploadUrl, headers: TusTest.base + [("Upload-Length", "-1"), metadata]).status == 400)
            #expect(try await TestHTTP.send(.POST, uploadUrl, headers: TusTest.base + [("Upload-Length", "10"), ("Upload-Metadata", "bad value here")]).status == 400)
            #expect(try await TestHTTP.send(.POST, uploadUrl, headers: TusTest.base + [("Upload-Length", "10")]).status == 401)
            // None of the refusals used the token up.
            let (location, created) = try await TusTest.create(uploadUrl, token: token, length: 100)
            #expect(created.header("Tus-Resumable") == "1.0.0")
            #expect(created.header("Upload-Expires")?.hasSuffix("GMT") == true)
            #expect(location.hasPrefix(server.baseURL + "/upload/tus/"))
        }
    }

    @Test("#9 #10 #11 #12 #34 HEAD: empty upload complete at once, metadata echoed, unknown 404, version required")
    func head() async throws {
        try await TestMediaServer.with { server in
            let empty = try await newUpload(server, length: 0)
            let emptyHead = try await TusTest.head(empty.location)
            #expect(emptyHead.status == 200)
            #expect(emptyHead.header("Upload-Offset") == "0")
            #expect(emptyHead.header("Upload-Length") == "0")
            #expect(try await TusTest.finalize(empty.uploadUrl, token: empty.token).status == 200)

            let upload = try await newUpload(server, length: 100)
            let response = try await TusTest.head(upload.location)
            #expect(response.status == 200)
            #expect(response.header("Upload-Offset") == "0")
            #expect(response.header("Upload-Length") == "100")
            #expect(response.header("Cache-Control") == "no-store")
            let echoed = try #require(response.header("Upload-Metadata"))
            #expect(echoed.contains("filename \(Data("clip.mp4".utf8).base64EncodedString())"))
            let unknown = try await TusTest.head(server.baseURL + "/upload/tus/0123456789abcdef0123456789abcdef")
            #expect(unknown.status == 404)
            #expect(unknown.header("Upload-Offset") == nil)
            #expect(try await TestHTTP.send(.HEAD, upload.location).status == 412)
        }
    }

    @Test("#13-#20 PATCH: success, offset mismatch, bad headers, unknown id, overflow, complete upload")
    func patch() async throws {
        try await TestMediaServer.with { server in
            let upload = try await newUpload(server, length: 100)
            let first = try await TusTest.patch(upload.location, offset: 0, data: Data(repeating: 1, count: 70))
            #expect(first.status == 204)
            #expect(first.header("Upload-Offset") == "70")
            #expect(first.header("Upload-Expires") != nil)
            let stale = try await TusTest.patch(upload.location, offset: 0, data: Data(repeating: 2, count: 10))
            #expect(stale.status == 409)
            #expect(try await TusTest.patch(upload.location, offset: 80, data: Data(repeating: 2, count: 10)).status == 409)
            #expect(try await TusTest.head(upload.location).header("Upload-Offset") == "70")
            for bad in ["-1", "abc"] {
                let response = try await TestHTTP.send(
                    .PATCH, upload.location,
                    headers: TusTest.base + [("Upload-Offset", bad), ("Content-Type", "application/offset+octet-stream")], body: Data([1]))
                #expect(response.status == 400)
            }
            let missingOffset = try await TestHTTP.send(
                .PATCH, upload.location, headers: TusTest.base + [("Content-Type", "application/offset+octet-stream")], body: Data([1]))
            #expect(missingOffset.status == 400)
            let wrongType = try await TestHTTP.send(
                .PATCH, upload.location, headers: TusTest.base + [("Upload-Offset", "70"), ("Content-Type", "application/octet-stream")],
                body: Data([1]))
            #expect(wrongType.status == 415)
            let noVersion = try await TestHTTP.send(
                .PATCH, upload.location, headers: [("Upload-Offset", "70"), ("Content-Type", "application/offset+octet-stream")],
                body: Data([1]))
            #expect(noVersion.status == 412)
            #expect(noVersion.header("Tus-Version") == "1.0.0")
            #expect(try await TusTest.patch(server.baseURL + "/upload/tus/ffffffffffffffffffffffffffffffff", offset: 0, data: Data([1])).status == 404)
            let overflow = try await TusTest.patch(upload.location, offset: 70, data: Data(repeating: 3, count: 31))
            #expect(overflow.status == 413)
            #expect(try await TusTest.head(upload.location).header("Upload-Offset") == "70")
            #expect(try await TusTest.patch(upload.location, offset: 70, data: Data(repeating: 3, count: 30)).status == 204)
            let afterComplete = try await TusTest.patch(upload.location, offset: 100, data: Data())
            #expect(afterComplete.status == 204)
            #expect(afterComplete.header("Upload-Offset") == "100")
            let done = try await TusTest.finalize(upload.uploadUrl, token: upload.token)
            #expect(done.status == 200)
            let content = try await TestHTTP.send(.GET, try #require((done.json["file"] as? [String: Any])?["url"] as? String))
            #expect(content.body == Data(repeating: 1, count: 70) + Data(repeating: 3, count: 30))
            #expect(try await TusTest.patch(upload.location, offset: 100, data: Data([1])).status == 403)
        }
    }

    @Test("#21 #22 an interrupted PATCH keeps what arrived; resuming from HEAD's offset completes the upload")
    func interruptedPatch() async throws {
        try await TestMediaServer.with { server in
            let total = 4 << 20
            let data = Data.random(total)
            let upload = try await newUpload(server, length: total)
            let url = try #require(URL(string: upload.location))
            // Send headers that promise the whole file, then half the body, then close.
            let sent = try await RawHTTP.sendPartial(
                host: url.host!, port: url.port!,
                head: """
                    PATCH \(url.path) HTTP/1.1\r
                    Host: \(url.host!):\(url.port!)\r
                    Tus-Resumable: 1.0.0\r
                    Upload-Offset: 0\r
                    Content-Type: application/offset+octet-stream\r
                    Content-Length: \(total)\r
                    \r\n
                    """,
                body: data.prefix(total / 2))
            #expect(sent == total / 2)
            // The server records what arrived once it sees the connection close.
            var offset = 0
            try await Programs.waitFor("the interrupted PATCH to be recorded", timeout: .seconds(20)) {
                offset = Int((try? await TusTest.head(upload.location))?.header("Upload-Offset") ?? "0") ?? 0
                return offset == total / 2
            }
            #expect(offset == total / 2)
            #expect(try await TusTest.patch(upload.location, offset: 0, data: data.prefix(10)).status == 409)
            #expect(try await TusTest.patch(upload.location, offset: offset, data: data.suffix(from: offset)).status == 204)
            let done = try await TusTest.finalize(upload.uploadUrl, token: upload.token)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["hash"] as? String == Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test("a long PATCH is checkpointed while it arrives: HEAD shows synced progress before the PATCH ends")
    func checkpointsDuringPatch() async throws {
        try await TestMediaServer.with(configure: { $0.checkpointBytes = 1 << 20 }) { server in
            let total = 8 << 20
            let data = Data.random(total)
            let upload = try await newUpload(server, length: total)
            let url = try #require(URL(string: upload.location))
            // 6 MiB of the 8 MiB the head promises; the connection stays open.
            let channel = try await RawHTTP.startPartial(
                host: url.host!, port: url.port!,
                head: """
                    PATCH \(url.path) HTTP/1.1\r
                    Host: \(url.host!):\(url.port!)\r
                    Tus-Resumable: 1.0.0\r
                    Upload-Offset: 0\r
                    Content-Type: application/offset+octet-stream\r
                    Content-Length: \(total)\r
                    \r\n
                    """,
                body: data.prefix(6 << 20))
            var progress = 0
            try await Programs.waitFor("a checkpoint", timeout: .seconds(20)) {
                progress = (try? await TusTest.head(upload.location)).flatMap { Int($0.header("Upload-Offset") ?? "") } ?? 0
                return progress >= 4 << 20
            }
            #expect(progress <= 6 << 20, "\(progress)")
            try await channel.close()
            try await Programs.waitFor("the interrupted PATCH to be recorded", timeout: .seconds(20)) {
                (try? await TusTest.head(upload.location))?.header("Upload-Offset") == String(6 << 20)
            }
            #expect(try await TusTest.patch(upload.location, offset: 6 << 20, data: data.suffix(from: 6 << 20)).status == 204)
            let done = try await TusTest.finalize(upload.uploadUrl, token: upload.token)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["hash"] as? String == Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test("#23 an expired upload answers 410 and its bytes are swept")
    func expiration() async throws {
        try await TestMediaServer.with(configure: { $0.uploadExpiry = 4; $0.sweepInterval = 0.2 }) { server in
            let upload = try await newUpload(server, length: 10)
            #expect(try await TusTest.head(upload.location).status == 200)
            try await Programs.waitFor("the upload to expire", timeout: .seconds(30)) {
                (try? await TusTest.head(upload.location))?.status == 410
            }
            #expect(try await TusTest.patch(upload.location, offset: 0, data: Data([3])).status == 410)
            #expect(try await TusTest.finalize(upload.uploadUrl, token: upload.token).status == 410)
            try await Programs.waitFor("the sweep", timeout: .seconds(30)) {
                (try? FileManager.default.contentsOfDirectory(atPath: server.directory.path + "/blobs").isEmpty) == true
            }
        }
    }

    @Test("#24 #25 #26 #27 checksums: mismatch 460 discards the chunk, unknown algorithm 400, match 204")
    func checksum() async throws {
        try await TestMediaServer.with { server in
            let upload = try await newUpload(server, length: 22)
            let hello = Data("hello world".utf8)
            let wrong = try await TusTest.patch(upload.location, offset: 0, data: hello, headers: [("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=")])
            #expect(wrong.status == 460)
            #expect(try await TusTest.head(upload.location).header("Upload-Offset") == "0")
            #expect(try await TusTest.patch(upload.location, offset: 0, data: hello, headers: [("Upload-Checksum", "foo AAAA")]).status == 400)
            let right = try await TusTest.patch(upload.location, offset: 0, data: hello, headers: [("Upload-Checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")])
            #expect(right.status == 204)
            let sha256 = Data(SHA256.hash(data: hello)).base64EncodedString()
            #expect(try await TusTest.patch(upload.location, offset: 11, data: hello, headers: [("Upload-Checksum", "sha256 \(sha256)")]).status == 204)
            let done = try await TusTest.finalize(upload.uploadUrl, token: upload.token)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["hash"] as? String == Insecure.MD5.hash(data: hello + hello).map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test("#28 concurrent PATCHes on one upload are never interleaved")
    func concurrentPatch() async throws {
        try await TestMediaServer.with { server in
            let size = 8 << 20
            let upload = try await newUpload(server, length: size)
            let bodies = [Data(repeating: 0xAA, count: size), Data(repeating: 0xBB, count: size)]
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for body in bodies {
                    group.addTask { try await TusTest.patch(upload.location, offset: 0, data: body).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 204 }.count == 1, "\(statuses)")
            #expect(statuses.allSatisfy { [204, 409, 423].contains($0) }, "\(statuses)")
            let done = try await TusTest.finalize(upload.uploadUrl, token: upload.token)
            let content = try await TestHTTP.send(.GET, try #require((done.json["file"] as? [String: Any])?["url"] as? String))
            #expect(content.body == bodies[0] || content.body == bodies[1])
        }
    }

    @Test("#29 termination: DELETE 204, then 404; the token cannot be finalized")
    func termination() async throws {
        try await TestMediaServer.with { server in
            let upload = try await newUpload(server, length: 10)
            let deleted = try await TestHTTP.send(.DELETE, upload.location, headers: TusTest.base)
            #expect(deleted.status == 204)
            #expect(try await TusTest.head(upload.location).status == 404)
            #expect(try await TusTest.patch(upload.location, offset: 0, data: Data([1])).status == 404)
            #expect(try await TestHTTP.send(.DELETE, upload.location, headers: TusTest.base).status == 404)
            #expect(try await TusTest.finalize(upload.uploadUrl, token: upload.token).status == 404)
        }
    }

    @Test("#30 deferred length: HEAD says so; the length is set once by a later PATCH and cannot change")
    func deferredLength() async throws {
        try await TestMediaServer.with { server in
            let upload = try await newUpload(server, length: nil)
            let head = try await TusTest.head(upload.location)
            #expect(head.header("Upload-Defer-Length") == "1")
            #expect(head.header("Upload-Length") == nil)
            #expect(try await TusTest.patch(upload.location, offset: 0, data: Data(repeating: 1, count: 1000)).status == 204)
            #expect(try await TusTest.finalize(upload.uploadUrl, token: upload.token).status == 409)
            #expect(try await TusTest.patch(upload.location, offset: 1000, data: Data([2]), headers: [("Upload-Length", "999")]).status == 400)
            let last = try await TusTest.patch(upload.location, offset: 1000, data: Data(repeating: 2, count: 500), headers: [("Upload-Length", "1500")])
            #expect(last.status == 204)
            #expect(try await TusTest.head(upload.location).header("Upload-Length") == "1500")
            #expect(try await TusTest.patch(upload.location, offset: 1500, data: Data(), headers: [("Upload-Length", "1600")]).status == 400)
            let done = try await TusTest.finalize(upload.uploadUrl, token: upload.token)
            #expect((done.json["file"] as? [String: Any])?["sizeInBytes"] as? String == "1500")
        }
    }

    @Test("#31 creation-with-upload returns the offset of the bytes it took")
    func creationWithUpload() async throws {
        try await TestMediaServer.with { server in
            let (uploadUrl, token) = try await TusTest.generate(server)
            let data = Data.random(5000)
            let (location, response) = try await TusTest.create(
                uploadUrl, token: token, length: 8000, extraHeaders: [("Content-Type", "application/offset+octet-stream")], body: data)
            #expect(response.header("Upload-Offset") == "5000")
            #expect(try await TusTest.head(location).header("Upload-Offset") == "5000")
        }
    }

    @Test("#33 X-HTTP-Method-Override on POST acts as PATCH and DELETE")
    func methodOverride() async throws {
        try await TestMediaServer.with { server in
            let upload = try await newUpload(server, length: 4)
            let response = try await TestHTTP.send(
                .POST, upload.location,
                headers: TusTest.base + [("X-HTTP-Method-Override", "PATCH"), ("Upload-Offset", "0"), ("Content-Type", "application/offset+octet-stream")],
                body: Data([1, 2]))
            #expect(response.status == 204)
            #expect(response.header("Upload-Offset") == "2")
            let deleted = try await TestHTTP.send(.POST, upload.location, headers: TusTest.base + [("X-HTTP-Method-Override", "DELETE")])
            #expect(deleted.status == 204)
        }
    }
}
