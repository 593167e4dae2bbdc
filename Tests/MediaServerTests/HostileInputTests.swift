import Crypto
import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// Hand-written hostile requests: every number the server reads from a header, query or body,
/// tokens, path segments and JSON bodies, malformed, huge, negative, overflowing, non-UTF-8
/// and duplicated. Each answer is a 4xx (with the error envelope where the server's code
/// answers), the server keeps serving, and a file stored before is intact afterwards.
@Suite("Hostile input")
struct HostileInputTests {
    @Test("a PATCH whose Content-Length overflows the offset arithmetic is a 413, not a crash")
    func patchLengthOverflow() async throws {
        try await HostileFixture.with { fixture in
            for length in [100, nil] as [Int?] {
                let upload = try await fixture.tusUpload(length: length, prefix: 10)
                for declared in ["9223372036854775807", "9223372036854775797", "9223372036854775798"] {
                    let request = RawHTTP.request(
                        [
                            "PATCH \(upload.path) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Offset: 10",
                            "Content-Type: application/offset+octet-stream", "Content-Length: \(declared)",
                        ],
                        body: Data(repeating: 1, count: 10))
                    let response = try await fixture.expectRefused(request, "Content-Length \(declared), length \(String(describing: length))", status: 413...413)
                    #expect(response?.header("Upload-Offset") == "10")
                }
                let head = try await TusTest.head(fixture.server.baseURL + upload.path)
                #expect(head.header("Upload-Offset") == "10")
            }
        }
    }

    @Test("Upload-Offset, Upload-Length and Upload-Defer-Length: every hostile spelling is a 400")
    func tusNumbers() async throws {
        try await HostileFixture.with { fixture in
            let upload = try await fixture.tusUpload(length: nil, prefix: 10)
            let (uploadUrl, token) = try await TusTest.generate(fixture.server)
            let metadata = "Upload-Metadata: " + TusTest.metadata(["token": token, "filename": "n.bin"])
            let creation = "POST \(fixture.path(uploadUrl)) HTTP/1.1"
            let patch = "PATCH \(upload.path) HTTP/1.1"
            for value in HostileFixture.hostileNumbers {
                let shown = String(decoding: value.prefix(30), as: UTF8.self)
                try await fixture.expectRefused(
                    RawHTTP.request(
                        bytes: [Data(patch.utf8), Data(fixture.host.utf8), Data("Tus-Resumable: 1.0.0".utf8), .header("Upload-Offset", value),
                                Data("Content-Type: application/offset+octet-stream".utf8)],
                        body: Data([1])),
                    "PATCH Upload-Offset '\(shown)'", status: 400...400)
                try await fixture.expectRefused(
                    RawHTTP.request(
                        bytes: [Data(patch.utf8), Data(fixture.host.utf8), Data("Tus-Resumable: 1.0.0".utf8), Data("Upload-Offset: 10".utf8),
                                .header("Upload-Length", value), Data("Content-Type: application/offset+octet-stream".utf8)],
                        body: Data([1])),
                    "PATCH Upload-Length '\(shown)'", status: 400...400)
                try await fixture.expectRefused(
                    RawHTTP.request(
                        bytes: [Data(creation.utf8), Data(fixture.host.utf8), Data("Tus-Resumable: 1.0.0".utf8), .header("Upload-Length", value),
                                Data(metadata.utf8)]),
                    "POST Upload-Length '\(shown)'", status: 400...400)
                try await fixture.expectRefused(
                    RawHTTP.request(
                        bytes: [Data(creation.utf8), Data(fixture.host.utf8), Data("Tus-Resumable: 1.0.0".utf8), .header("Upload-Defer-Length", value),
                                Data(metadata.utf8)]),
                    "POST Upload-Defer-Length '\(shown)'", status: 400...400)
            }
            // Repeated headers, even with equal values, are refused rather than guessed at.
            try await fixture.expectRefused(
                RawHTTP.request(
                    [patch, fixture.host, "Tus-Resumable: 1.0.0", "Upload-Offset: 10", "Upload-Offset: 10",
                     "Content-Type: application/offset+octet-stream"],
                    body: Data([1])),
                "duplicated Upload-Offset", status: 400...400)
            try await fixture.expectRefused(
                RawHTTP.request([creation, fixture.host, "Tus-Resumable: 1.0.0", "Upload-Length: 5", "Upload-Length: 5", metadata]),
                "duplicated Upload-Length", status: 400...400)
            try await fixture.expectRefused(
                RawHTTP.request([creation, fixture.host, "Tus-Resumable: 1.0.0", "Upload-Defer-Length: 1", "Upload-Defer-Length: 1", metadata]),
                "duplicated Upload-Defer-Length", status: 400...400)
            // In range but too large for this server.
            try await fixture.expectRefused(
                RawHTTP.request([creation, fixture.host, "Tus-Resumable: 1.0.0", "Upload-Length: 9223372036854775807", metadata]),
                "Upload-Length Int64.max", status: 413...413)
            try await fixture.expectRefused(
                RawHTTP.request(
                    [patch, fixture.host, "Tus-Resumable: 1.0.0", "Upload-Offset: 9223372036854775807",
                     "Content-Type: application/offset+octet-stream"],
                    body: Data([1])),
                "Upload-Offset Int64.max", status: 409...409)
            #expect(try await TusTest.head(fixture.server.baseURL + upload.path).header("Upload-Offset") == "10")
            // None of this used the token up.
            _ = try await TusTest.create(uploadUrl, token: token, length: 1)
        }
    }

