import Foundation

extension Data {
    /// `count` random bytes, for test content.
    public static func random(_ count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        var data = Data(count: count)
        data.withUnsafeMutableBytes { buffer in
            let whole = count - count % 8
            for index in stride(from: 0, to: whole, by: 8) {
                buffer.storeBytes(of: generator.next(), toByteOffset: index, as: UInt64.self)
            }
            for index in whole..<count { buffer[index] = UInt8.random(in: 0...255, using: &generator) }
        }
        return data
    }
}
