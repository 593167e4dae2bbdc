import ArgumentParser
import Foundation
import Logging

/// `mediafs`: mount a Media Manager as a directory, run an embedded one, upload to one.
@main
struct MediaFSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediafs",
        abstract: "Mount a Wix Media Manager as a local directory, or run an embedded one.",
        discussion: """
            Without --server, commands use the embedded Media Manager (no account needed). \
            With --server, --api-key-file and --site-id (or MEDIAFS_SERVER, MEDIAFS_API_KEY_FILE, \
            MEDIAFS_SITE_ID) they talk to a real one.

            mount(8) runs mediafs as `mediafs SOURCE MOUNTPOINT -o OPTIONS` for an /etc/fstab line \
            of type fuse.mediafs; see `mediafs mount --help`.
            """,
        subcommands: [MountCommand.self, StatusCommand.self, SyncCommand.self, ServeCommand.self, UploadCommand.self, URLCommand.self]
    )

    /// Parses the command line, after turning the mount helper's form and `-o` options into the
    /// subcommands' own arguments (see ``Invocation``), and runs the command.
    static func main() async {
        let program = CommandLine.arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "mediafs"
        let arguments = Array(CommandLine.arguments.dropFirst())
        let invocation: Invocation
        do {
            invocation = try Invocation(program: program, arguments: arguments)
        } catch {
            Readiness.reportFailure(in: arguments, error: "\(error)")
            Console.error("mediafs: \(error)")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        if invocation.fake { Foundation.exit(0) }
        Invocation.current = invocation
        Readiness.configure(arguments: invocation.arguments)
        do {
            var command = try parseAsRoot(invocation.arguments)
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            Readiness.reportFailure(in: invocation.arguments, error: fullMessage(for: error))
            exit(withError: error)
        }
    }
}

/// Logging options shared by every command; only the CLI configures logging.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (or MEDIAFS_LOG_LEVEL).")
    var logLevel: String?

    @Option(name: .long, help: ArgumentHelp("Write the log to this file (appended). Without it, a detached mount logs to the journal or syslog.", valueName: "file"))
    var logFile: String?

    var level: Logger.Level {
        get throws {
            let text = logLevel ?? Environment.value("MEDIAFS_LOG_LEVEL") ?? "info"
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ValidationError("Unknown log level '\(text)'; use trace, debug, info, notice, warning, error or critical.")
            }
            return level
        }
    }

    func validate() throws {
        _ = try level
    }

    /// Configures logging for this process: the terminal when in the foreground, or the
    /// destination ``LogDestination/choose(logFile:detached:)`` picks.
    func bootstrap(label: String, detached: Bool = false) throws -> Logger {
        let level = try level
        let destination = LogDestination.choose(logFile: logFile, detached: detached)
        let factory = try destination.makeFactory(level: level)
        LoggingSystem.bootstrap(factory)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
