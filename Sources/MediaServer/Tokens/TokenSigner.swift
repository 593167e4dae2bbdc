import Crypto
import Foundation

/// Signs and verifies the server's JWT-shaped tokens (HS256), the upload tokens and the signed
/// download URLs.
///
/// The signing key never leaves the server; verification is constant time.
struct TokenSigner: Sendable {
    private let key: SymmetricKey

    init(secret: Data) {
        self.key = SymmetricKey(data: secret)
    }

    /// Encodes `claims` as `header.payload.signature`, each part base64url.
    func sign<Claims: Encodable>(_ claims: Claims) throws -> String {
        let header = Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let payload = try encoder.encode(claims)
        let signingInput = Base64URL.encode(header) + "." + Base64URL.encode(payload)
        let mac = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return signingInput + "." + Base64URL.encode(Data(mac))
    }

    /// Verifies the signature and decodes the claims. Throws `TokenError.invalid` on any tampering.
    func verify<Claims: Decodable>(_ token: String, as type: Claims.Type) throws(TokenError) -> Claims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let signature = Base64URL.decode(String(parts[2])),
            let payload = Base64URL.decode(String(parts[1]))
        else { throw .invalid }
        let signingInput = Data("\(parts[0]).\(parts[1])".utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key) else {
            throw .invalid
        }
        do {
            return try JSONDecoder().decode(Claims.self, from: payload)
        } catch {
            throw .invalid
        }
    }
}

/// Why a token was refused.
enum TokenError: Error, Equatable {
    /// Malformed, tampered with, or signed by another key.
    case invalid
    /// Past its `exp`.
    case expired
    /// A single-use token that was already used.
    case alreadyUsed
}

/// Base64url without padding (RFC 7515).
enum Base64URL {
    static func encode(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
