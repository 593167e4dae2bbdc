import ArgumentParser
import Foundation
import Logging
import MediaServer

/// `mediafs serve`: run the embedded Media Manager in the foreground.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the embedded Media Manager (REST API, upload host with tus, content URLs).",
        discussion: """
            Metadata is kept in SQLite and content on disk under --data. The API key comes from \
            --api-key or MEDIAFS_API_KEY; with neither, one is generated and stored (mode 0600) in \
            the data directory, and its location is printed. Stop with Ctrl-C.
            """
    )

    @Option(name: .long, help: "Data directory (default: $XDG_DATA_HOME/mediafs/server).")
    var data: String?

    @Option(name: .long, help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0 picks a free one).")
    var port: Int = 8080

    @Option(name: .long, help: "API key with the Manage scope (or MEDIAFS_API_KEY).")
    var apiKey: String?

    @Option(name: .long, help: "Optional API key with only the Read scope.")
    var readOnlyKey: String?

    @Option(name: .long, help: "Base of every URL the server hands out, when it runs behind a proxy.")
    var publicURL: String?

    @Option(name: .long, help: "Seconds an unfinished resumable upload is kept.")
    var uploadExpiry: Double = 7 * 24 * 3600

    @Option(name: .long, help: "Largest accepted upload, in bytes.")
    var maxUploadSize: Int64 = 1 << 40

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535.") }
        guard uploadExpiry > 0 else { throw ValidationError("--upload-expiry must be positive.") }
        guard maxUploadSize > 0 else { throw ValidationError("--max-upload-size must be positive.") }
        if let publicURL, URL(string: publicURL)?.scheme == nil {
            throw ValidationError("--public-url must be an absolute URL such as https://media.example.com.")
        }
    }

    func run() async throws {
        MemoryTuning.apply(trimThreshold: MemoryTuning.serverTrimThreshold, mmapThreshold: MemoryTuning.serverMmapThreshold)
        let logger = try logging.bootstrap(label: "mediafs.server")
        let directory = data ?? Environment.dataHome + "/server"
        var key = apiKey ?? Environment.value("MEDIAFS_API_KEY")
        if key == nil {
            let stored = try DataDirectory.apiKey(in: directory)
            key = stored.key
            Console.line("API key \(stored.created ? "generated and " : "")stored in \(stored.path)")
        }
        let configuration = MediaServerConfiguration(
            dataDirectory: directory,
            host: host,
            port: port,
            publicURL: publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 },
            apiKey: key!,
            readOnlyKey: readOnlyKey,
            uploadExpiry: uploadExpiry,
            maxUploadSize: maxUploadSize
        )
        try await MediaServer.run(configuration, logger: logger) { url in
            Console.line("mediafs serve: listening on \(url) (data in \(directory))")
        }
    }
}
