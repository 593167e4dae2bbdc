import Crypto
import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// What a client relies on to recognise its file after a lost finalize answer or a crash: the
/// resumable token's `path` claim fixes the file id; a token may restart its upload.
@Suite("Upload host: pre-assigned file ids and restarted uploads")
struct UploadIdentityTests {
    /// The claims of a token (its middle part).
    static func claims(_ token: String) throws -> [String: Any] {
        let parts = token.split(separator: ".")
        try #require(parts.count == 3)
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        let data = try #require(Data(base64Encoded: base64))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func fileId(fromToken token: String) throws -> String {
        let path = try #require(try claims(token)["path"] as? String)
        try #require(path.hasPrefix("media/"))
        return String(path.dropFirst("media/".count))
    }

    static func md5(_ data: Data) -> String { Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    @Test("the token's path is media/<id>; the id is 404 until finalize, then the file, whatever ?filename= says")
    func preassignedId() async throws {
        try await TestMediaServer.with { server in
            let (uploadUrl, token) = try await TusTest.generate(server, name: "Photo.JPG", mimeType: "image/jpeg")
            let id = try Self.fileId(fromToken: token)
            #expect(id.wholeMatch(of: /[0-9a-f]{6}_[0-9a-f]{32}~mv2\.jpg/) != nil, "\(id)")
            let byPath = server.apiURL + "/files/" + id
            let byQuery = server.apiURL + "/files/get-file-by-id?fileId=" + id
            #expect(try await TestHTTP.api(.GET, byPath).status == 404)
            #expect(try await TestHTTP.api(.GET, byQuery).status == 404)

            let data = Data.random(70_000)
            let (location, _) = try await TusTest.create(uploadUrl, token: token, length: data.count, name: "Photo.JPG")
            #expect(try await TusTest.patch(location, offset: 0, data: data).status == 204)
            #expect(try await TestHTTP.api(.GET, byPath).status == 404, "complete but not finalized is not a file yet")

            let done = try await TusTest.finalize(uploadUrl, token: token, name: "renamed.png")
            #expect(done.status == 200)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["id"] as? String == id)
            #expect(file["displayName"] as? String == "renamed.png")
            #expect(file["hash"] as? String == Self.md5(data))
            let found = try await TestHTTP.api(.GET, byPath)
            #expect(found.status == 200)
            #expect((found.json["file"] as? [String: Any])?["id"] as? String == id)
            #expect(try await TestHTTP.api(.GET, byQuery).status == 200)
            // The answer was lost: asking again gives the same file.
            let again = try await TusTest.finalize(uploadUrl, token: token, name: "other.png")
            #expect(again.status == 200)
            #expect((again.json["file"] as? [String: Any])?["id"] as? String == id)
            #expect((again.json["file"] as? [String: Any])?["displayName"] as? String == "renamed.png")
            #expect(try await API.listNames(server, path: "/files").count == 1)
        }
    }

    @Test("the id's shape follows the generation's fileName and mimeType, as the service's ids do")
    func idShapes() async throws {
        try await TestMediaServer.with { server in
            let cases: [(String?, String, Regex<Substring>)] = [
                ("clip.mp4", "video/mp4", /[0-9a-f]{6}_[0-9a-f]{32}/),
                ("doc.PDF", "application/pdf", /[0-9a-f]{6}_[0-9a-f]{32}\.pdf/),
                ("pic.png", "application/octet-stream", /[0-9a-f]{6}_[0-9a-f]{32}~mv2\.png/),
                (nil, "image/jpeg", /[0-9a-f]{6}_[0-9a-f]{32}/),
                ("weird.ext!", "image/jpeg", /[0-9a-f]{6}_[0-9a-f]{32}/),
            ]
            var seen: Set<String> = []
            for (name, mimeType, shape) in cases {
                var body: [String: Any] = ["mimeType": mimeType]
                if let name { body["fileName"] = name }
                let response = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-resumable-upload-url", json: body)
                let token = try #require(response.json["uploadToken"] as? String)
                let id = try Self.fileId(fromToken: token)
                #expect(id.wholeMatch(of: shape) != nil, "\(String(describing: name)) \(mimeType): \(id)")
                seen.insert(id)
            }
            #expect(seen.count == cases.count, "every token has its own id")
            let simple = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "image/png"])
            let simpleToken = String(try #require(simple.json["uploadUrl"] as? String).split(separator: "/").last!)
            #expect(try Self.claims(simpleToken)["path"] == nil, "simple upload URLs do not pre-assign an id")
        }
    }

