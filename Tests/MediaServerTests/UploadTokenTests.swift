import Crypto
import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

@Suite("Upload host: tokens, finalize and visibility")
struct UploadTokenTests {
    /// Signs claims with the server's own secret, to make tokens the server would have made.
    static func sign(_ claims: [String: Any], server: TestMediaServer) throws -> String {
        let secret = try Data(contentsOf: URL(fileURLWithPath: server.directory.path + "/secret"))
        func b64(_ data: Data) -> String {
            data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let header = b64(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = b64(try JSONSerialization.data(withJSONObject: claims))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(payload)".utf8), using: SymmetricKey(data: secret))
        return "\(header).\(payload).\(b64(Data(mac)))"
    }

    @Test("a simple upload URL works once; reuse is 429, tampering 403, expiry 401")
    func simpleToken() async throws {
        try await TestMediaServer.with { server in
            let generated = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "text/plain"])
            let url = try #require(generated.json["uploadUrl"] as? String)
            #expect(try await TestHTTP.send(.PUT, url + "?filename=a.txt", body: Data("a".utf8)).status == 200)
            let reused = try await TestHTTP.send(.PUT, url + "?filename=b.txt", body: Data("b".utf8))
            #expect(reused.status == 429)
            #expect(API.errorCode(reused) == "RESOURCE_EXHAUSTED")

            let token = String(url.split(separator: "/").last!)
            var parts = token.split(separator: ".").map(String.init)
            parts[1] = String(parts[1].dropLast()) + (parts[1].hasSuffix("A") ? "B" : "A")
            let tampered = server.baseURL + "/upload/" + parts.joined(separator: ".")
            #expect(try await TestHTTP.send(.PUT, tampered + "?filename=c.txt", body: Data("c".utf8)).status == 403)
            #expect(try await TestHTTP.send(.PUT, server.baseURL + "/upload/garbage?filename=c.txt", body: Data("c".utf8)).status == 403)

            let now = Int(Date().timeIntervalSince1970)
            let expired = try Self.sign(
                ["jti": "x1", "aud": "urn:service:upload", "iss": "urn:service:upload", "iat": now - 100, "exp": now - 10,
                 "mimeType": "text/plain", "parentFolderId": "media-root", "labels": [String](), "acl": "public"],
                server: server)
            let late = try await TestHTTP.send(.PUT, server.baseURL + "/upload/" + expired + "?filename=c.txt", body: Data("c".utf8))
            #expect(late.status == 401)
            #expect(API.errorCode(late) == "UNAUTHENTICATED")

            #expect(try await API.listNames(server, path: "/files") == ["a.txt"])
            let noName = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "text/plain"])
            let missing = try await TestHTTP.send(.PUT, try #require(noName.json["uploadUrl"] as? String), body: Data("x".utf8))
            #expect(missing.status == 400)
        }
    }

    @Test("octet-stream uploads take their type from the file name")
    func typeDetection() async throws {
        try await TestMediaServer.with { server in
            let file = try await API.upload(server, name: "song.mp3", data: Data("x".utf8), mimeType: "application/octet-stream")
            #expect(file["mediaType"] as? String == "AUDIO")
        }
    }

    @Test("the resumable flow: the file appears only after finalize; finalize is idempotent; a finalized token starts nothing more")
    func resumableFlow() async throws {
        try await TestMediaServer.with { server in
            let folder = try await API.createFolder(server, "clips")
            let (uploadUrl, token) = try await TusTest.generate(server, extra: ["parentFolderId": folder, "labels": ["raw"]])
            #expect(uploadUrl == server.baseURL + "/upload/tus")
            let data = Data.random(300_000)
            let (location, _) = try await TusTest.create(uploadUrl, token: token, length: data.count)

            #expect(try await TusTest.patch(location, offset: 0, data: data.prefix(100_000)).status == 204)
            let early = try await TusTest.finalize(uploadUrl, token: token)
            #expect(early.status == 409)
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(folder)").isEmpty)

            #expect(try await TusTest.patch(location, offset: 100_000, data: data.suffix(from: 100_000)).status == 204)
            let done = try await TusTest.finalize(uploadUrl, token: token)
            #expect(done.status == 200)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["parentFolderId"] as? String == folder)
            #expect(file["labels"] as? [String] == ["raw"])
            #expect(file["sizeInBytes"] as? String == "300000")
            #expect(file["hash"] as? String == Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined())
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(folder)") == ["clip.mp4"])

            let again = try await TusTest.finalize(uploadUrl, token: token)
            #expect(again.status == 200)
            #expect((again.json["file"] as? [String: Any])?["id"] as? String == file["id"] as? String)
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(folder)").count == 1)

            // A finalized token starts no more uploads (before finalize a new one replaces the old:
            // UploadIdentityTests).
            let second = try await TestHTTP.send(
                .POST, uploadUrl,
                headers: TusTest.base + [("Upload-Length", "1"), ("Upload-Metadata", TusTest.metadata(["token": token]))])
            #expect(second.status == 429)

            let content = try await TestHTTP.send(.GET, try #require(file["url"] as? String))
            #expect(content.body == data)

            // A simple upload token is not a tus token, and the other way round.
            let simple = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "text/plain"])
            let simpleToken = String(try #require(simple.json["uploadUrl"] as? String).split(separator: "/").last!)
            let wrongKind = try await TestHTTP.send(
                .POST, uploadUrl, headers: TusTest.base + [("Upload-Length", "1"), ("Upload-Metadata", TusTest.metadata(["token": simpleToken]))])
            #expect(wrongKind.status == 403)
            let (_, otherToken) = try await TusTest.generate(server)
            #expect(try await TestHTTP.send(.PUT, server.baseURL + "/upload/" + otherToken + "?filename=x", body: Data("x".utf8)).status == 403)
            #expect(try await TusTest.finalize(uploadUrl, token: otherToken).status == 404)
        }
    }

    @Test("private files: direct URL 403; signed download URL serves them and expires")
    func privateFiles() async throws {
        try await TestMediaServer.with { server in
            let data = Data.random(10_000)
            let file = try await API.upload(server, name: "secret.pdf", data: data, mimeType: "application/pdf", extra: ["private": true])
            #expect(file["private"] as? Bool == true)
            let id = try #require(file["id"] as? String)
            #expect(try await TestHTTP.send(.GET, try #require(file["url"] as? String)).status == 403)

            let generated = try await TestHTTP.api(.POST, server.apiURL + "/files/\(id)/generate-download-url", json: ["expirationInMinutes": 5])
            #expect(generated.status == 200)
            let urls = try #require(generated.json["downloadUrls"] as? [[String: Any]])
            #expect(urls.first?["assetKey"] as? String == "src")
            let url = try #require(urls.first?["url"] as? String)
            let full = try await TestHTTP.send(.GET, url)
            #expect(full.status == 200)
            #expect(full.body == data)
            #expect(full.header("Content-Disposition")?.contains("secret.pdf") == true)
            let part = try await TestHTTP.send(.GET, url, headers: [("Range", "bytes=100-199")])
            #expect(part.status == 206)
            #expect(part.body == data.subdata(in: 100..<200))

            #expect(try await TestHTTP.send(.GET, url.replacingOccurrences(of: "token=", with: "token=x")).status == 403)
            let expired = try UploadTokenTests.sign(["fileId": id, "exp": Int(Date().timeIntervalSince1970) - 1], server: server)
            #expect(try await TestHTTP.send(.GET, server.baseURL + "/download/\(id)?token=" + expired).status == 403)
            let other = try UploadTokenTests.sign(["fileId": "other", "exp": Int(Date().timeIntervalSince1970) + 100], server: server)
            #expect(try await TestHTTP.send(.GET, server.baseURL + "/download/\(id)?token=" + other).status == 403)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/files/nope/generate-download-url", json: [String: Any]()).status == 404)
        }
    }
}
