import Foundation
import Logging
import MediaManager
import Synchronization

/// What every handler of one server shares.
final class ServerState: Sendable {
    let configuration: MediaServerConfiguration
    let store: Store
    let blobs: BlobStore
    let signer: TokenSigner
    let sessions: UploadSessions
    let siteId: String
    let logger: Logger
    private let _baseURL: Mutex<String>

    init(configuration: MediaServerConfiguration, store: Store, blobs: BlobStore, signer: TokenSigner, siteId: String, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.blobs = blobs
        self.signer = signer
        self.sessions = UploadSessions()
        self.siteId = siteId
        self.logger = logger
        self._baseURL = Mutex(configuration.publicURL ?? "http://\(configuration.host):\(configuration.port)")
    }

    /// Base of the URLs handed out, without a trailing slash.
    var baseURL: String { _baseURL.withLock { $0 } }

    /// Called once the listener is bound, when the port was picked by the system.
    func listening(host: String, port: Int) {
        guard configuration.publicURL == nil else { return }
        let shown = host.contains(":") ? "[\(host)]" : host
        _baseURL.withLock { $0 = "http://\(shown):\(port)" }
    }

    /// Prefix of file ids (`<prefix>_<32 hex>`), from the site id.
    var sitePrefix: String {
        let hex = siteId.lowercased().filter(\.isHexDigit)
        return String(hex.prefix(6)).padding(toLength: 6, withPad: "0", startingAt: 0)
    }

    /// The claims of an upload token, or the API error that refuses it (403 tampered, 401
    /// expired).
    func verifyUploadToken(_ token: String) throws(APIError) -> UploadClaims {
        do {
            let claims = try signer.verify(token, as: UploadClaims.self)
            try claims.checkExpiry()
            return claims
        } catch {
            throw APIError.token(error)
        }
    }

    /// The public descriptor of a file row.
    func descriptor(_ record: FileRecord) -> FileDescriptor {
        let url = baseURL + "/media/" + record.id
        let mediaType = MediaType(rawValue: record.mediaType)
        return FileDescriptor(
            id: record.id,
            displayName: record.displayName,
            url: url,
            parentFolderId: record.parentId,
            hash: record.hash,
            sizeInBytes: record.size,
            private: record.isPrivate,
            mediaType: mediaType,
            media: Self.media(record, url: url, mediaType: mediaType),
            operationStatus: .ready,
            thumbnailUrl: mediaType == .image ? url : nil,
            labels: record.labelList,
            createdDate: Date(timeIntervalSince1970: record.createdDate),
            updatedDate: Date(timeIntervalSince1970: record.updatedDate),
            siteId: siteId,
            state: ItemState(rawValue: record.state),
            internalTags: ["_fileOrigin_uploaded"]
        )
    }

    private static func media(_ record: FileRecord, url: String, mediaType: MediaType) -> JSONValue {
        let size = JSONValue.string(String(record.size))
        let common: [String: JSONValue] = [
            "id": .string(record.id), "url": .string(url), "filename": .string(record.displayName), "sizeInBytes": size,
        ]
        switch mediaType {
        case .image, .vector:
            let key = mediaType == .image ? "image" : "vector"
            return .object([key: .object(["image": .object(common), "faces": .array([])])])
        case .video:
            return .object(["video": .object(common.merging(["resolutions": .array([])]) { $1 })])
        case .audio:
            return .object(["audio": .object(["id": .string(record.id), "assets": .array([]), "sizeInBytes": size])])
        case .archive:
            return .object(["archive": .object(common)])
        case .model3d:
            return .object(["model3d": .object(common)])
        default:
            return .object(["document": .object(["id": .string(record.id), "url": .string(url), "filename": .string(record.displayName)])])
        }
    }

    func folder(_ record: FolderRecord) -> Folder {
        Folder(
            id: record.id,
            displayName: record.displayName,
            parentFolderId: record.parentId,
            createdDate: Date(timeIntervalSince1970: record.createdDate),
            updatedDate: Date(timeIntervalSince1970: record.updatedDate),
            state: ItemState(rawValue: record.state)
        )
    }
}