    @Test("Content-Length: malformed, duplicated, negative or overflowing framing is refused")
    func contentLength() async throws {
        try await HostileFixture.with { fixture in
            let upload = try await fixture.tusUpload(length: 100, prefix: 10)
            let head = ["PATCH \(upload.path) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Offset: 10",
                        "Content-Type: application/offset+octet-stream"]
            let framings: [[String]] = [
                ["Content-Length: 99999999999999999999"], ["Content-Length: 18446744073709551616"], ["Content-Length: -1"],
                ["Content-Length: +5"], ["Content-Length: 5, 6"], ["Content-Length: 5", "Content-Length: 6"], ["Content-Length: 0x5"],
                ["Content-Length: 5", "Transfer-Encoding: chunked"], ["Transfer-Encoding: gzip, chunked, identity"],
            ]
            for framing in framings {
                let response = try await fixture.send(RawHTTP.request(head + framing, body: Data(repeating: 2, count: 5), contentLength: false))
                // The HTTP parser refuses bad framing before any handler runs (a plain 400), or
                // the handler does (with the envelope); either way nothing is written.
                if let response {
                    #expect((400..<500).contains(response.status), "\(framing): \(response)")
                }
                #expect(try await TusTest.head(fixture.server.baseURL + upload.path).header("Upload-Offset") == "10", "\(framing)")
            }
            // Declared larger than the upload's remaining length: refused before a byte is read.
            try await fixture.expectRefused(
                RawHTTP.request(head + ["Content-Length: 91"], body: Data(repeating: 2, count: 91), contentLength: false),
                "Content-Length past the length", status: 413...413)
            let creation = try await TusTest.generate(fixture.server)
            try await fixture.expectRefused(
                RawHTTP.request(
                    ["POST \(fixture.path(creation.uploadUrl)) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Length: 4",
                     "Upload-Metadata: " + TusTest.metadata(["token": creation.token]), "Content-Type: application/offset+octet-stream",
                     "Content-Length: 9223372036854775807"],
                    body: Data([1, 2, 3, 4]), contentLength: false),
                "creation-with-upload past its Upload-Length", status: 413...413)
            try await fixture.expectRefused(
                RawHTTP.request(
                    ["POST \(fixture.path(creation.uploadUrl)) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Defer-Length: 1",
                     "Upload-Metadata: " + TusTest.metadata(["token": creation.token]), "Content-Type: application/offset+octet-stream",
                     "Content-Length: 9223372036854775807"],
                    body: Data([1, 2, 3, 4]), contentLength: false),
                "deferred creation-with-upload past Tus-Max-Size", status: 413...413)
        }
    }

