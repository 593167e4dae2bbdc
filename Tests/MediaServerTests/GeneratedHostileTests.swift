import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// Random mutations of valid requests, from a seed: set `MEDIAFS_FUZZ_SEED` to replay a run
/// (every failure names its seed and case), `MEDIAFS_FUZZ_COUNT` for more or fewer requests.
@Suite("Hostile input: generated")
struct GeneratedHostileTests {
    /// SplitMix64: small, fast, and the same sequence for the same seed on every platform.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// A request as parts, so that mutations can work on each.
    struct Template {
        var method: String
        var target: String
        var headers: [(name: String, value: Data)]
        var body: Data
        var isJSON: Bool { headers.contains { $0.name == "Content-Type" && $0.value == Data("application/json".utf8) } }

        func bytes(keepLength: Bool) -> Data {
            var lines = [Data("\(method) \(target) HTTP/1.1".utf8)]
            lines += headers.map { Data.header($0.name, $0.value) }
            return RawHTTP.request(bytes: lines, body: body, contentLength: !keepLength)
        }
    }

    static let hostileValues: [Data] =
        HostileFixture.hostileNumbers + [
            "0", "1", "10", "9223372036854775807", "-9223372036854775807", "application/offset+octet-stream", "1.0.0", "PATCH", "DELETE",
            "bytes=0-1", "bytes=-1", "token", ",,,", "a b", "\u{0}", String(repeating: "x", count: 2000),
            "Bearer \(TestMediaServer.apiKey)",
        ].map { Data($0.utf8) } + [Data([0xC0, 0x80]), Data([0xED, 0xA0, 0x80]), Data([0x7F])]

    static let hostileJSON: [String] = [
        "null", "true", "-1", "0", "1e400", "99999999999999999999", "-0.0", #""""#, #""+5""#, #""-1""#, #"" 7""#, #""99999999999999999999""#,
        "[]", "{}", #"["a",1,null]"#, #"{"paths":[1]}"#, "\"\(String(repeating: "n", count: 1100))\"", #""\u0000""#, #""\ud800""#,
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
        "[" + Array(repeating: #""l""#, count: 150).joined(separator: ",") + "]",
    ]

    static let headerNames = [
        "Upload-Offset", "Upload-Length", "Upload-Defer-Length", "Content-Length", "Range", "Tus-Resumable", "Upload-Metadata",
        "Upload-Checksum", "X-HTTP-Method-Override", "Authorization", "Content-Type", "If-None-Match", "If-Range", "Transfer-Encoding",
    ]

    static let queryNames = [
        "paging.limit", "paging.cursor", "filename", "fileId", "parentFolderId", "sort.fieldName", "sort.order", "mediaTypes", "private", "token",
    ]

    static let hostileQueryValues = [
        "%2B10", "-1", "0", "99999999999999999999", "%FF%FE", "%00", "%20", "%", "%G1", String(repeating: "q", count: 3000), "1e3",
        "a%2Fb", "..%2F..", "DESC", "sizeInBytes", "IMAGE,VIDEO,NOPE",
    ]

    @Test("random mutations of valid requests: never a 5xx, the server keeps serving, the stored file is intact")
    func mutations() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["MEDIAFS_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let count = environment["MEDIAFS_FUZZ_COUNT"].flatMap { Int($0) } ?? 400
        var random = SeededGenerator(state: seed)
        try await HostileFixture.with { fixture in
            let templates = try await Self.templates(fixture)
            for index in 0..<count {
                var request = templates[Int.random(in: 0..<templates.count, using: &random)]
                var notes: [String] = []
                var keepLength = false
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    notes.append(Self.mutate(&request, keepLength: &keepLength, using: &random))
                }
                let label = "seed \(seed) (MEDIAFS_FUZZ_SEED=\(seed)) case \(index): \(request.method) \(request.target.prefix(60)) \(notes)"
                let response: RawHTTP.Response?
                do {
                    response = try await fixture.send(request.bytes(keepLength: keepLength))
                } catch {
                    Issue.record("\(label): \(error)")
                    break
                }
                if let response {
                    #expect(response.status < 500, "\(label): \(response)")
                }
            }
            // Still serving, still intact (checked again by the fixture when this returns).
            try await fixture.expectIntact()
            let list = try await TestHTTP.api(.GET, fixture.server.apiURL + "/files")
            #expect(list.status == 200, "seed \(seed): listing after the run: \(list.text)")
        }
    }

