/// Strict parsing of the non-negative integers that requests carry (`Upload-Offset`,
/// `Upload-Length`, `Content-Length`, `Range`, `paging.limit`, `sizeInBytes`).
///
/// Only ASCII digits are accepted: no sign, no whitespace, no `0x`, no digit of another script,
/// and the value must fit `0...maximum`. `Int64("+5")` and `Int64("٥")`-style leniency is what
/// this replaces: a request number either parses exactly or is refused.
enum RequestNumber {
    /// The value of `text` if it is 1 or more ASCII digits whose value is at most `maximum`.
    static func parse<Text: StringProtocol>(_ text: Text, maximum: Int64 = .max) -> Int64? {
        var value: Int64 = 0
        var digits = 0
        for byte in text.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = shifted.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflowA, !overflowB else { return nil }
            value = sum
            digits += 1
        }
        guard digits > 0, value <= maximum else { return nil }
        return value
    }

    /// `a + b` for non-negative values, or `nil` when it does not fit in an `Int64`.
    static func sum(_ a: Int64, _ b: Int64) -> Int64? {
        let (result, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : result
    }
}
