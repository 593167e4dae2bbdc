import ArgumentParser
import Logging

/// `mediafs`: mount a Media Manager as a directory, run an embedded one, upload to one.
@main
struct MediaFSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediafs",
        abstract: "Mount a Wix Media Manager as a local directory, or run an embedded one.",
        discussion: """
            Without --server, commands use the embedded Media Manager (no account needed).
            With --server, --api-key and --site-id (or MEDIAFS_SERVER, MEDIAFS_API_KEY,
            MEDIAFS_SITE_ID) they talk to a real one.
            """,
        subcommands: [MountCommand.self, ServeCommand.self, UploadCommand.self, URLCommand.self]
    )
}

/// Logging options shared by every command; only the CLI configures logging.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (or MEDIAFS_LOG_LEVEL).")
    var logLevel: String?

    func bootstrap(label: String) throws -> Logger {
        let text = logLevel ?? Environment.value("MEDIAFS_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ValidationError("Unknown log level '\(text)'; use trace, debug, info, notice, warning, error or critical.")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
