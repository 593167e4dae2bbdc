import Backoff
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

extension MediaManagerClient {
    /// The largest response body the client reads.
    static let maximumResponseBody = 64 * 1024 * 1024

    /// Characters left as they are in a path segment or query component (RFC 3986 unreserved).
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Percent-encodes `text` for use as one path segment or query component.
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    /// `key=value&…`, each component percent-encoded; `nil` values are left out.
    static func queryString(_ items: [(String, String?)]) -> String {
        items.compactMap { key, value in value.map { "\(encode(key))=\(encode($0))" } }.joined(separator: "&")
    }

    /// What a REST or upload-host call needs.
    struct Call: Sendable {
        var method: HTTPMethod
        /// An absolute URL.
        var url: String
        /// A short label for logs, free of secrets (no upload tokens).
        var label: String
        var body: ByteBuffer?
        var contentType: String?
        /// Whether the call carries `Authorization` and `wix-site-id`.
        var authenticated: Bool
        /// Whether a transport failure may be retried (the call is safe to repeat).
        var idempotent: Bool
        var timeout: Duration
    }

    func restCall(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String?)] = [],
        idempotent: Bool
    ) -> Call {
        let queryText = Self.queryString(query)
        return Call(
            method: method,
            url: apiRoot + "/" + path + (queryText.isEmpty ? "" : "?" + queryText),
            label: "\(method.rawValue) \(path)",
            body: nil,
            contentType: nil,
            authenticated: true,
            idempotent: idempotent,
            timeout: configuration.timeouts.request
        )
    }

    /// Sends a REST call with a JSON body and decodes the JSON answer.
    func send<Request: Encodable & Sendable, Response: Decodable>(
        _ call: Call,
        body: Request,
        as type: Response.Type
    ) async throws -> Response {
        var call = call
        do {
            call.body = try WireFormat.makeEncoder().encodeAsByteBuffer(body, allocator: ByteBufferAllocator())
        } catch {
            throw MediaManagerError(code: .invalidArgument, message: "Cannot encode the request body", underlying: error)
        }
        call.contentType = "application/json"
        return try await send(call, as: type)
    }

    /// Sends a call and decodes the JSON answer.
    func send<Response: Decodable>(_ call: Call, as type: Response.Type) async throws -> Response {
        let (status, body) = try await perform(call)
        do {
            return try WireFormat.makeDecoder().decode(Response.self, from: body)
        } catch {
            throw MediaManagerError(
                code: .invalidResponse,
                status: status,
                message: "Cannot decode the answer of \(call.label)",
                underlying: error
            )
        }
    }

    /// Sends a call, retrying 429/5xx (and transport failures of idempotent calls); returns a 2xx answer.
    func perform(_ call: Call) async throws -> (status: Int, body: ByteBuffer) {
        let retry = configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            if Task.isCancelled {
                throw MediaManagerError(code: .cancelled, message: "\(call.label) was cancelled")
            }
            var request = HTTPClientRequest(url: call.url)
            request.method = call.method
            request.headers.add(name: "Accept", value: "application/json")
            if call.authenticated {
                if let key = configuration.apiKey { request.headers.add(name: "Authorization", value: key) }
                if let site = configuration.siteID { request.headers.add(name: "wix-site-id", value: site) }
            }
            if let contentType = call.contentType {
                request.headers.add(name: "Content-Type", value: contentType)
            }
            if let body = call.body {
                request.headers.add(name: "Content-Length", value: String(body.readableBytes))
                request.body = .bytes(body)
            } else if call.method == .PUT || call.method == .POST || call.method == .PATCH {
                request.headers.add(name: "Content-Length", value: "0")
            }

            let status: Int
            let headers: HTTPHeaders
            let body: ByteBuffer
            do {
                // AHC gets no logger so that request headers (the API key) never reach a log.
                let response = try await httpClient.execute(request, deadline: .now() + TimeAmount(call.timeout))
                status = Int(response.status.code)
                headers = response.headers
                body = try await response.body.collect(upTo: Self.maximumResponseBody)
            } catch {
                if Task.isCancelled {
                    throw MediaManagerError(code: .cancelled, message: "\(call.label) was cancelled", underlying: error)
                }
                guard call.idempotent, attempt < retry.maximumAttempts else {
                    throw MediaManagerError(code: .transport, message: "\(call.label) failed: \(error)", underlying: error)
                }
                let delay = backoff(attempt: attempt)
                logger.warning(
                    "media manager request failed; retrying",
                    metadata: ["mm.call": "\(call.label)", "mm.error": "\(error)", "mm.attempt": "\(attempt)", "mm.delay": "\(delay)"]
                )
                try await sleep(delay, label: call.label)
                continue
            }

            logger.debug("media manager request", metadata: ["mm.call": "\(call.label)", "mm.status": "\(status)"])
            if (200..<300).contains(status) {
                return (status, body)
            }
            let error = Self.statusError(status: status, body: body, label: call.label)
            // On the upload host, 429 means a reused single-use token: repeating cannot help.
            let retryable = (500...599).contains(status) || (status == 429 && call.authenticated)
            guard retryable, attempt < retry.maximumAttempts else {
                throw error
            }
            var delay = backoff(attempt: attempt)
            if let retryAfter = headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter) {
                guard retryAfter <= retry.maximumRetryAfter else { throw error }
                delay = max(delay, retryAfter)
            }
            logger.warning(
                "media manager request refused; retrying",
                metadata: ["mm.call": "\(call.label)", "mm.status": "\(status)", "mm.attempt": "\(attempt)", "mm.delay": "\(delay)"]
            )
            try await sleep(delay, label: call.label)
        }
    }

    private func sleep(_ delay: Duration, label: String) async throws {
        do {
            try await Task.sleep(for: delay)
        } catch {
            throw MediaManagerError(code: .cancelled, message: "\(label) was cancelled", underlying: error)
        }
    }

    /// The backoff before attempt `attempt + 1`: exponential, capped, with jitter.
    func backoff(attempt: Int) -> Duration {
        configuration.retry.delay(forAttempt: attempt - 1)
    }


    /// `Retry-After` as seconds or as an HTTP date.
    static func parseRetryAfter(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(trimmed) {
            return .seconds(max(0, seconds))
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSinceNow * 1000)))
    }

    static func statusError(status: Int, body: ByteBuffer, label: String) -> MediaManagerError {
        let envelope = try? WireFormat.makeDecoder().decode(ErrorEnvelope.self, from: body)
        var message = envelope?.message ?? ""
        if message.isEmpty, envelope == nil {
            message = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
            if message.count > 300 { message = String(message.prefix(300)) + "…" }
        }
        if message.isEmpty {
            message = "\(label) failed with HTTP \(status)"
        }
        return MediaManagerError(
            code: MediaManagerError.Code(status: status),
            status: status,
            message: message,
            applicationCode: envelope?.code,
            envelope: envelope
        )
    }
}
