import Crypto
import Foundation
import MediaServerTesting
import NIOCore
import NIOHTTP1
import Testing

/// A server holding one stored file whose bytes must come through every hostile request
/// intact, and raw-socket helpers to send such requests.
struct HostileFixture {
    let server: TestMediaServer
    let port: Int
    let fileURL: String
    let fileMD5: String

    /// Starts a server, stores a file, runs `body`, then checks that the server still serves
    /// and that the file's bytes are unchanged (MD5 through its content URL).
    static func with(_ body: (HostileFixture) async throws -> Void) async throws {
        try await TestMediaServer.with { server in
            let data = Data.random(100_000)
            let file = try await API.upload(server, name: "keep.bin", data: data, mimeType: "application/octet-stream")
            let fixture = HostileFixture(
                server: server,
                port: try #require(URL(string: server.baseURL)?.port),
                fileURL: try #require(file["url"] as? String),
                fileMD5: md5(data))
            try await body(fixture)
            try await fixture.expectIntact()
        }
    }

    static func md5(_ data: Data) -> String {
        Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    var host: String { "Host: 127.0.0.1:\(port)" }
    var auth: String { "Authorization: \(TestMediaServer.apiKey)" }

    /// The path of an absolute URL the server handed out.
    func path(_ url: String) -> String {
        guard let parsed = URL(string: url) else { return url }
        return parsed.path + (parsed.query.map { "?" + $0 } ?? "")
    }

    func send(_ request: Data) async throws -> RawHTTP.Response? {
        try await RawHTTP.exchange(port: port, request)
    }

    /// Sends `request` and expects a 4xx in `status` carrying the API's error envelope.
    @discardableResult
    func expectRefused(
        _ request: Data,
        _ what: String,
        status: ClosedRange<Int> = 400...499,
        envelope: Bool = true,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RawHTTP.Response? {
        let response = try await send(request)
        guard let response else {
            Issue.record("\(what): the connection closed without an answer", sourceLocation: sourceLocation)
            return nil
        }
        #expect(status.contains(response.status), "\(what): \(response)", sourceLocation: sourceLocation)
        if envelope {
            #expect(response.isErrorEnvelope, "\(what): no error envelope: \(response)", sourceLocation: sourceLocation)
        }
        return response
    }

    /// The server still answers and the stored file is intact.
    func expectIntact(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let options = try await TestHTTP.send(.OPTIONS, server.baseURL + "/upload/tus", timeout: .seconds(10))
        #expect(options.status == 204, "the server stopped answering", sourceLocation: sourceLocation)
        let content = try await TestHTTP.send(.GET, fileURL, timeout: .seconds(10))
        #expect(content.status == 200, sourceLocation: sourceLocation)
        #expect(Self.md5(content.body) == fileMD5, "the stored file changed", sourceLocation: sourceLocation)
    }

    /// A deferred-length (or `length`) tus upload holding `prefix` bytes; its path and token.
    func tusUpload(length: Int?, prefix: Int = 0) async throws -> (path: String, token: String, uploadUrl: String) {
        let (uploadUrl, token) = try await TusTest.generate(server, name: "hostile.bin", mimeType: "application/octet-stream")
        let (location, _) = try await TusTest.create(uploadUrl, token: token, length: length, name: "hostile.bin")
        if prefix > 0 {
            let response = try await TusTest.patch(location, offset: 0, data: Data(repeating: 7, count: prefix))
            try #require(response.status == 204, "\(response.status) \(response.text)")
        }
        return (path(location), token, uploadUrl)
    }

    /// The hostile spellings of a number: signs, whitespace inside, other bases and scripts,
    /// fractions, overflow of Int64 and UInt64, empty.
    static let hostileNumbers: [Data] = [
        "", "-1", "+10", "-0", "1e3", "0x10", "10.0", "10 10", "1_000", "ten", "99999999999999999999",
        "9223372036854775808", "18446744073709551616", "-9223372036854775808", "000000000000000000000000000000000000000000001x",
    ].map { Data($0.utf8) } + [
        Data("١٠".utf8),  // Arabic-Indic digits
        Data("１０".utf8),  // full-width digits
        Data([0x31, 0xFF, 0x30]),  // not UTF-8
        Data(repeating: UInt8(ascii: "9"), count: 4000),
    ]
}

extension Data {
    /// `"Name: "` followed by the raw value bytes.
    static func header(_ name: String, _ value: Data) -> Data {
        Data("\(name): ".utf8) + value
    }
}
