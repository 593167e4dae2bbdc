import ArgumentParser
import Foundation

/// The options, flags and arguments a command declares, read from ArgumentParser's own
/// description of it (the JSON of `--experimental-dump-help`).
struct DeclaredArguments: Decodable, Sendable {
    enum Kind: String, Decodable, Sendable {
        case positional, option, flag
    }

    struct Name: Decodable, Sendable {
        let kind: String
        let name: String
    }

    let kind: Kind
    let names: [Name]?
    let shouldDisplay: Bool

    /// Shown in `--help` (not hidden or private).
    var visible: Bool { shouldDisplay }

    /// The `--long` names, without dashes.
    var longNames: [String] {
        (names ?? []).filter { $0.kind == "long" }.map(\.name)
    }

    private struct Dump: Decodable {
        struct Command: Decodable {
            let arguments: [DeclaredArguments]?
        }
        let command: Command
    }

    /// What `command` declares (empty if ArgumentParser's description cannot be read, which
    /// the tests would catch).
    static func of(_ command: any ParsableArguments.Type) -> [DeclaredArguments] {
        let json = command._dumpHelp()
        guard let dump = try? JSONDecoder().decode(Dump.self, from: Data(json.utf8)) else { return [] }
        return dump.command.arguments ?? []
    }
}
