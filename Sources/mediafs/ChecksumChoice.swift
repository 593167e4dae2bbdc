import ArgumentParser
import Resumable

/// `--upload-checksums auto|always|never`: when tus requests carry `Upload-Checksum`.
struct ChecksumChoice: ExpressibleByArgument, Sendable {
    let policy: TusClient.ChecksumPolicy

    init(_ policy: TusClient.ChecksumPolicy) { self.policy = policy }

    init?(argument: String) {
        guard let policy = TusClient.ChecksumPolicy(rawValue: argument.lowercased()) else { return nil }
        self.policy = policy
    }

    static var allValueStrings: [String] { TusClient.ChecksumPolicy.allCases.map(\.rawValue) }

    var defaultValueDescription: String { policy.rawValue }

    /// The option's help, shared by `mount` and `upload`.
    static let help = ArgumentHelp(
        "When tus requests carry a SHA-1 of their bytes: auto (over plain HTTP to another machine; not over HTTPS, which "
            + "already checks every byte, nor to this machine), always, or never.",
        valueName: "auto|always|never")
}
