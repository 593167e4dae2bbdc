import Foundation
import Logging
import MediaServer
import MediaServerTesting
import NIOHTTP1
import Testing

/// The data directory holds private files' bytes: nothing in it is readable by other users.
@Suite("Data directory permissions")
struct DataDirectoryTests {
    static func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int)
    }

    /// Every directory under `root` (itself included) is 0700 and every file 0600.
    static func expectPrivate(_ root: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try mode(root) == 0o700, "\(root)", sourceLocation: sourceLocation)
        let enumerator = try #require(FileManager.default.enumerator(atPath: root))
        var checked = 0
        while let relative = enumerator.nextObject() as? String {
            let path = root + "/" + relative
            let type = try FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType
            let expected = type == .typeDirectory ? 0o700 : 0o600
            let actual = try mode(path)
            #expect(actual == expected, "\(relative) is \(String(actual, radix: 8))", sourceLocation: sourceLocation)
            checked += 1
        }
        #expect(checked > 0, sourceLocation: sourceLocation)
    }

    @Test("a new data directory, its SQLite files, secret and blobs are 0700/0600; an old loose one is tightened at start")
    func permissions() async throws {
        try await TemporaryDirectory.with(prefix: "mediafs-perms") { temporary in
            // An old layout: everything readable by all.
            let old = temporary.path + "/old"
            try FileManager.default.createDirectory(atPath: old + "/blobs", withIntermediateDirectories: true)
            for path in [old, old + "/blobs"] { chmod(path, 0o755) }
            _ = FileManager.default.createFile(atPath: old + "/site-id", contents: Data("0123456789abcdef\n".utf8))
            chmod(old + "/site-id", 0o644)

            for directory in [temporary.path + "/new/nested/data", old] {
                let configuration = MediaServerConfiguration(dataDirectory: directory, host: "127.0.0.1", port: 0, apiKey: TestMediaServer.apiKey)
                var logger = Logger(label: "test.permissions")
                logger.logLevel = .error
                let server = try await MediaServer.start(configuration, logger: logger)
                do {
                    let api = server.baseURL + "/site-media/v1"
                    let generated = try await TestHTTP.api(.POST, api + "/files/generate-upload-url", json: ["mimeType": "application/pdf", "private": true])
                    let url = try #require(generated.json["uploadUrl"] as? String)
                    #expect(try await TestHTTP.send(.PUT, url + "?filename=secret.pdf", body: Data("private bytes".utf8)).status == 200)
                    let resumable = try await TestHTTP.api(.POST, api + "/files/generate-resumable-upload-url", json: ["mimeType": "video/mp4"])
                    let uploadUrl = try #require(resumable.json["uploadUrl"] as? String)
                    let token = try #require(resumable.json["uploadToken"] as? String)
                    let (location, _) = try await TusTest.create(uploadUrl, token: token, length: 10)
                    #expect(try await TusTest.patch(location, offset: 0, data: Data(repeating: 1, count: 4)).status == 204)
                    try Self.expectPrivate(directory)
                    let files = try FileManager.default.contentsOfDirectory(atPath: directory)
                    #expect(files.contains("mediafs.sqlite") && files.contains("secret"), "\(files)")
                    #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/blobs").count == 2)
                } catch {
                    await server.stop()
                    throw error
                }
                await server.stop()
            }
            // What the CLI makes before the server: the API key file and its directory.
            let keyed = temporary.path + "/cli/data"
            let key = try DataDirectory.apiKey(in: keyed)
            #expect(key.created)
            try Self.expectPrivate(keyed)
        }
    }
}