    /// One valid request of each kind the server takes, on live resources.
    static func templates(_ fixture: HostileFixture) async throws -> [Template] {
        let server = fixture.server
        let host: (name: String, value: Data) = ("Host", Data("127.0.0.1:\(fixture.port)".utf8))
        let auth: (name: String, value: Data) = ("Authorization", Data(TestMediaServer.apiKey.utf8))
        let json: (name: String, value: Data) = ("Content-Type", Data("application/json".utf8))
        let tus: (name: String, value: Data) = ("Tus-Resumable", Data("1.0.0".utf8))
        let octets: (name: String, value: Data) = ("Content-Type", Data("application/offset+octet-stream".utf8))
        let folder = try await API.createFolder(server, "fuzz")
        let victim = try await API.upload(server, name: "victim.jpg", data: Data.random(5000), parent: folder)
        let victimId = try #require(victim["id"] as? String)
        let upload = try await fixture.tusUpload(length: nil, prefix: 3)
        let creation = try await TusTest.generate(server)
        let simple = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: ["mimeType": "text/plain"])
        let simplePath = fixture.path(try #require(simple.json["uploadUrl"] as? String))
        let metadata = Data(TusTest.metadata(["token": creation.token, "filename": "f.bin", "contentType": "video/mp4"]).utf8)
        func body(_ object: Any) throws -> Data { try JSONSerialization.data(withJSONObject: object) }
        return [
            Template(method: "PATCH", target: upload.path, headers: [host, tus, ("Upload-Offset", Data("3".utf8)), octets], body: Data([1, 2, 3])),
            Template(
                method: "PATCH", target: upload.path, headers: [host, tus, ("Upload-Offset", Data("3".utf8)), ("Upload-Length", Data("4".utf8)), octets],
                body: Data([4])),
            Template(method: "POST", target: fixture.path(creation.uploadUrl), headers: [host, tus, ("Upload-Length", Data("10".utf8)), ("Upload-Metadata", metadata)], body: Data()),
            Template(
                method: "POST", target: fixture.path(creation.uploadUrl),
                headers: [host, tus, ("Upload-Defer-Length", Data("1".utf8)), ("Upload-Metadata", metadata), octets], body: Data([1, 2])),
            Template(method: "HEAD", target: upload.path, headers: [host, tus], body: Data()),
            Template(method: "DELETE", target: fixture.path(creation.uploadUrl) + "/0123", headers: [host, tus], body: Data()),
            Template(method: "PUT", target: fixture.path(upload.uploadUrl) + "/" + upload.token + "?filename=done.bin", headers: [host, json], body: Data("{}".utf8)),
            Template(method: "PUT", target: simplePath + "?filename=a.txt", headers: [host, ("Content-Type", Data("text/plain".utf8))], body: Data("abc".utf8)),
            Template(
                method: "GET", target: "/site-media/v1/files?parentFolderId=\(folder)&paging.limit=10&sort.fieldName=displayName&sort.order=ASC",
                headers: [host, auth], body: Data()),
            Template(method: "GET", target: "/site-media/v1/files/get-file-by-id?fileId=\(victimId)", headers: [host, auth], body: Data()),
            Template(method: "GET", target: "/site-media/v1/folders?parentFolderId=\(folder)", headers: [host, auth], body: Data()),
            Template(
                method: "POST", target: "/site-media/v1/files/generate-upload-url", headers: [host, auth, json],
                body: try body(["mimeType": "image/png", "fileName": "a.png", "sizeInBytes": "100", "labels": ["x"], "filePath": "/fz/a", "private": false])),
            Template(
                method: "POST", target: "/site-media/v1/files/generate-resumable-upload-url", headers: [host, auth, json],
                body: try body(["mimeType": "video/mp4", "fileName": "a.mp4", "sizeInBytes": "100", "uploadProtocol": "TUS", "parentFolderId": folder])),
            Template(method: "POST", target: "/site-media/v1/folders", headers: [host, auth, json], body: try body(["displayName": "n", "parentFolderId": folder])),
            Template(
                method: "PATCH", target: "/site-media/v1/files/update-file-descriptor", headers: [host, auth, json],
                body: try body(["file": ["id": victimId, "displayName": "v.jpg", "labels": ["a"]], "fieldMask": "displayName,labels"])),
            Template(
                method: "PATCH", target: "/site-media/v1/folders/\(folder)", headers: [host, auth, json],
                body: try body(["folder": ["displayName": "fuzz2"], "fieldMask": ["paths": ["folder.displayName"]]])),
            Template(method: "POST", target: "/site-media/v1/files/get-files", headers: [host, auth, json], body: try body(["fileIds": [victimId]])),
            Template(
                method: "POST", target: "/site-media/v1/files/\(victimId)/generate-download-url", headers: [host, auth, json],
                body: try body(["expirationInMinutes": 5, "downloadFileName": "d.jpg"])),
            Template(method: "GET", target: "/media/\(victimId)", headers: [host, ("Range", Data("bytes=0-10".utf8))], body: Data()),
            Template(method: "GET", target: "/site-media/v1/trash-bin/files?paging.limit=5", headers: [host, auth], body: Data()),
        ]
    }

