import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

@Suite("REST folders")
struct FoldersAPITests {
    @Test("create, get, list, rename and move")
    func lifecycle() async throws {
        try await TestMediaServer.with { server in
            let a = try await API.createFolder(server, "A")
            let b = try await API.createFolder(server, "B")
            let child = try await API.createFolder(server, "child", parent: a)

            let got = try await TestHTTP.api(.GET, server.apiURL + "/folders/" + child)
            let folder = try #require(got.json["folder"] as? [String: Any])
            #expect(folder["displayName"] as? String == "child")
            #expect(folder["parentFolderId"] as? String == a)
            #expect(folder["state"] as? String == "OK")
            #expect((folder["id"] as? String)?.count == 32)

            #expect(try await API.listNames(server, path: "/folders?sort.fieldName=displayName&sort.order=ASC") == ["A", "B"])
            let renamed = try await TestHTTP.api(
                .PATCH, server.apiURL + "/folders/" + child,
                json: ["folder": ["displayName": "renamed"], "fieldMask": ["paths": ["folder.displayName"]]])
            #expect((renamed.json["folder"] as? [String: Any])?["displayName"] as? String == "renamed")
            let moved = try await TestHTTP.api(
                .PATCH, server.apiURL + "/folders/" + child, json: ["folder": ["parentFolderId": b], "fieldMask": "parentFolderId"])
            #expect((moved.json["folder"] as? [String: Any])?["parentFolderId"] as? String == b)
            #expect(try await API.listNames(server, path: "/folders?parentFolderId=\(b)") == ["renamed"])
            #expect(try await API.listNames(server, path: "/folders?parentFolderId=\(a)").isEmpty)

            let root = try await TestHTTP.api(.GET, server.apiURL + "/folders/media-root")
            #expect(root.status == 200)
        }
    }

    @Test("errors: empty name, unknown parent, moving into itself or a descendant, unknown id")
    func errors() async throws {
        try await TestMediaServer.with { server in
            let a = try await API.createFolder(server, "A")
            let child = try await API.createFolder(server, "child", parent: a)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/folders", json: ["displayName": " "]).status == 400)
            let noName = try await TestHTTP.api(.POST, server.apiURL + "/folders", json: ["parentFolderId": a])
            #expect(noName.status == 400)
            #expect(API.errorCode(noName) == "displayName")
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/folders", json: ["displayName": "x", "parentFolderId": "nope"]).status == 404)
            #expect(try await TestHTTP.api(.PATCH, server.apiURL + "/folders/" + a, json: ["folder": ["parentFolderId": child]]).status == 400)
            #expect(try await TestHTTP.api(.PATCH, server.apiURL + "/folders/" + a, json: ["folder": ["parentFolderId": a]]).status == 400)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/folders/nope").status == 404)
            #expect(try await TestHTTP.api(.PATCH, server.apiURL + "/folders/nope", json: ["folder": ["displayName": "x"]]).status == 404)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/bulk/folders/delete", json: ["folderIds": ["media-root"]]).status == 400)
        }
    }

    @Test("deleting a folder takes its content to the trash; restoring brings it back")
    func trashWithContent() async throws {
        try await TestMediaServer.with { server in
            let album = try await API.createFolder(server, "album")
            let inner = try await API.createFolder(server, "inner", parent: album)
            let file = try await API.upload(server, name: "deep.jpg", data: Data("d".utf8), parent: inner)
            let fileId = try #require(file["id"] as? String)

            #expect(try await TestHTTP.api(.POST, server.apiURL + "/bulk/folders/delete", json: ["folderIds": [album]]).status == 200)
            #expect(try await API.listNames(server, path: "/folders").isEmpty)
            #expect(try await API.listNames(server, path: "/trash-bin/folders") == ["album"])
            let trashedFile = try await TestHTTP.api(.GET, server.apiURL + "/files/" + fileId)
            #expect((trashedFile.json["file"] as? [String: Any])?["state"] as? String == "DELETED")
            // Files inside cannot be reached by listing their (trashed) folder.
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(inner)").isEmpty)

            #expect(try await TestHTTP.api(.POST, server.apiURL + "/bulk/trash-bin/folders/restore", json: ["folderIds": [album]]).status == 200)
            #expect(try await API.listNames(server, path: "/folders") == ["album"])
            #expect(try await API.listNames(server, path: "/files?parentFolderId=\(inner)") == ["deep.jpg"])

            #expect(try await TestHTTP.api(.POST, server.apiURL + "/bulk/folders/delete", json: ["folderIds": [album], "permanent": true]).status == 200)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/folders/" + inner).status == 404)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/files/" + fileId).status == 404)
            #expect(try await API.listNames(server, path: "/trash-bin/folders").isEmpty)
        }
    }
}

@Suite("REST authentication and permissions")
struct AuthTests {
    @Test("missing or wrong keys get 401 with the envelope; Bearer is accepted")
    func keys() async throws {
        try await TestMediaServer.with { server in
            let none = try await TestHTTP.api(.GET, server.apiURL + "/files", key: nil)
            #expect(none.status == 401)
            #expect(API.errorCode(none) == "UNAUTHENTICATED")
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/files", key: "wrong").status == 401)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/files", key: TestMediaServer.apiKey + "x").status == 401)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/files", key: "Bearer " + TestMediaServer.apiKey).status == 200)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/folders", key: nil, json: ["displayName": "x"]).status == 401)
        }
    }

    @Test("a read-only key lists and gets, while uploads and changes answer 403")
    func readOnly() async throws {
        try await TestMediaServer.with { server in
            let folder = try await API.createFolder(server, "f")
            let read = TestMediaServer.readOnlyKey
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/files", key: read).status == 200)
            #expect(try await TestHTTP.api(.GET, server.apiURL + "/folders/" + folder, key: read).status == 200)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/files/get-files", key: read, json: ["fileIds": [String]()]).status == 200)
            let denied = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", key: read, json: ["mimeType": "image/png"])
            #expect(denied.status == 403)
            #expect(API.errorCode(denied) == "PERMISSION_DENIED")
            #expect(
                try await TestHTTP.api(.POST, server.apiURL + "/files/generate-resumable-upload-url", key: read, json: ["mimeType": "image/png"])
                    .status == 403)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/folders", key: read, json: ["displayName": "x"]).status == 403)
            #expect(try await TestHTTP.api(.PATCH, server.apiURL + "/folders/" + folder, key: read, json: ["folder": ["displayName": "x"]]).status == 403)
            #expect(try await TestHTTP.api(.POST, server.apiURL + "/bulk/folders/delete", key: read, json: ["folderIds": [folder]]).status == 403)
        }
    }
}
