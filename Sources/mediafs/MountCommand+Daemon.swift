import ArgumentParser
import Foundation
import Logging

extension MountCommand {
    /// `--daemon` or mount(8): start a detached copy of this command and wait for its outcome.
    func startDetached() async throws {
        let logger = try logging.bootstrap(label: "mediafs")
        try preflight(mountpoint: mountpoint)
        let key = connection.resolvedServer == nil ? nil : try connection.apiKey(logger: logger)
        guard let invocation = Invocation.current else { throw CommandFailure("mediafs mount: the command line is not known") }
        let output: Daemon.Output =
            if let logFile = logging.logFile { .file(logFile) } else if LogDestination.standardErrorIsJournal() { .inheritStandardError } else { .discard }
        let outcome = try await Daemon.start(
            arguments: Self.childArguments(invocation.arguments, passesKey: key != nil),
            apiKey: key, output: output, timeout: .seconds(90))
        if !invocation.isMountHelper {
            Console.line("mediafs: \(outcome.message) (process \(outcome.pid)); umount \(mountpoint) or fusermount3 -u \(mountpoint) unmounts")
        }
    }

    /// The detached child's command line: this one in the foreground, reporting on descriptor 3,
    /// reading the key from descriptor 4, and without the key itself.
    static func childArguments(_ arguments: [String], passesKey: Bool) -> [String] {
        guard arguments.first == configuration.commandName else { return arguments }
        var result = [configuration.commandName!, "--foreground", "--ready-fd", String(Daemon.readyDescriptor)]
        if passesKey { result += ["--api-key-fd", String(Daemon.keyDescriptor)] }
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            switch argument {
            case "--daemon", "--foreground", "--helper":
                break
            case "--api-key", "--api-key-fd", "--ready-fd":
                index += 1
            default:
                if !(argument.hasPrefix("--api-key=") || argument.hasPrefix("--api-key-fd=") || argument.hasPrefix("--ready-fd=")) {
                    result.append(argument)
                }
            }
            index += 1
        }
        return result
    }
}
