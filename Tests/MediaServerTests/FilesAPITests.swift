import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

@Suite("REST files")
struct FilesAPITests {
    @Test("simple upload, get in both forms, get-files, and the wire format")
    func uploadAndGet() async throws {
        try await TestMediaServer.with { server in
            let data = Data("hello world".utf8)
            let file = try await API.upload(server, name: "greeting.jpg", data: data, extra: ["labels": ["a", "b"]])
            let id = try #require(file["id"] as? String)
            #expect(file["sizeInBytes"] as? String == "11")
            #expect(file["hash"] as? String == "5eb63bbbe01eeed093cb22bb8f5acdc3")
            #expect(file["mediaType"] as? String == "IMAGE")
            #expect(file["operationStatus"] as? String == "READY")
            #expect(file["parentFolderId"] as? String == "media-root")
            #expect(file["labels"] as? [String] == ["a", "b"])
            #expect(file["private"] as? Bool == false)
            let created = try #require(file["createdDate"] as? String)
            #expect(created.hasSuffix("Z") && created.contains("T"))
            #expect(id.contains("~mv2.jpg"))

            let byQuery = try await TestHTTP.api(.GET, server.apiURL + "/files/get-file-by-id?fileId=" + id)
            #expect(byQuery.status == 200)
            #expect((byQuery.json["file"] as? [String: Any])?["id"] as? String == id)
            let byPath = try await TestHTTP.api(.GET, server.apiURL + "/files/" + id)
            #expect((byPath.json["file"] as? [String: Any])?["displayName"] as? String == "greeting.jpg")
            let viaWixURL = try await TestHTTP.api(
                .GET, server.apiURL + "/files/get-file-by-id?fileId=" + "wix:image://v1/\(id)/greeting.jpg#originWidth=1".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(viaWixURL.status == 200)

            let many = try await TestHTTP.api(.POST, server.apiURL + "/files/get-files", json: ["fileIds": [id]])
            #expect((many.json["files"] as? [Any])?.count == 1)
            let missing = try await TestHTTP.api(.POST, server.apiURL + "/files/get-files", json: ["fileIds": [id, "nope"]])
            #expect(missing.status == 404)

            let content = try await TestHTTP.send(.GET, try #require(file["url"] as? String))
            #expect(content.body == data)
        }
    }

    @Test("unknown ids, bad JSON and missing fields answer with the envelope")
    func errors() async throws {
        try await TestMediaServer.with { server in
            let unknown = try await TestHTTP.api(.GET, server.apiURL + "/files/get-file-by-id?fileId=nope")
            #expect(unknown.status == 404)
            #expect(API.errorCode(unknown) == "NOT_FOUND")
            #expect((unknown.json["message"] as? String)?.contains("nope") == true)
            let noId = try await TestHTTP.api(.GET, server.apiURL + "/files/get-file-by-id")
            #expect(noId.status == 400)

            let badJSON = try await TestHTTP.send(
                .POST, server.apiURL + "/files/generate-upload-url",
                headers: [("Authorization", TestMediaServer.apiKey), ("Content-Type", "application/json")], body: Data("{nope".utf8))
            #expect(badJSON.status == 400)
            #expect(API.errorCode(badJSON) == "body")

            let noMime = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["fileName": "x.jpg"])
            #expect(noMime.status == 400)
            #expect(API.errorCode(noMime) == "mimeType")

            let badMime = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "jpeg"])
            #expect(badMime.status == 400)

            let wrongType = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "image/png", "labels": "x"])
            #expect(wrongType.status == 400)
            #expect(API.errorCode(wrongType) == "labels")

            let badFolder = try await TestHTTP.api(
                .POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "image/png", "parentFolderId": "nope"])
            #expect(badFolder.status == 404)

            let badLimit = try await TestHTTP.api(.GET, server.apiURL + "/files?paging.limit=0")
            #expect(badLimit.status == 400)
            let badCursor = try await TestHTTP.api(.GET, server.apiURL + "/files?paging.cursor=garbage")
            #expect(badCursor.status == 400)
            let badSort = try await TestHTTP.api(.GET, server.apiURL + "/files?sort.fieldName=color")
            #expect(badSort.status == 400)

            let unknownUpdate = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/update-file-descriptor", json: ["file": ["id": "nope", "displayName": "x"]])
            #expect(unknownUpdate.status == 404)
            let noIdUpdate = try await TestHTTP.api(.PATCH, server.apiURL + "/files/update-file-descriptor", json: ["file": ["displayName": "x"]])
            #expect(noIdUpdate.status == 400)
            let unknownDelete = try await TestHTTP.api(.POST, server.apiURL + "/bulk/files/delete", json: ["fileIds": ["nope"]])
            #expect(unknownDelete.status == 404)
            let noIds = try await TestHTTP.api(.POST, server.apiURL + "/bulk/files/delete", json: [String: Any]())
            #expect(noIds.status == 400)
            #expect(API.errorCode(noIds) == "fileIds")
        }
    }

    @Test("list: folder contents, filters, sorting and cursor paging through every file once")
    func listAndPaging() async throws {
        try await TestMediaServer.with { server in
            let folder = try await API.createFolder(server, "many")
            var names: [String] = []
            for index in 0..<23 {
                let name = String(format: "f%02d.%@", index, index % 2 == 0 ? "jpg" : "pdf")
                names.append(name)
                _ = try await API.upload(
                    server, name: name, data: Data(repeating: UInt8(index), count: index), mimeType: index % 2 == 0 ? "image/jpeg" : "application/pdf",
                    parent: folder)
            }
            _ = try await API.upload(server, name: "root.jpg", data: Data("r".utf8))

            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                var url = server.apiURL + "/files?parentFolderId=\(folder)&sort.fieldName=displayName&sort.order=ASC&paging.limit=10"
                if let cursor { url += "&paging.cursor=" + cursor }
                let page = try await TestHTTP.api(.GET, url)
                try #require(page.status == 200)
                seen += (page.json["files"] as? [[String: Any]] ?? []).compactMap { $0["displayName"] as? String }
                let next = page.json["nextCursor"] as? [String: Any]
                cursor = (next?["hasNext"] as? Bool == true) ? (next?["cursors"] as? [String: Any])?["next"] as? String : nil
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen == names)

            let descending = try await API.listNames(server, path: "/files?parentFolderId=\(folder)&sort.fieldName=displayName&sort.order=DESC&paging.limit=100")
            #expect(descending == names.reversed())
            let images = try await API.listNames(server, path: "/files?parentFolderId=\(folder)&mediaTypes=IMAGE&paging.limit=100")
            #expect(images.count == 12)
            let bySize = try await API.listNames(server, path: "/files?parentFolderId=\(folder)&sort.fieldName=sizeInBytes&sort.order=DESC&paging.limit=3")
            #expect(bySize == ["f22.jpg", "f21.pdf", "f20.jpg"])
            let root = try await API.listNames(server, path: "/files")
            #expect(root == ["root.jpg"])
        }
    }

    @Test("update by both paths, with every fieldMask form; move; labels")
    func update() async throws {
        try await TestMediaServer.with { server in
            let folder = try await API.createFolder(server, "dest")
            let file = try await API.upload(server, name: "a.jpg", data: Data("a".utf8))
            let id = try #require(file["id"] as? String)

            let renamed = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/update-file-descriptor",
                json: ["file": ["id": id, "displayName": "b.jpg", "labels": ["x"]], "fieldMask": "displayName"])
            #expect(renamed.status == 200)
            let afterRename = try #require(renamed.json["file"] as? [String: Any])
            #expect(afterRename["displayName"] as? String == "b.jpg")
            #expect(afterRename["labels"] as? [String] == [])  // masked out

            let moved = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/\(id)/update",
                json: ["file": ["parentFolderId": folder, "labels": ["l1", "l2"]], "fieldMask": ["paths": ["file.parentFolderId", "file.labels"]]])
            #expect(moved.status == 200)
            let afterMove = try #require(moved.json["file"] as? [String: Any])
            #expect(afterMove["parentFolderId"] as? String == folder)
            #expect(afterMove["labels"] as? [String] == ["l1", "l2"])

            let arrayMask = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/update-file-descriptor",
                json: ["file": ["id": id, "displayName": "c.jpg"], "fieldMask": ["displayName"]])
            #expect((arrayMask.json["file"] as? [String: Any])?["displayName"] as? String == "c.jpg")

            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(folder)") == ["c.jpg"])
            #expect(try await API.listNames(server, path: "/files").isEmpty)

            let toMissing = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/update-file-descriptor", json: ["file": ["id": id, "parentFolderId": "nope"]])
            #expect(toMissing.status == 404)
            let emptyName = try await TestHTTP.api(
                .PATCH, server.apiURL + "/files/update-file-descriptor", json: ["file": ["id": id, "displayName": ""]])
            #expect(emptyName.status == 400)
        }
    }

    @Test("delete to the trash, list the trash, restore; permanent delete removes the content")
    func trash() async throws {
        try await TestMediaServer.with { server in
            let folder = try await API.createFolder(server, "album")
            let file = try await API.upload(server, name: "p.jpg", data: Data("p".utf8), parent: folder)
            let id = try #require(file["id"] as? String)
            let url = try #require(file["url"] as? String)

            let deleted = try await TestHTTP.api(.POST, server.apiURL + "/bulk/files/delete", json: ["fileIds": [id]])
            #expect(deleted.status == 200)
            #expect(deleted.text == "{}")
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(folder)").isEmpty)
            #expect(try await API.listNames(server, path: "/trash-bin/files") == ["p.jpg"])
            let trashed = try await TestHTTP.api(.GET, server.apiURL + "/files/" + id)
            #expect((trashed.json["file"] as? [String: Any])?["state"] as? String == "DELETED")
            #expect((trashed.json["file"] as? [String: Any])?["parentFolderId"] as? String == "trash-root")
            // Deleting what is already in the trash is not an error.
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/bulk/files/delete", json: ["fileIds": [id]]).status == 200)

            let restored = try await TestHTTP.api(.POST, server.apiURL + "/bulk/trash-bin/files/restore", json: ["fileIds": [id]])
            #expect(restored.status == 200)
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(folder)") == ["p.jpg"])
            #expect(try await API.listNames(server, path: "/trash-bin/files").isEmpty)

            // The docs' sample sends permanent as a string.
            let permanent = try await TestHTTP.api(.POST, server.apiURL + "/bulk/files/delete", json: ["fileIds": [id], "permanent": "true"])
            #expect(permanent.status == 200)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/files/" + id).status == 404)
            #expect(try await TestHTTP.send(.GET, url).status == 404)
            #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory.path + "/blobs").isEmpty)
        }
    }

    @Test("filePath creates the folders; the file lands in the last one")
    func filePath() async throws {
        try await TestMediaServer.with { server in
            _ = try await API.upload(server, name: "v.mp4", data: Data("v".utf8), mimeType: "video/mp4", extra: ["filePath": "/videos/2024/december"])
            _ = try await API.upload(server, name: "w.mp4", data: Data("w".utf8), mimeType: "video/mp4", extra: ["filePath": "videos/2024/december"])
            let top = try await TestHTTP.api(.GET, server.apiURL + "/folders")
            let videos = try #require((top.json["folders"] as? [[String: Any]])?.first)
            #expect(videos["displayName"] as? String == "videos")
            let year = try await TestHTTP.api(.GET, server.apiURL + "/folders?parentFolderId=\(videos["id"] as! String)")
            let yearId = try #require((year.json["folders"] as? [[String: Any]])?.first?["id"] as? String)
            let month = try await TestHTTP.api(.GET, server.apiURL + "/folders?parentFolderId=\(yearId)")
            let monthId = try #require((month.json["folders"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(monthId)&sort.fieldName=displayName").sorted() == ["v.mp4", "w.mp4"])
        }
    }
}
