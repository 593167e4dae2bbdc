import AsyncHTTPClient
import Foundation
import Logging
import MediaManager
import MediaServer
import NIOCore
import NIOHTTP1
import Testing

/// Every `MediaManagerClient` call against the embedded Media Manager, errors included.
@Suite("MediaManagerClient against the embedded server")
struct EmbeddedServerAPITests {
    func withServer(_ body: (MediaServer, MediaManagerClient) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "/mm-api-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "EmbeddedServerAPITests")
        logger.logLevel = .critical
        var configuration = MediaServerConfiguration(dataDirectory: directory, apiKey: "manage-key")
        configuration.port = 0
        configuration.readOnlyKey = "read-key"
        let server = try await MediaServer.start(configuration, logger: logger)
        let client = MediaManagerClient(configuration: .init(baseURL: server.baseURL, apiKey: "manage-key"), logger: logger)
        do {
            try await body(server, client)
        } catch {
            try? await client.shutdown()
            await server.stop()
            throw error
        }
        try await client.shutdown()
        await server.stop()
    }

    func client(_ server: MediaServer, key: String) -> MediaManagerClient {
        MediaManagerClient(configuration: .init(baseURL: server.baseURL, apiKey: key), logger: Logger(label: "k"))
    }

    @Test func folderLifecycle() async throws {
        try await withServer { _, client in
            let parent = try await client.folders.create(displayName: "Photos / 2024 & more")
            #expect(parent.displayName == "Photos / 2024 & more")
            #expect(parent.parentFolderId == FolderID.mediaRoot)
            let child = try await client.folders.create(displayName: "child", parentFolderId: parent.id)
            #expect(try await client.folders.get(id: child.id).parentFolderId == parent.id)

            let roots = try await client.folders.list(parentFolderId: FolderID.mediaRoot)
            #expect(roots.folders.map(\.id).contains(parent.id))
            let sorted = try await client.folders.list(parentFolderId: parent.id, sort: Sorting(fieldName: "displayName", order: .descending), limit: 10)
            #expect(sorted.folders.map(\.id) == [child.id])

            let renamed = try await client.folders.update(id: child.id, displayName: "renamed", parentFolderId: FolderID.mediaRoot)
            #expect(renamed.displayName == "renamed")
            #expect(renamed.parentFolderId == FolderID.mediaRoot)

            try await client.folders.delete(ids: [renamed.id])
            #expect(try await client.folders.listDeleted().folders.map(\.id).contains(renamed.id))
            #expect(try await client.folders.list().folders.map(\.id).contains(renamed.id) == false)
            try await client.folders.restore(ids: [renamed.id])
            #expect(try await client.folders.list().folders.map(\.id).contains(renamed.id))

            try await client.folders.delete(ids: [renamed.id], permanent: true)
            await expectError(.notFound, status: 404, applicationCode: "NOT_FOUND") {
                _ = try await client.folders.get(id: renamed.id)
            }
            await expectError(.invalidArgument) { _ = try await client.folders.update(id: parent.id) }
            await expectError(.badRequest, status: 400) { _ = try await client.folders.create(displayName: "") }
        }
    }

