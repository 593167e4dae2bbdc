import Crypto
import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// The independent Python client `tuspy` uploads through the documented flow.
@Suite("Interop with tuspy")
struct InteropTests {
    static let script = """
        import sys, requests
        from tusclient import client
        upload_url, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
        c = client.TusClient(upload_url)
        u = c.uploader(path, chunk_size=4 * 1024 * 1024,
                       metadata={"filename": "interop.bin", "contentType": "application/octet-stream", "token": token})
        u.upload()
        r = requests.put(upload_url + "/" + token, params={"filename": "interop.bin"}, json={})
        r.raise_for_status()
        print(r.json()["file"]["url"])
        """

    @Test("tuspy uploads 20 MiB: generate URL, tus with the token metadata, finalize; the bytes match")
    func tuspyUpload() async throws {
        let python = try #require(Programs.which("python3"), "python3 is needed")
        let check = try await Programs.run(python, ["-c", "import tusclient, requests"])
        try #require(check.status == 0, "tuspy is not installed (make deps installs it): \(check.output)")
        try await TestMediaServer.with { server in
            let data = Data.random(20 << 20)
            let path = server.directory.path + "/interop.bin"
            try data.write(to: URL(fileURLWithPath: path))
            let (uploadUrl, token) = try await TusTest.generate(server, name: "interop.bin", mimeType: "application/octet-stream")
            let result = try await Programs.run(python, ["-c", Self.script, uploadUrl, token, path])
            try #require(result.status == 0, "tuspy failed: \(result.output)")
            let url = try #require(result.output.split(separator: "\n").last.map(String.init))
            let content = try await TestHTTP.send(.GET, url)
            #expect(content.body.count == data.count)
            #expect(Insecure.MD5.hash(data: content.body) == Insecure.MD5.hash(data: data))
        }
    }
}
