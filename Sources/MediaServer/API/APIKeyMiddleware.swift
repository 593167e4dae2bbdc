import Crypto
import Foundation
import Hummingbird

/// What a key may do, as the service's permission scopes.
enum APIScope: Sendable {
    /// "Manage Media Manager": everything.
    case manage
    /// "Read Media Manager": get, list and search only.
    case read
}

/// Checks `Authorization: <key>` (a `Bearer ` prefix is accepted) on every REST call, in
/// constant time, and refuses changes to a read-only key. Keys are never logged.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let manageKey: String
    let readKey: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let scope = scope(for: request.headers[.authorization]) else { throw APIError.unauthenticated }
        if scope == .read && !Self.isReadOnly(request) { throw APIError.readOnly }
        return try await next(request, context)
    }

    func scope(for header: String?) -> APIScope? {
        guard var presented = header?.trimmingCharacters(in: .whitespaces), !presented.isEmpty else { return nil }
        if presented.lowercased().hasPrefix("bearer ") { presented = String(presented.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
        // Evaluate both comparisons every time so timing says nothing about which key matched.
        let isManage = Self.constantTimeEqual(presented, manageKey)
        let isRead = readKey.map { Self.constantTimeEqual(presented, $0) } ?? false
        if isManage { return .manage }
        if isRead { return .read }
        return nil
    }

    /// Compares digests of both strings, so neither length nor content leaks through timing.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let da = SHA256.hash(data: Data(a.utf8))
        let db = SHA256.hash(data: Data(b.utf8))
        var difference: UInt8 = 0
        for (x, y) in zip(da, db) { difference |= x ^ y }
        return difference == 0
    }

    /// Methods that only read: every GET, and the POST queries.
    static func isReadOnly(_ request: Request) -> Bool {
        if request.method == .get || request.method == .head { return true }
        let path = request.uri.path
        return request.method == .post
            && (path.hasSuffix("/files/get-files") || path.hasSuffix("/search") || path.hasSuffix("/query"))
    }
}