    @Test("a second upload with the token replaces the unfinished first; finalize uses the newest; after finalize, 429")
    func restartedUpload() async throws {
        try await TestMediaServer.with { server in
            let (uploadUrl, token) = try await TusTest.generate(server)
            let id = try Self.fileId(fromToken: token)
            let (first, _) = try await TusTest.create(uploadUrl, token: token, length: 100)
            #expect(try await TusTest.patch(first, offset: 0, data: Data(repeating: 1, count: 40)).status == 204)

            let data = Data.random(50)
            let (second, _) = try await TusTest.create(uploadUrl, token: token, length: data.count)
            #expect(second != first)
            #expect(try await TusTest.head(first).status == 404, "the older upload is terminated")
            #expect(try await TusTest.patch(first, offset: 40, data: Data(repeating: 1, count: 60)).status == 404)
            #expect(try await TusTest.head(second).header("Upload-Offset") == "0")
            #expect(try await TusTest.finalize(uploadUrl, token: token).status == 409, "finalize waits for the newest upload")
            #expect(try await TusTest.patch(second, offset: 0, data: data).status == 204)
            let done = try await TusTest.finalize(uploadUrl, token: token)
            #expect(done.status == 200)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["id"] as? String == id)
            let content = try await TestHTTP.send(.GET, try #require(file["url"] as? String))
            #expect(content.body == data)
            // The terminated upload's bytes are gone: only the file's (and the fixture's none) remain.
            let blobs = try FileManager.default.contentsOfDirectory(atPath: server.directory.path + "/blobs")
            #expect(blobs.count == 1, "\(blobs)")

            let third = try await TestHTTP.send(
                .POST, uploadUrl, headers: TusTest.base + [("Upload-Length", "1"), ("Upload-Metadata", TusTest.metadata(["token": token]))])
            #expect(third.status == 429)
            #expect(try await TusTest.head(second).status == 200, "the finalized upload stays")
        }
    }

    @Test("a restart after the first upload completed (finalize answer never sent) is still allowed and wins")
    func restartAfterComplete() async throws {
        try await TestMediaServer.with { server in
            let (uploadUrl, token) = try await TusTest.generate(server)
            let (first, _) = try await TusTest.create(uploadUrl, token: token, length: 3)
            #expect(try await TusTest.patch(first, offset: 0, data: Data([1, 2, 3])).status == 204)
            let (second, _) = try await TusTest.create(uploadUrl, token: token, length: 2)
            #expect(try await TusTest.patch(second, offset: 0, data: Data([9, 9])).status == 204)
            let done = try await TusTest.finalize(uploadUrl, token: token)
            #expect((done.json["file"] as? [String: Any])?["sizeInBytes"] as? String == "2")
        }
    }

    @Test("creation-with-upload with Upload-Defer-Length: the body is kept; a later PATCH declares the length")
    func creationWithUploadDeferred() async throws {
        try await TestMediaServer.with { server in
            let data = Data.random(5000)
            let (uploadUrl, token) = try await TusTest.generate(server)
            let (location, created) = try await TusTest.create(
                uploadUrl, token: token, length: nil, extraHeaders: [("Content-Type", "application/offset+octet-stream")], body: data.prefix(3000))
            #expect(created.header("Upload-Offset") == "3000")
            let head = try await TusTest.head(location)
            #expect(head.header("Upload-Offset") == "3000")
            #expect(head.header("Upload-Defer-Length") == "1")
            #expect(head.header("Upload-Length") == nil)
            let rest = try await TusTest.patch(location, offset: 3000, data: data.suffix(from: 3000), headers: [("Upload-Length", "5000")])
            #expect(rest.status == 204)
            #expect(rest.header("Upload-Offset") == "5000")
            let done = try await TusTest.finalize(uploadUrl, token: token)
            let file = try #require(done.json["file"] as? [String: Any])
            #expect(file["hash"] as? String == Self.md5(data))
            #expect(file["sizeInBytes"] as? String == "5000")

            // All of it in the POST; an empty PATCH declares the length.
            let (uploadUrl2, token2) = try await TusTest.generate(server)
            let (location2, created2) = try await TusTest.create(
                uploadUrl2, token: token2, length: nil, extraHeaders: [("Content-Type", "application/offset+octet-stream")], body: data)
            #expect(created2.header("Upload-Offset") == "5000")
            #expect(try await TusTest.patch(location2, offset: 5000, data: Data(), headers: [("Upload-Length", "5000")]).status == 204)
            let done2 = try await TusTest.finalize(uploadUrl2, token: token2)
            #expect((done2.json["file"] as? [String: Any])?["hash"] as? String == Self.md5(data))

            // A checksum on the creation body is verified like a PATCH's.
            let (uploadUrl3, token3) = try await TusTest.generate(server)
            let wrong = try await TestHTTP.send(
                .POST, uploadUrl3,
                headers: TusTest.base + [
                    ("Upload-Defer-Length", "1"), ("Upload-Metadata", TusTest.metadata(["token": token3])),
                    ("Content-Type", "application/offset+octet-stream"), ("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                ],
                body: data)
            #expect(wrong.status == 460)
        }
    }

    @Test("a token minted before ids were pre-assigned (no path claim) still finalizes")
    func tokenWithoutPath() async throws {
        try await TestMediaServer.with { server in
            let now = Int(Date().timeIntervalSince1970)
            let token = try UploadTokenTests.sign(
                ["jti": "legacy-1", "aud": "urn:service:upload", "iss": "urn:service:upload", "iat": now, "exp": now + 3600, "protocol": "tus",
                 "mimeType": "image/png", "fileName": "old.png", "parentFolderId": "media-root", "labels": [String](), "acl": "public"],
                server: server)
            let uploadUrl = server.baseURL + "/upload/tus"
            let (location, _) = try await TusTest.create(uploadUrl, token: token, length: 2, name: "old.png")
            #expect(try await TusTest.patch(location, offset: 0, data: Data([1, 2])).status == 204)
            let done = try await TusTest.finalize(uploadUrl, token: token, name: "old.png")
            #expect(done.status == 200)
            #expect(((done.json["file"] as? [String: Any])?["id"] as? String)?.hasSuffix("~mv2.png") == true)
        }
    }
}
