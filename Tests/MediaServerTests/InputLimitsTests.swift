import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// Names are at most 1,024 characters (Unicode scalars) wherever one enters; labels at most 100
/// of at most 256 characters; `filePath` at most 32 folders.
@Suite("Input limits")
struct InputLimitsTests {
    /// A name of exactly `count` characters, two bytes each in UTF-8, ending in `.jpg`.
    static func name(_ count: Int) -> String { String(repeating: "é", count: count - 4) + ".jpg" }

    static func percent(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }

    @Test("folder create and update: 1,024 characters are accepted, 1,025 refused")
    func folderNames() async throws {
        try await TestMediaServer.with { server in
            let created = try await TestHTTP.api(.POST, server.apiURL + "/folders", json: ["displayName": Self.name(1024)])
            #expect(created.status == 200)
            let id = try #require((created.json["folder"] as? [String: Any])?["id"] as? String)
            #expect((created.json["folder"] as? [String: Any])?["displayName"] as? String == Self.name(1024))
            let tooLong = try await TestHTTP.api(.POST, server.apiURL + "/folders", json: ["displayName": Self.name(1025)])
            #expect(tooLong.status == 400)
            #expect(API.errorCode(tooLong) == "displayName")
            let huge = try await TestHTTP.api(.POST, server.apiURL + "/folders", json: ["displayName": String(repeating: "a", count: 100_000)])
            #expect(huge.status == 400)
            let renamed = try await TestHTTP.api(.PATCH, server.apiURL + "/folders/\(id)", json: ["folder": ["displayName": Self.name(1025)]])
            #expect(renamed.status == 400)
            #expect(API.errorCode(renamed) == "folder.displayName")
            #expect(try await TestHTTP.api(.PATCH, server.apiURL + "/folders/\(id)", json: ["folder": ["displayName": "short"]]).status == 200)
            #expect(try await API.listNames(server, path: "/folders") == ["short"])
        }
    }

    @Test("file names: update (both routes), generate fileName, simple ?filename, tus metadata, finalize ?filename, downloadFileName")
    func fileNames() async throws {
        try await TestMediaServer.with { server in
            let file = try await API.upload(server, name: Self.name(1024), data: Data("x".utf8))
            #expect(file["displayName"] as? String == Self.name(1024))
            let id = try #require(file["id"] as? String)
            let longUpdate = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/update-file-descriptor", json: ["file": ["id": id, "displayName": Self.name(1025)]])
            #expect(longUpdate.status == 400)
            #expect(API.errorCode(longUpdate) == "file.displayName")
            let longPathUpdate = try await TestHTTP.api(.PATCH, server.apiURL + "/files/\(id)/update", json: ["file": ["displayName": Self.name(1025)]])
            #expect(longPathUpdate.status == 400)

            for path in ["/files/generate-upload-url", "/files/generate-resumable-upload-url"] {
                let generated = try await TestHTTP.api(.POST, server.apiURL + path, json: ["mimeType": "image/jpeg", "fileName": Self.name(1025)])
                #expect(generated.status == 400, "\(path)")
                #expect(API.errorCode(generated) == "fileName", "\(path)")
            }

            let simple = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "image/jpeg"])
            let url = try #require(simple.json["uploadUrl"] as? String)
            let refused = try await TestHTTP.send(.PUT, url + "?filename=" + Self.percent(Self.name(1025)), body: Data("x".utf8))
            #expect(refused.status == 400)
            #expect(API.errorCode(refused) == "filename")
            let twice = try await TestHTTP.send(.PUT, url + "?filename=a.jpg&filename=b.jpg", body: Data("x".utf8))
            #expect(twice.status == 400)
            // Refusals leave the single-use token unused.
            #expect(try await TestHTTP.send(.PUT, url + "?filename=ok.jpg", body: Data("x".utf8)).status == 200)

