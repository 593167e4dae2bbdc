import Foundation
import Hummingbird
import MediaManager
import NIOCore
import NIOFoundationCompat

extension Request {
    /// Decodes a JSON body in the wire format; malformed or incomplete bodies become 400s with
    /// the envelope, naming the field.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await self.body.collect(upTo: InputLimits.jsonBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "INVALID_ARGUMENT", message: "Request body is larger than \(InputLimits.jsonBodyBytes >> 20) MiB")
        } catch {
            throw APIError(field: "body", message: "The request body ended before it was complete")
        }
        guard buffer.readableBytes > 0 else {
            throw APIError(field: "body", message: "Invalid request message: a JSON body is required")
        }
        do {
            return try WireFormat.makeDecoder().decode(T.self, from: buffer)
        } catch DecodingError.keyNotFound(let key, let context) {
            throw APIError.missing(Self.path(context.codingPath + [key]))
        } catch DecodingError.valueNotFound(_, let context) {
            throw APIError.missing(Self.path(context.codingPath))
        } catch DecodingError.typeMismatch(let expected, let context) {
            throw APIError.invalid(Self.path(context.codingPath), "\(Self.path(context.codingPath)) must be \(Self.name(of: expected))")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            throw APIError.invalid(Self.path(context.codingPath), context.debugDescription)
        } catch {
            throw APIError(field: "body", message: "Failed to parse request message: the body is not valid JSON")
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func name(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is [String].Type, is [Any].Type: "an array"
        default: "of type \(type)"
        }
    }
}

/// A JSON response in the wire format.
struct JSONResponse<Value: Encodable & Sendable>: ResponseGenerator {
    var status: HTTPResponse.Status = .ok
    let value: Value

    init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try WireFormat.makeEncoder().encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(data: data))
        )
    }
}
