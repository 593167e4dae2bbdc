import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A plain HTTP exchange for tests: status, headers and the whole body.
public struct TestResponse: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    public let body: Data

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? { headers.first(name: name) }

    /// The body as a JSON object.
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
    }

    public func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(T.self, from: body)
    }
}

/// Sends requests with `HTTPClient.shared`, with a timeout, for tests.
public enum TestHTTP {
    public static func send(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        body: Data? = nil,
        timeout: TimeAmount = .seconds(60)
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        var collected = try await response.body.collect(upTo: 512 << 20)
        let data = collected.readData(length: collected.readableBytes) ?? Data()
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: data)
    }

    /// A JSON request to the REST API with the given key.
    public static func api(
        _ method: HTTPMethod,
        _ url: String,
        key: String? = TestMediaServer.apiKey,
        json: Any? = nil
    ) async throws -> TestResponse {
        var headers: [(String, String)] = []
        if let key { headers.append(("Authorization", key)) }
        var body: Data?
        if let json {
            headers.append(("Content-Type", "application/json"))
            body = try JSONSerialization.data(withJSONObject: json)
        }
        return try await send(method, url, headers: headers, body: body)
    }
}