            let (uploadUrl, token) = try await TusTest.generate(server, name: "clip.mp4")
            let longMetadata = try await TestHTTP.send(
                .POST, uploadUrl,
                headers: TusTest.base + [("Upload-Length", "1"), ("Upload-Metadata", TusTest.metadata(["token": token, "filename": Self.name(1025)]))])
            #expect(longMetadata.status == 400)
            #expect(longMetadata.header("Tus-Resumable") == "1.0.0")
            let (location, _) = try await TusTest.create(uploadUrl, token: token, length: 1, name: Self.name(1024))
            #expect(try await TusTest.patch(location, offset: 0, data: Data([1])).status == 204)
            let longFinal = try await TusTest.finalize(uploadUrl, token: token, name: Self.name(1025))
            #expect(longFinal.status == 400)
            let final = try await TusTest.finalize(uploadUrl, token: token, name: Self.name(1024))
            #expect(final.status == 200)

            let download = try await TestHTTP.api(
                .POST, server.apiURL + "/files/\(id)/generate-download-url", json: ["downloadFileName": Self.name(1025)])
            #expect(download.status == 400)
            #expect(API.errorCode(download) == "downloadFileName")
        }
    }

    @Test("labels: at most 100, each 1 to 256 characters, on generate and update")
    func labels() async throws {
        try await TestMediaServer.with { server in
            let many = (0..<101).map { "l\($0)" }
            let long = String(repeating: "é", count: 257)
            for path in ["/files/generate-upload-url", "/files/generate-resumable-upload-url"] {
                for labels in [many, [long], [""]] {
                    let response = try await TestHTTP.api(.POST, server.apiURL + path, json: ["mimeType": "image/png", "labels": labels])
                    #expect(response.status == 400, "\(path) \(labels.count) labels")
                }
            }
            let file = try await API.upload(
                server, name: "a.jpg", data: Data("a".utf8), extra: ["labels": Array(many.prefix(100))])
            #expect((file["labels"] as? [String])?.count == 100)
            let id = try #require(file["id"] as? String)
            let update = try await TestHTTP.api(.PATCH, server.apiURL + "/files/\(id)/update", json: ["file": ["labels": many]])
            #expect(update.status == 400)
            #expect(API.errorCode(update) == "file.labels")
            let longOne = try await TestHTTP.api(.PATCH, server.apiURL + "/files/\(id)/update", json: ["file": ["labels": ["ok", long]]])
            #expect(longOne.status == 400)
            #expect(API.errorCode(longOne) == "file.labels[1]")
            let fine = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/\(id)/update", json: ["file": ["labels": [String(repeating: "é", count: 256)]]])
            #expect(fine.status == 200)
        }
    }

    @Test("filePath: each folder name is a display name; at most 32 folders")
    func filePath() async throws {
        try await TestMediaServer.with { server in
            for path in ["/a/\(Self.name(1025))/b", (0..<33).map { "f\($0)" }.joined(separator: "/")] {
                let response = try await TestHTTP.api(
                    .POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "image/png", "filePath": path])
                #expect(response.status == 400)
                #expect(API.errorCode(response) == "filePath")
            }
            #expect(try await API.listNames(server, path: "/folders").isEmpty, "a refused filePath creates no folder")
            let deep = (0..<32).map { "f\($0)" }.joined(separator: "/")
            let accepted = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "image/png", "filePath": deep])
            #expect(accepted.status == 200)
        }
    }

    @Test("MIME types: not one, too long or with control characters are refused; a bad hint is not stored")
    func mimeTypes() async throws {
        try await TestMediaServer.with { server in
            for mimeType in ["image", "/png", "image/", "image/" + String(repeating: "p", count: 300), "image/png\r\nX-Evil: 1", "imäge/png"] {
                let response = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": mimeType])
                #expect(response.status == 400, "\(mimeType.prefix(20))")
            }
            let file = try await API.upload(
                server, name: "song.mp3", data: Data("x".utf8), mimeType: "application/octet-stream")
            #expect(file["mediaType"] as? String == "AUDIO")
            let generated = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "application/octet-stream"])
            let url = try #require(generated.json["uploadUrl"] as? String)
            let hinted = try await TestHTTP.send(
                .PUT, url + "?filename=b.png", headers: [("Content-Type", String(repeating: "x", count: 300) + "/y")], body: Data("x".utf8))
            #expect(hinted.status == 200)
            let content = try await TestHTTP.send(.GET, try #require((hinted.json["file"] as? [String: Any])?["url"] as? String))
            #expect(content.header("Content-Type") == "image/png")
        }
    }
}
