/// What a tus server announces in its `OPTIONS` answer.
public struct TusServerCapabilities: Sendable, Hashable {
    /// `Tus-Version`, most preferred first.
    public var versions: [String]
    /// `Tus-Extension` tokens (`creation`, `creation-defer-length`, `checksum`, `termination`, …).
    public var extensions: Set<String>
    /// `Tus-Max-Size`, if the server sets one.
    public var maximumSize: Int64?
    /// `Tus-Checksum-Algorithm`, lower-cased.
    public var checksumAlgorithms: Set<String>

    public init(
        versions: [String] = ["1.0.0"],
        extensions: Set<String> = [],
        maximumSize: Int64? = nil,
        checksumAlgorithms: Set<String> = []
    ) {
        self.versions = versions
        self.extensions = extensions
        self.maximumSize = maximumSize
        self.checksumAlgorithms = checksumAlgorithms
    }

    /// Whether the server accepts `POST` creation.
    public var supportsCreation: Bool { extensions.contains("creation") }
    /// Whether the server accepts `Upload-Defer-Length: 1`.
    public var supportsDeferredLength: Bool { extensions.contains("creation-defer-length") }
    /// Whether the server accepts `DELETE`.
    public var supportsTermination: Bool { extensions.contains("termination") }
    /// Whether the server verifies `Upload-Checksum: sha1 …`.
    public var supportsSHA1Checksum: Bool {
        extensions.contains("checksum") && checksumAlgorithms.contains("sha1")
    }
}