    /// Applies one random mutation and says which.
    static func mutate(_ request: inout Template, keepLength: inout Bool, using random: inout SeededGenerator) -> String {
        func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &random)] }
        switch Int.random(in: 0..<9, using: &random) {
        case 0 where !request.headers.isEmpty:
            let index = Int.random(in: 0..<request.headers.count, using: &random)
            let value = pick(hostileValues)
            request.headers[index].value = value
            if request.headers[index].name == "Content-Length" { keepLength = true }
            return "value of \(request.headers[index].name)"
        case 1 where !request.headers.isEmpty:
            let header = pick(request.headers)
            request.headers.append((header.name, Bool.random(using: &random) ? header.value : pick(hostileValues)))
            return "duplicated \(header.name)"
        case 2 where !request.headers.isEmpty:
            let index = Int.random(in: 0..<request.headers.count, using: &random)
            let name = request.headers.remove(at: index).name
            return "removed \(name)"
        case 3:
            let name = pick(headerNames)
            request.headers.append((name, pick(hostileValues)))
            if name == "Content-Length" { keepLength = true }
            return "added \(name)"
        case 4:
            let separator = request.target.contains("?") ? "&" : "?"
            let name = pick(queryNames)
            request.target += separator + name + "=" + pick(hostileQueryValues)
            return "query \(name)"
        case 5:
            var segments = request.target.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard segments.count > 2 else { return "no segment" }
            let index = Int.random(in: 1..<segments.count, using: &random)
            segments[index] = pick(["%FF", "..", "%00", "%2F", String(repeating: "s", count: 5000), "", "%C3%28", "x%20y"])
            request.target = segments.joined(separator: "/")
            return "segment \(index)"
        case 6 where request.isJSON:
            guard var object = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any], !object.isEmpty else { return "not an object" }
            let key = pick(object.keys.sorted())
            object[key] = nil
            var text = String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
            let insertion = "\"\(key)\":\(pick(hostileJSON))"
            text = text == "{}" ? "{\(insertion)}" : "{\(insertion)," + text.dropFirst()
            request.body = Data(text.utf8)
            return "JSON \(key)"
        case 7 where !request.body.isEmpty:
            var body = request.body
            let position = body.startIndex + Int.random(in: 0..<body.count, using: &random)
            body[position] = UInt8.random(in: 0...255, using: &random)
            request.body = body
            return "flipped a body byte"
        case 8 where !request.body.isEmpty:
            request.body = request.body.prefix(Int.random(in: 0..<request.body.count, using: &random))
            if Bool.random(using: &random) {
                request.headers.append(("Content-Length", Data(String(request.body.count + Int.random(in: 1...1000, using: &random)).utf8)))
                keepLength = true
                return "body shorter than Content-Length"
            }
            return "truncated body"
        default:
            request.headers.append(("X-Noise", Data((0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0x80...0xFF, using: &random) })))
            return "non-UTF-8 header"
        }
    }
}
