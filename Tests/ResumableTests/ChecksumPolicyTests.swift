import Foundation
import Resumable
import Testing

@Suite("When uploads carry Upload-Checksum")
struct ChecksumPolicyTests {
    @Test(arguments: [
        ("http://127.0.0.1:8080/files", false),
        ("http://127.1.2.3/files", false),
        ("http://localhost:9000/files", false),
        ("http://[::1]:9000/files", false),
        ("http://media.example.com/files", true),
        ("http://10.0.0.7/files", true),
        ("http://127.example.com/files", true),
        ("https://upload.wixmp.com/files", false),
        ("https://127.0.0.1/files", false),
    ])
    func automaticSkipsTLSAndLoopback(url: String, expected: Bool) throws {
        let parsed = try #require(URL(string: url))
        #expect(TusClient.ChecksumPolicy.automatic.appliesTo(parsed) == expected)
        #expect(TusClient.ChecksumPolicy.always.appliesTo(parsed))
        #expect(!TusClient.ChecksumPolicy.never.appliesTo(parsed))
    }

    @Test func theCommandLineSpellingsParse() {
        #expect(TusClient.ChecksumPolicy(rawValue: "auto") == .automatic)
        #expect(TusClient.ChecksumPolicy(rawValue: "always") == .always)
        #expect(TusClient.ChecksumPolicy(rawValue: "never") == .never)
        #expect(TusClient.ChecksumPolicy(rawValue: "sometimes") == nil)
        #expect(TusClient.Configuration().checksums == .automatic)
    }
}
