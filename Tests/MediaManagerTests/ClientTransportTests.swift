import Backoff
import Foundation
import Logging
import MediaManager
import Testing

/// Retries, headers and URL encoding of `MediaManagerClient`, against a scripted HTTP server.
@Suite("MediaManagerClient transport")
struct ClientTransportTests {
    static let ok = ScriptedHTTPServer.Reply(status: 200, body: #"{"folder":{"id":"f1","displayName":"x","parentFolderId":"media-root"}}"#)

    func withServer(
        _ script: [ScriptedHTTPServer.Reply],
        fallback: ScriptedHTTPServer.Reply = ok,
        attempts: Int = 5,
        _ body: (ScriptedHTTPServer, MediaManagerClient) async throws -> Void
    ) async throws {
        let server = ScriptedHTTPServer(script: script, fallback: fallback)
        try await server.start()
        let client = MediaManagerClient(
            configuration: .init(
                baseURL: server.baseURL + "/",
                apiKey: "the-key",
                siteID: "site-1",
                retry: .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100), maximumAttempts: attempts)
            ),
            logger: quietLogger()
        )
        do {
            try await body(server, client)
        } catch {
            try? await client.shutdown()
            try? await server.stop()
            throw error
        }
        try await client.shutdown()
        try await server.stop()
    }

    @Test func retries5xxThenSucceedsAndSendsCredentials() async throws {
        try await withServer([.init(status: 503), .init(status: 500, body: #"{"message":"","details":{}}"#)]) { server, client in
            let folder = try await client.folders.get(id: "x/y z~.")
            #expect(folder.id == "f1")
            let requests = server.requests
            #expect(requests.count == 3)
            #expect(requests.allSatisfy { $0.requestLine == "GET /site-media/v1/folders/x%2Fy%20z~. HTTP/1.1" })
            #expect(requests[0].headers["authorization"] == "the-key")
            #expect(requests[0].headers["wix-site-id"] == "site-1")
        }
    }

    @Test func honoursRetryAfterOn429() async throws {
        try await withServer([.init(status: 429, headers: [("Retry-After", "1")])]) { server, client in
            _ = try await client.folders.get(id: "a")
            let requests = server.requests
            #expect(requests.count == 2)
            #expect(requests[1].time - requests[0].time >= .milliseconds(950))
        }
    }

    @Test func doesNotRetryOther4xxAndDecodesTheEnvelope() async throws {
        let envelope = #"{"message":"paging.limit must be between 1 and 100","details":{"validationError":{"fieldViolations":[{"field":"paging.limit","description":"bad","violatedRule":"OUT_OF_RANGE"}]}}}"#
        try await withServer([.init(status: 400, body: envelope)]) { server, client in
            do {
                _ = try await client.files.list(parentFolderId: "a&b=c", mediaTypes: [.image, .video], limit: 0)
                Issue.record("400 should throw")
            } catch let error as MediaManagerError {
                #expect(error.code == .badRequest)
                #expect(error.status == 400)
                #expect(error.message == "paging.limit must be between 1 and 100")
                #expect(error.applicationCode == "OUT_OF_RANGE")
                #expect(error.envelope?.details.validationError?.fieldViolations.first?.field == "paging.limit")
            }
            let requests = server.requests
            #expect(requests.count == 1)
            #expect(
                requests[0].requestLine
                    == "GET /site-media/v1/files?parentFolderId=a%26b%3Dc&mediaTypes=IMAGE&mediaTypes=VIDEO&paging.limit=0 HTTP/1.1"
            )
        }
    }

    @Test func givesUpAfterTheAttemptLimit() async throws {
        try await withServer([], fallback: .init(status: 502, body: "bad gateway"), attempts: 3) { server, client in
            do {
                _ = try await client.folders.create(displayName: "x")
                Issue.record("persistent 502 should throw")
            } catch let error as MediaManagerError {
                #expect(error.code == .serverError)
                #expect(error.status == 502)
                #expect(error.message == "bad gateway")
            }
            #expect(server.requests.count == 3)
            #expect(server.requests[0].body == #"{"displayName":"x"}"#)
        }
    }

    @Test func uploadHostCallsCarryNoCredentialsAndAreNotRetriedOn429() async throws {
        let reused = #"{"message":"token used","details":{"applicationError":{"code":"RESOURCE_EXHAUSTED","description":"d"}}}"#
        try await withServer([.init(status: 429, body: reused)]) { server, client in
            do {
                _ = try await client.uploads.finalizeResumableUpload(
                    uploadUrl: server.baseURL + "/upload/tus/",
                    uploadToken: "tok.en/x",
                    fileName: "a b.png"
                )
                Issue.record("429 should throw")
            } catch let error as MediaManagerError {
                #expect(error.code == .rateLimited)
                #expect(error.applicationCode == "RESOURCE_EXHAUSTED")
            }
            let requests = server.requests
            #expect(requests.count == 1)
            #expect(requests[0].requestLine == "PUT /upload/tus/tok.en%2Fx?filename=a%20b.png HTTP/1.1")
            #expect(requests[0].headers["authorization"] == nil)
            #expect(requests[0].headers["content-type"] == "application/json")
            #expect(requests[0].body == "{}")
        }
    }

    @Test func transportFailuresAreTyped() async throws {
        let client = MediaManagerClient(
            configuration: .init(
                baseURL: "http://127.0.0.1:1",
                timeouts: .init(connect: .milliseconds(500)),
                retry: .init(initialDelay: .milliseconds(10), maximumAttempts: 2)
            ),
            logger: quietLogger()
        )
        do {
            _ = try await client.files.get(id: "x")
            Issue.record("connection refused should throw")
        } catch let error as MediaManagerError {
            #expect(error.code == .transport)
            #expect(error.status == nil)
        }
        try await client.shutdown()
    }
}

func quietLogger() -> Logger {
    var logger = Logger(label: "ClientTransportTests")
    logger.logLevel = .critical
    return logger
}
