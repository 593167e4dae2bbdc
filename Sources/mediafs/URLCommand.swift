import ArgumentParser
import Foundation
import Logging
import MediaManager

/// `mediafs url`: generate an upload URL, the seed of every upload, from the command line.
struct URLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "url",
        abstract: "Generate a resumable upload URL and token (generateFileResumableUploadUrl) and print the response JSON.",
        discussion: """
            The response carries uploadProtocol (TUS), uploadUrl (the tus creation URL) and \
            uploadToken (single use: send it as the tus metadata 'token', then finalize with \
            PUT <uploadUrl>/<uploadToken>?filename=NAME). With --simple, a simple upload URL \
            (generateFileUploadUrl) is generated instead: PUT the bytes to it.
            """
    )

    @Option(name: .long, help: "MIME type of the file, e.g. video/mp4.")
    var mimeType: String

    @Option(name: .long, help: "File name (tells the type; the display name unless the upload gives another).")
    var fileName: String?

    @Option(name: .long, help: "Target folder id (default: media-root).")
    var folder: String?

    @Option(name: .customLong("label"), help: "A label for the file (repeatable).")
    var labels: [String] = []

    @Flag(name: .long, help: "Make the file private (reachable only through signed download URLs).")
    var `private` = false

    @Option(name: .long, help: "Expected size in bytes.")
    var size: Int64?

    @Flag(name: .long, help: "Generate a simple (non-resumable) upload URL instead.")
    var simple = false

    @OptionGroup var connection: ClientOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard mimeType.contains("/") else { throw ValidationError("--mime-type must look like type/subtype, e.g. image/jpeg.") }
        if let size, size < 0 { throw ValidationError("--size cannot be negative.") }
    }

    func run() async throws {
        let logger = try logging.bootstrap(label: "mediafs")
        let connection = try await self.connection.connect(logger: logger)
        let options = UploadOptions(
            fileName: fileName, sizeInBytes: size, parentFolderId: folder, private: `private` ? true : nil,
            labels: labels.isEmpty ? nil : labels)
        do {
            let json: Data
            let encoder = WireFormat.makeEncoder()
            encoder.outputFormatting.insert(.prettyPrinted)
            if simple {
                json = try encoder.encode(try await connection.client.files.generateFileUploadUrl(mimeType: mimeType, options: options))
            } else {
                json = try encoder.encode(
                    try await connection.client.files.generateFileResumableUploadUrl(mimeType: mimeType, options: options))
            }
            Console.line(String(decoding: json, as: UTF8.self))
        } catch {
            await connection.close()
            throw CommandFailure("Generating an upload URL failed: \(error)")
        }
        await connection.close()
    }
}

/// A failure a command reports in one line, with a non-zero exit status.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
