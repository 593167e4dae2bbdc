import Foundation

extension TusClient {
    /// When the client sends `Upload-Checksum: sha1 …` with the bytes of a request (the server must
    /// also advertise the `checksum` extension with `sha1`).
    ///
    /// A checksum lets the server refuse bytes that changed on the way (`460`). TLS already
    /// authenticates every record, and loopback traffic never leaves the machine, so over either
    /// the per-request SHA-1 only costs CPU: one pass over every byte before it is sent.
    public enum ChecksumPolicy: String, Sendable, Hashable, CaseIterable {
        /// A checksum over plain HTTP to another host; none over HTTPS or to a loopback address.
        case automatic = "auto"
        /// A checksum with every request that carries bytes.
        case always
        /// No checksum.
        case never

        /// Whether requests to `url` carry a checksum under this policy.
        public func appliesTo(_ url: URL) -> Bool {
            switch self {
            case .always: return true
            case .never: return false
            case .automatic:
                if url.scheme?.lowercased() == "https" { return false }
                return !Self.isLoopback(host: url.host ?? "")
            }
        }

        /// Whether `host` names this machine: `localhost`, an address in 127.0.0.0/8, or `::1`.
        static func isLoopback(host: String) -> Bool {
            var name = host.lowercased()
            if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
            if name == "localhost" || name.hasSuffix(".localhost") { return true }
            if name == "::1" || name == "0:0:0:0:0:0:0:1" { return true }
            let octets = name.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return false }
            return octets[0] == "127"
        }
    }

    /// Whether requests carrying bytes to `url` send `Upload-Checksum`.
    func usesChecksum(for url: URL, capabilities: TusServerCapabilities) -> Bool {
        capabilities.supportsSHA1Checksum && configuration.checksums.appliesTo(url)
    }
}