    @Test func fileLifecycleWithSimpleUpload() async throws {
        try await withServer { server, client in
            let folder = try await client.folders.create(displayName: "docs")
            var descriptors: [MediaManager.FileDescriptor] = []
            for index in 0..<3 {
                let target = try await client.files.generateFileUploadUrl(
                    mimeType: "text/plain",
                    options: UploadOptions(fileName: "note\(index).txt", parentFolderId: folder.id, labels: ["l\(index)"])
                )
                let bytes = ByteBuffer(string: String(repeating: "note \(index) ", count: 100 + index))
                let file = try await client.uploads.upload(
                    to: target.uploadUrl,
                    fileName: "note \(index).txt",
                    contentType: "text/plain",
                    bytes: bytes
                )
                #expect(file.sizeInBytes == Int64(bytes.readableBytes))
                #expect(file.parentFolderId == folder.id)
                #expect(file.mediaType == .document)
                descriptors.append(file)

                // The simple upload URL is single-use: the reuse answer (429) is not retried.
                if index == 0 {
                    await expectError(.rateLimited, status: 429, applicationCode: "RESOURCE_EXHAUSTED") {
                        _ = try await client.uploads.upload(to: target.uploadUrl, fileName: "again.txt", bytes: bytes)
                    }
                }
            }
            let first = descriptors[0]
            #expect(try await client.files.get(id: first.id) == first)
            #expect(try await client.files.get(ids: descriptors.map(\.id)).map(\.id).sorted() == descriptors.map(\.id).sorted())

            // Listing, paging and filters.
            let page1 = try await client.files.list(
                parentFolderId: folder.id,
                sort: Sorting(fieldName: "displayName", order: .ascending),
                limit: 2
            )
            #expect(page1.files.map(\.displayName) == ["note 0.txt", "note 1.txt"])
            let cursor = try #require(page1.nextCursor.nextCursor)
            let page2 = try await client.files.list(parentFolderId: folder.id, sort: Sorting(fieldName: "displayName"), limit: 2, cursor: cursor)
            #expect(page2.files.map(\.displayName) == ["note 2.txt"])
            #expect(page2.nextCursor.nextCursor == nil)
            #expect(try await client.files.list(parentFolderId: folder.id, mediaTypes: [.image]).files.isEmpty)
            #expect(try await client.files.list(parentFolderId: folder.id, private: false).files.count == 3)

            // Update.
            let updated = try await client.files.update(id: first.id, displayName: "renamed ü.txt", labels: ["a", "b"])
            #expect(updated.displayName == "renamed ü.txt")
            #expect(updated.labels == ["a", "b"])
            await expectError(.invalidArgument) { _ = try await client.files.update(id: first.id) }

            // Download URL serves the bytes.
            let download = try await client.files.generateDownloadUrl(id: first.id, downloadFileName: "x.txt")
            let url = try #require(download.downloadUrls.first?.url)
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            #expect(response.status.code == 200)
            let body = try await response.body.collect(upTo: 1 << 20)
            #expect(String(buffer: body) == String(repeating: "note 0 ", count: 100))

            // Trash and restore.
            try await client.files.delete(ids: [first.id])
            #expect(try await client.files.listDeleted().files.map(\.id).contains(first.id))
            #expect(try await client.files.list(parentFolderId: folder.id).files.count == 2)
            try await client.files.restore(ids: [first.id])
            #expect(try await client.files.list(parentFolderId: folder.id).files.count == 3)
            try await client.files.delete(ids: [first.id], permanent: true)
            await expectError(.notFound, status: 404) { _ = try await client.files.get(id: first.id) }
            _ = server
        }
    }

    @Test func resumableUrlAndFinalizeErrors() async throws {
        try await withServer { _, client in
            let target = try await client.files.generateFileResumableUploadUrl(
                mimeType: "video/mp4",
                options: UploadOptions(fileName: "movie.mp4", sizeInBytes: 10, private: true, filePath: "/videos/2024")
            )
            #expect(target.uploadProtocol == .tus)
            #expect(!target.uploadToken.isEmpty)
            #expect(target.uploadUrl.hasPrefix("http://"))
            // Finalizing before any tus upload exists, or with a forged token, is refused.
            await expectAnyError {
                _ = try await client.uploads.finalizeResumableUpload(uploadUrl: target.uploadUrl, uploadToken: target.uploadToken, fileName: "movie.mp4")
            }
            await expectError(.permissionDenied, status: 403) {
                _ = try await client.uploads.finalizeResumableUpload(uploadUrl: target.uploadUrl, uploadToken: "forged", fileName: "m.mp4")
            }
            await expectError(.invalidArgument) {
                _ = try await client.uploads.upload(to: "not a url", fileName: "x", bytes: ByteBuffer())
            }
        }
    }

    @Test func authenticationAndScopes() async throws {
        try await withServer { server, _ in
            let anonymous = client(server, key: "wrong")
            await expectError(.unauthenticated, status: 401, applicationCode: "UNAUTHENTICATED") {
                _ = try await anonymous.folders.list()
            }
            try await anonymous.shutdown()

            let reader = client(server, key: "read-key")
            _ = try await reader.folders.list()
            await expectError(.permissionDenied, status: 403, applicationCode: "PERMISSION_DENIED") {
                _ = try await reader.folders.create(displayName: "nope")
            }
            try await reader.shutdown()
        }
    }

    @Test func validationErrorsCarryTheEnvelope() async throws {
        try await withServer { _, client in
            do {
                _ = try await client.files.list(limit: 0)
                Issue.record("paging.limit 0 should be refused")
            } catch let error as MediaManagerError {
                #expect(error.code == .badRequest)
                #expect(error.envelope?.details.validationError?.fieldViolations.first?.field == "paging.limit")
                #expect(!error.message.isEmpty)
            }
            await expectError(.badRequest, status: 400) {
                _ = try await client.files.list(cursor: "not-a-cursor")
            }
        }
    }
}

func expectError(
    _ code: MediaManagerError.Code,
    status: Int? = nil,
    applicationCode: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected MediaManagerError.\(code)", sourceLocation: sourceLocation)
    } catch let error as MediaManagerError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let status { #expect(error.status == status, "\(error)", sourceLocation: sourceLocation) }
        if let applicationCode { #expect(error.applicationCode == applicationCode, "\(error)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

func expectAnyError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected a MediaManagerError", sourceLocation: sourceLocation)
    } catch is MediaManagerError {
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}