    @Test("Range: hostile positions never fail the request; bytes served are the file's")
    func ranges() async throws {
        try await HostileFixture.with { fixture in
            let whole = try await TestHTTP.send(.GET, fixture.fileURL)
            let size = whole.body.count
            let ranges = [
                "bytes=-0", "bytes=+1-2", "bytes=1-+2", "bytes=0x1-2", "bytes=1-2-3", "bytes=-", "bytes=", "bytes=5-4",
                "bytes=99999999999999999999-", "bytes=-99999999999999999999", "bytes=0-99999999999999999999",
                "bytes=9223372036854775807-9223372036854775807", "bytes=-9223372036854775807", "bytes=0-0,5-6", "bytes=١-٢",
                "items=0-1", "bytes=\(size)-", "bytes=-1", String(repeating: "bytes=0-1,", count: 500),
            ]
            for range in ranges {
                let response = try #require(
                    try await fixture.send(RawHTTP.request(["GET \(fixture.path(fixture.fileURL)) HTTP/1.1", fixture.host, "Range: \(range)"])))
                switch response.status {
                case 200:
                    #expect(response.body == whole.body, "\(range)")
                case 206:
                    let parts = try #require(response.header("Content-Range")?.dropFirst(6).split(separator: "/").first?.split(separator: "-"))
                    let start = try #require(Int(parts[0]))
                    let end = try #require(Int(parts[1]))
                    #expect(response.body == whole.body.subdata(in: start..<end + 1), "\(range)")
                case 416:
                    #expect(response.header("Content-Range") == "bytes */\(size)", "\(range)")
                default:
                    Issue.record("\(range): \(response)")
                }
            }
            let twice = try #require(
                try await fixture.send(
                    RawHTTP.request(["GET \(fixture.path(fixture.fileURL)) HTTP/1.1", fixture.host, "Range: bytes=0-1", "Range: bytes=2-3"])))
            #expect(twice.status == 200 && twice.body == whole.body)
            let nonUTF8 = try #require(
                try await fixture.send(
                    RawHTTP.request(bytes: [Data("GET \(fixture.path(fixture.fileURL)) HTTP/1.1".utf8), Data(fixture.host.utf8),
                                            .header("Range", Data([0x62, 0x79, 0x74, 0x65, 0x73, 0x3D, 0xFF, 0x2D, 0x31]))])))
            #expect([200, 400].contains(nonUTF8.status), "\(nonUTF8)")
        }
    }

    @Test("paging.limit, paging.cursor and the other list parameters: hostile values are 400s")
    func listParameters() async throws {
        try await HostileFixture.with { fixture in
            let base = "/site-media/v1/files"
            func get(_ query: String) -> Data {
                RawHTTP.request(["GET \(base)?\(query) HTTP/1.1", fixture.host, fixture.auth])
            }
            let limits = ["%2B10", "%2010", "10%20", "-1", "0", "1001", "10abc", "1e2", "99999999999999999999", "%D9%A1%D9%A0", "%FF", "10.5"]
            for limit in limits {
                try await fixture.expectRefused(get("paging.limit=\(limit)"), "paging.limit=\(limit)", status: 400...400)
            }
            func cursor(_ json: String) -> String {
                Data(json.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                    .replacingOccurrences(of: "=", with: "")
            }
            let cursors = [
                "garbage", String(repeating: "A", count: 5000), "%FF%FE",
                cursor(#"{"field":"updatedDate","order":"DESC","key":"nan","id":"x"}"#),
                cursor(#"{"field":"updatedDate","order":"DESC","key":"inf","id":"x"}"#),
                cursor(#"{"field":"sizeInBytes","order":"DESC","key":"+5","id":"x"}"#),
                cursor(#"{"field":"displayName","order":"DESC","key":"a","id":"x"}"#),
                Data([0xFF, 0xFE, 0x00]).base64EncodedString(),
            ]
            for value in cursors {
                try await fixture.expectRefused(get("paging.cursor=\(value)"), "paging.cursor=\(value.prefix(40))", status: 400...400)
            }
            try await fixture.expectRefused(
                get("sort.fieldName=sizeInBytes&sort.order=DESC&paging.cursor=\(cursor(#"{"field":"sizeInBytes","order":"DESC","key":"99999999999999999999","id":"x"}"#))"),
                "size cursor past Int64", status: 400...400)
            for query in ["sort.fieldName=%FF", "sort.order=%00", "mediaTypes=%FF", "private=%FF", "private=maybe", "sort.fieldName=" + String(repeating: "x", count: 20000)] {
                try await fixture.expectRefused(get(query), query.prefix(40).description, status: 400...400)
            }
            for query in ["parentFolderId=%FF%FE", "parentFolderId=" + String(repeating: "x", count: 30000), "fileId=%00"] {
                let response = try #require(try await fixture.send(get(query)))
                #expect(response.status < 500, "\(query.prefix(40)): \(response)")
            }
        }
    }

    @Test("JSON numbers: sizeInBytes and expirationInMinutes out of range or misspelt are 400s")
    func jsonNumbers() async throws {
        try await HostileFixture.with { fixture in
            func post(_ path: String, _ json: String) -> Data {
                RawHTTP.request(
                    ["POST /site-media/v1\(path) HTTP/1.1", fixture.host, fixture.auth, "Content-Type: application/json"], body: Data(json.utf8))
            }
            let sizes = [
                #""+5""#, #""-1""#, #"" 5""#, #""5 ""#, #""1e3""#, #""0x10""#, #""99999999999999999999""#, #""١٠""#, #""""#,
                "-1", "1e30", "5.5", "99999999999999999999", "-9223372036854775808", #"{"a":1}"#, "[1]", "true", #""9223372036854775807""#,
            ]
            for size in sizes {
                for path in ["/files/generate-upload-url", "/files/generate-resumable-upload-url"] {
                    try await fixture.expectRefused(
                        post(path, #"{"mimeType":"image/png","sizeInBytes":\#(size)}"#), "\(path) sizeInBytes \(size)", status: 400...400)
                }
            }
            let id = try #require(URL(string: fixture.fileURL)?.lastPathComponent)
            for minutes in ["0", "-1", "525601", "1e30", "9223372036854775807", "9223372036854775808", #""5""#, "5.5", "null1", "[5]"] {
                try await fixture.expectRefused(
                    post("/files/\(id)/generate-download-url", #"{"expirationInMinutes":\#(minutes)}"#), "expirationInMinutes \(minutes)",
                    status: 400...400)
            }
        }
    }

    @Test("JSON bodies: too large, deeply nested, not UTF-8, truncated, duplicated keys, wrong types")
    func jsonBodies() async throws {
        try await HostileFixture.with { fixture in
            func post(_ path: String, _ body: Data, headers: [String] = ["Content-Type: application/json"]) -> Data {
                RawHTTP.request(["POST /site-media/v1\(path) HTTP/1.1", fixture.host, fixture.auth] + headers, body: body)
            }
            let big = Data(#"{"displayName":""#.utf8) + Data(repeating: UInt8(ascii: "a"), count: (1 << 20) + 10) + Data(#""}"#.utf8)
            try await fixture.expectRefused(post("/folders", big), "a body over 1 MiB", status: 413...413)
            let chunkedBig = RawHTTP.request(
                ["POST /site-media/v1/folders HTTP/1.1", fixture.host, fixture.auth, "Content-Type: application/json", "Transfer-Encoding: chunked"],
                body: Data(String(format: "%x\r\n", big.count).utf8) + big + Data("\r\n0\r\n\r\n".utf8), contentLength: false)
            try await fixture.expectRefused(chunkedBig, "a chunked body over 1 MiB", status: 413...413)
            let bodies: [(String, Data)] = [
                ("deeply nested arrays", Data(repeating: UInt8(ascii: "["), count: 200_000)),
                ("deeply nested objects", Data(String(repeating: #"{"a":"#, count: 100_000).utf8)),
                ("nested valid JSON", Data((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8)),
                ("not UTF-8", Data([0x7B, 0x22, 0x64, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D])),
                ("a string not UTF-8", Data(#"{"displayName":""#.utf8) + Data([0xC3, 0x28, 0xA0, 0xA1]) + Data(#""}"#.utf8)),
                ("truncated", Data(#"{"displayName":"ab"#.utf8)),
                ("empty", Data()),
                ("null", Data("null".utf8)),
                ("a number", Data("99999999999999999999999999".utf8)),
                ("NUL bytes", Data([0x00, 0x00, 0x00])),
                ("wrong type", Data(#"{"displayName":12}"#.utf8)),
            ]
            for (what, body) in bodies {
                try await fixture.expectRefused(post("/folders", body), "folders: \(what)", status: 400...400)
                try await fixture.expectRefused(post("/files/generate-upload-url", body), "generate: \(what)", status: 400...400)
                try await fixture.expectRefused(post("/files/get-files", body), "get-files: \(what)", status: 400...400)
            }
            // Duplicated keys and a lone surrogate: taken one way or refused, never a crash or a 5xx.
            for body in [#"{"displayName":"a","displayName":"b"}"#, #"{"displayName":"\ud800"}"#] {
                let response = try #require(try await fixture.send(post("/folders", Data(body.utf8))))
                #expect(response.status == 200 || response.status == 400, "\(body): \(response)")
            }
            // Too many ids, and ids too long.
            let many = try JSONSerialization.data(withJSONObject: ["fileIds": (0..<1001).map { "id\($0)" }])
            try await fixture.expectRefused(post("/files/get-files", many), "1001 ids", status: 400...400)
            try await fixture.expectRefused(post("/bulk/files/delete", many), "1001 ids to delete", status: 400...400)
            let long = try JSONSerialization.data(withJSONObject: ["folderIds": [String(repeating: "f", count: 300)]])
            try await fixture.expectRefused(post("/bulk/folders/delete", long), "a 300-byte id", status: 400...400)
        }
    }

    @Test("tokens: garbage, huge, tampered, of the wrong kind, in every place one is read")
    func tokens() async throws {
        try await HostileFixture.with { fixture in
            let (uploadUrl, token) = try await TusTest.generate(fixture.server)
            var parts = token.split(separator: ".").map(String.init)
            parts[1] = String(parts[1].reversed())
            let hostile: [String] = [
                "garbage", "a.b.c", "..", String(repeating: "A", count: 40_000), "%FF%FE.%00.x", parts.joined(separator: "."),
                token + "x", "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.",
            ]
            for value in hostile {
                let shown = String(value.prefix(30))
                try await fixture.expectRefused(
                    RawHTTP.request(["PUT /upload/\(value)?filename=a.txt HTTP/1.1", fixture.host], body: Data("x".utf8)),
                    "simple upload token '\(shown)'", status: 401...404)
                try await fixture.expectRefused(
                    RawHTTP.request(["PUT \(fixture.path(uploadUrl))/\(value)?filename=a.txt HTTP/1.1", fixture.host, "Content-Type: application/json"],
                                    body: Data("{}".utf8)),
                    "finalize token '\(shown)'", status: 401...404)
                try await fixture.expectRefused(
                    RawHTTP.request(["GET /download/x?token=\(value) HTTP/1.1", fixture.host]), "download token '\(shown)'", status: 401...404)
                if value.count < 10_000 {
                    try await fixture.expectRefused(
                        RawHTTP.request(
                            ["POST \(fixture.path(uploadUrl)) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Length: 1",
                             "Upload-Metadata: " + TusTest.metadata(["token": value])]),
                        "tus token '\(shown)'", status: 401...403)
                }
            }
            // A token twice in the metadata, or metadata twice.
            let doubled = "token \(Data(token.utf8).base64EncodedString()),token \(Data(token.utf8).base64EncodedString())"
            try await fixture.expectRefused(
                RawHTTP.request(["POST \(fixture.path(uploadUrl)) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Length: 1",
                                 "Upload-Metadata: \(doubled)"]),
                "token twice", status: 400...400)
            let metadata = "Upload-Metadata: " + TusTest.metadata(["token": token])
            try await fixture.expectRefused(
                RawHTTP.request(["POST \(fixture.path(uploadUrl)) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Length: 1", metadata, metadata]),
                "metadata twice", status: 400...400)
            // None of it used the token up.
            _ = try await TusTest.create(uploadUrl, token: token, length: 1)
        }
    }

    @Test("Upload-Metadata, Upload-Checksum, Tus-Resumable, method override and Authorization: hostile values")
    func otherHeaders() async throws {
        try await HostileFixture.with { fixture in
            let (uploadUrl, token) = try await TusTest.generate(fixture.server)
            let creation = "POST \(fixture.path(uploadUrl)) HTTP/1.1"
            let tokenPair = "token " + Data(token.utf8).base64EncodedString()
            let metadatas: [Data] = [
                Data("\(tokenPair),filename !!!notbase64".utf8),
                Data("\(tokenPair),filename \(Data([0xFF, 0xFE, 0x41]).base64EncodedString())".utf8),  // value not UTF-8
                Data("\(tokenPair),filename \(Data(String(repeating: "n", count: 1025).utf8).base64EncodedString())".utf8),
                Data("\(tokenPair),".utf8) + Data([0xC3, 0xA9]) + Data(" YQ==".utf8),  // key not ASCII
                Data("\(tokenPair),a b c".utf8),
                Data("\(tokenPair),filename YQ==,filename Yg==".utf8),
            ]
            for (index, metadata) in metadatas.enumerated() {
                try await fixture.expectRefused(
                    RawHTTP.request(bytes: [Data(creation.utf8), Data(fixture.host.utf8), Data("Tus-Resumable: 1.0.0".utf8),
                                            Data("Upload-Length: 1".utf8), .header("Upload-Metadata", metadata)]),
                    "metadata #\(index)", status: 400...400)
            }
            let upload = try await fixture.tusUpload(length: 10)
            let patch = ["PATCH \(upload.path) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
                         "Content-Type: application/offset+octet-stream"]
            for checksum in ["sha1", "sha1 !!!", "sha1 AAAA AAAA", "md5 " + String(repeating: "A", count: 20000), "SHA1 AAAA", "sha1 AAAA, sha1 AAAA"] {
                try await fixture.expectRefused(
                    RawHTTP.request(patch + ["Upload-Checksum: \(checksum)"], body: Data([1])), "checksum '\(checksum.prefix(20))'", status: 400...460)
            }
            for version in ["1.0.0, 1.0.0", "", "1.0.0 ", "1.0"] {
                let response = try await fixture.expectRefused(
                    RawHTTP.request(["PATCH \(upload.path) HTTP/1.1", fixture.host, "Tus-Resumable: \(version)", "Tus-Resumable: 1.0.0",
                                     "Upload-Offset: 0", "Content-Type: application/offset+octet-stream"], body: Data([1])),
                    "Tus-Resumable '\(version)' and 1.0.0", status: 412...412)
                #expect(response?.header("Tus-Version") == "1.0.0")
            }
            for method in ["GET", "PUT", "%FF", "", "PATCH, DELETE"] {
                try await fixture.expectRefused(
                    RawHTTP.request(["POST \(upload.path) HTTP/1.1", fixture.host, "Tus-Resumable: 1.0.0", "X-HTTP-Method-Override: \(method)"]),
                    "override '\(method)'", status: 405...405)
            }
            let keys: [Data] = [
                Data(), Data("Bearer".utf8), Data("Bearer ".utf8), Data(repeating: 0x61, count: 60_000), Data([0xFF, 0xFE]),
                Data("\(TestMediaServer.apiKey)x".utf8), Data("Basic \(TestMediaServer.apiKey)".utf8),
            ]
            for key in keys {
                try await fixture.expectRefused(
                    RawHTTP.request(bytes: [Data("GET /site-media/v1/files HTTP/1.1".utf8), Data(fixture.host.utf8), .header("Authorization", key)]),
                    "Authorization \(key.count) bytes", status: 401...401)
            }
            try await fixture.expectRefused(
                RawHTTP.request(["GET /site-media/v1/files HTTP/1.1", fixture.host, fixture.auth, fixture.auth]), "Authorization twice",
                status: 401...401)
        }
    }

    @Test("path segments: not UTF-8, NUL, dot-dot, encoded slashes, huge")
    func pathSegments() async throws {
        try await HostileFixture.with { fixture in
            let segments = ["%FF%FE", "%00", "..", "%2E%2E", "..%2F..%2Fsecret", "%2F", String(repeating: "z", count: 30_000), "a%20b", "%C3%28"]
            for segment in segments {
                let shown = String(segment.prefix(20))
                let requests: [(String, [String])] = [
                    ("GET /site-media/v1/files/\(segment) HTTP/1.1", [fixture.auth]),
                    ("GET /site-media/v1/folders/\(segment) HTTP/1.1", [fixture.auth]),
                    ("PATCH /site-media/v1/folders/\(segment) HTTP/1.1", [fixture.auth, "Content-Type: application/json"]),
                    ("GET /media/\(segment) HTTP/1.1", []),
                    ("HEAD /media/\(segment) HTTP/1.1", []),
                    ("HEAD /upload/tus/\(segment) HTTP/1.1", ["Tus-Resumable: 1.0.0"]),
                    ("DELETE /upload/tus/\(segment) HTTP/1.1", ["Tus-Resumable: 1.0.0"]),
                    ("PATCH /upload/tus/\(segment) HTTP/1.1", ["Tus-Resumable: 1.0.0", "Upload-Offset: 0", "Content-Type: application/offset+octet-stream"]),
                ]
                for (line, headers) in requests {
                    let isHead = line.hasPrefix("HEAD")
                    let body = line.hasPrefix("PATCH /site") ? Data(#"{"folder":{"displayName":"x"}}"#.utf8) : line.hasPrefix("PATCH") ? Data([1]) : Data()
                    try await fixture.expectRefused(
                        RawHTTP.request([line, fixture.host] + headers, body: body), "\(line.prefix(40)) '\(shown)'", envelope: !isHead)
                }
            }
            let nonUTF8 = Data("GET /site-media/v1/files/".utf8) + Data([0xFF, 0xFE, 0x80]) + Data(" HTTP/1.1".utf8)
            let response = try await fixture.send(RawHTTP.request(bytes: [nonUTF8, Data(fixture.host.utf8), Data(fixture.auth.utf8)]))
            if let response { #expect((400..<500).contains(response.status), "\(response)") }
        }
    }
}
