import Foundation
import MediaServerTesting
import NIOHTTP1
import Testing

/// Helpers shared by the server suites.
enum API {
    static func createFolder(_ server: TestMediaServer, _ name: String, parent: String? = nil) async throws -> String {
        var body: [String: Any] = ["displayName": name]
        if let parent { body["parentFolderId"] = parent }
        let response = try await TestHTTP.api(.POST, server.apiURL + "/folders", json: body)
        try #require(response.status == 200, "create folder: \(response.text)")
        return try #require((response.json["folder"] as? [String: Any])?["id"] as? String)
    }

    /// Uploads `data` through a simple upload URL and returns the descriptor.
    static func upload(
        _ server: TestMediaServer,
        name: String,
        data: Data,
        mimeType: String = "image/jpeg",
        parent: String? = nil,
        extra: [String: Any] = [:]
    ) async throws -> [String: Any] {
        var body: [String: Any] = ["mimeType": mimeType, "fileName": name]
        if let parent { body["parentFolderId"] = parent }
        body.merge(extra) { $1 }
        let generated = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-upload-url", json: body)
        try #require(generated.status == 200, "generate-upload-url: \(generated.text)")
        let url = try #require(generated.json["uploadUrl"] as? String)
        let name = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
        let put = try await TestHTTP.send(.PUT, url + "?filename=" + name, headers: [("Content-Type", mimeType)], body: data)
        try #require(put.status == 200, "simple upload: \(put.text)")
        return try #require(put.json["file"] as? [String: Any])
    }

    static func listNames(_ server: TestMediaServer, path: String) async throws -> [String] {
        let response = try await TestHTTP.api(.GET, server.apiURL + path)
        try #require(response.status == 200, "\(path): \(response.text)")
        let key = path.contains("folders") ? "folders" : "files"
        return (response.json[key] as? [[String: Any]] ?? []).compactMap { $0["displayName"] as? String }
    }

    /// The application or validation code of an error envelope.
    static func errorCode(_ response: TestResponse) -> String? {
        let details = response.json["details"] as? [String: Any]
        if let application = details?["applicationError"] as? [String: Any] { return application["code"] as? String }
        if let validation = details?["validationError"] as? [String: Any],
            let violations = validation["fieldViolations"] as? [[String: Any]]
        {
            return violations.first?["field"] as? String
        }
        return nil
    }
}

/// tus helpers.
enum TusTest {
    static let base: [(String, String)] = [("Tus-Resumable", "1.0.0")]

    static func metadata(_ pairs: [String: String]) -> String {
        pairs.keys.sorted().map { "\($0) \(Data(pairs[$0]!.utf8).base64EncodedString())" }.joined(separator: ",")
    }

    /// Generates a resumable URL and token.
    static func generate(_ server: TestMediaServer, name: String = "clip.mp4", mimeType: String = "video/mp4", extra: [String: Any] = [:])
        async throws -> (uploadUrl: String, token: String)
    {
        var body: [String: Any] = ["mimeType": mimeType, "fileName": name]
        body.merge(extra) { $1 }
        let response = try await TestHTTP.api(.POST, server.apiURL + "/files/generate-resumable-upload-url", json: body)
        try #require(response.status == 200, "generate-resumable-upload-url: \(response.text)")
        #expect(response.json["uploadProtocol"] as? String == "TUS")
        return (try #require(response.json["uploadUrl"] as? String), try #require(response.json["uploadToken"] as? String))
    }

    /// Creates a tus upload and returns its absolute URL.
    static func create(
        _ uploadUrl: String,
        token: String,
        length: Int?,
        name: String = "clip.mp4",
        extraHeaders: [(String, String)] = [],
        body: Data? = nil
    ) async throws -> (location: String, response: TestResponse) {
        var headers = base + [("Upload-Metadata", metadata(["filename": name, "contentType": "video/mp4", "token": token]))]
        if let length { headers.append(("Upload-Length", String(length))) } else { headers.append(("Upload-Defer-Length", "1")) }
        headers += extraHeaders
        let response = try await TestHTTP.send(.POST, uploadUrl, headers: headers, body: body)
        try #require(response.status == 201, "tus POST: \(response.status) \(response.text)")
        return (try #require(response.header("Location")), response)
    }

    static func patch(_ location: String, offset: Int, data: Data, headers extra: [(String, String)] = []) async throws -> TestResponse {
        try await TestHTTP.send(
            .PATCH, location,
            headers: base + [("Upload-Offset", String(offset)), ("Content-Type", "application/offset+octet-stream")] + extra,
            body: data)
    }

    static func head(_ location: String) async throws -> TestResponse {
        try await TestHTTP.send(.HEAD, location, headers: base)
    }

    static func finalize(_ uploadUrl: String, token: String, name: String? = "clip.mp4") async throws -> TestResponse {
        let query = name.map { "?filename=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) } ?? ""
        return try await TestHTTP.send(
            .PUT, uploadUrl + "/" + token + query, headers: [("Content-Type", "application/json")], body: Data("{}".utf8))
    }
}
