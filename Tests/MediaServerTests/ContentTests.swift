import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

@Suite("Content URLs")
struct ContentTests {
    @Test("GET, HEAD, ranges, ETag and content type")
    func ranges() async throws {
        try await TestMediaServer.with { server in
            let data = Data.random(1_000_000)
            let file = try await API.upload(server, name: "big.png", data: data, mimeType: "image/png")
            let url = try #require(file["url"] as? String)
            let hash = try #require(file["hash"] as? String)

            let head = try await TestHTTP.send(.HEAD, url)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "1000000")
            #expect(head.header("Content-Type") == "image/png")
            #expect(head.header("Accept-Ranges") == "bytes")
            #expect(head.header("ETag") == "\"\(hash)\"")

            let cases: [(String, Range<Int>)] = [
                ("bytes=0-0", 0..<1), ("bytes=10-20", 10..<21), ("bytes=999990-", 999_990..<1_000_000),
                ("bytes=-5", 999_995..<1_000_000), ("bytes=500000-2000000", 500_000..<1_000_000),
            ]
            for (header, range) in cases {
                let response = try await TestHTTP.send(.GET, url, headers: [("Range", header)])
                #expect(response.status == 206, "\(header)")
                #expect(response.body == data.subdata(in: range), "\(header)")
                #expect(response.header("Content-Range") == "bytes \(range.lowerBound)-\(range.upperBound - 1)/1000000")
            }
            let unsatisfiable = try await TestHTTP.send(.GET, url, headers: [("Range", "bytes=1000000-")])
            #expect(unsatisfiable.status == 416)
            #expect(unsatisfiable.header("Content-Range") == "bytes */1000000")
            let notModified = try await TestHTTP.send(.GET, url, headers: [("If-None-Match", "\"\(hash)\"")])
            #expect(notModified.status == 304)
            let whole = try await TestHTTP.send(.GET, url)
            #expect(whole.body == data)

            let empty = try await API.upload(server, name: "empty.txt", data: Data(), mimeType: "text/plain")
            let emptyBody = try await TestHTTP.send(.GET, try #require(empty["url"] as? String))
            #expect(emptyBody.status == 200)
            #expect(emptyBody.body.isEmpty)
            #expect(empty["hash"] as? String == "d41d8cd98f00b204e9800998ecf8427e")
            #expect(try await TestHTTP.send(.GET, server.baseURL + "/media/nope").status == 404)
        }
    }
}
