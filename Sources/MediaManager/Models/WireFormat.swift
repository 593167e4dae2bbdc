import Foundation

/// JSON coding conventions of the Media Manager REST wire format.
///
/// Dates are ISO-8601 UTC strings (`2022-09-11T15:13:24.000Z`; the fractional part is optional
/// on input), and 64-bit integers travel as strings (`"sizeInBytes": "15359"`).
public enum WireFormat {
    /// An encoder that writes the wire format: ISO-8601 dates with milliseconds, sorted keys.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
        return encoder
    }

    /// A decoder that reads the wire format, accepting dates with or without fractional seconds.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseDate(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "Expected an ISO-8601 date, found '\(text)'"
                )
            }
            return date
        }
        return decoder
    }

    /// Formats a date as the wire does: `2022-09-11T15:13:24.000Z`.
    public static func formatDate(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Parses an ISO-8601 date with or without fractional seconds.
    public static func parseDate(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) {
            return date
        }
        return try? Date.ISO8601FormatStyle().parse(text)
    }
}

extension KeyedDecodingContainer {
    /// Decodes an int64 that the wire sends as a string (or, leniently, as a number).
    func decodeInt64String(forKey key: Key) throws -> Int64 {
        if let text = try? self.decode(String.self, forKey: key) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key,
                    in: self,
                    debugDescription: "Expected an integer string, found '\(text)'"
                )
            }
            return value
        }
        return try self.decode(Int64.self, forKey: key)
    }

    /// Decodes an optional int64 sent as a string (or a number); `null` and absence give `nil`.
    func decodeInt64StringIfPresent(forKey key: Key) throws -> Int64? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        return try self.decodeInt64String(forKey: key)
    }
}
