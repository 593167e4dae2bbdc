import ArgumentParser
import Foundation

/// A size given as bytes or with a unit: `512M`, `10G`, `1T` (powers of 1024).
struct ByteCount: ExpressibleByArgument, Sendable {
    let bytes: Int64

    init(_ bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int64)] = [("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        var number = text
        var unit: Int64 = 1
        for (suffix, value) in units where text.hasSuffix(suffix) || text.hasSuffix(suffix + "B") || text.hasSuffix(suffix + "IB") {
            number = String(text.prefix { $0.isNumber })
            unit = value
            break
        }
        guard !number.isEmpty, number.allSatisfy(\.isNumber), let value = Int64(number), value > 0 else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }
        self.bytes = bytes
    }

    var defaultValueDescription: String { "\(bytes >> 30)G" }
}
