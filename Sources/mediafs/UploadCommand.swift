import Backoff
import ArgumentParser
import Crypto
import Foundation
import Logging
import MediaManager
import NIOCore
import Resumable

/// `mediafs upload`: the documented upload flow for whole files, resumable across interruptions.
struct UploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload files to the Media Manager and print each new file's descriptor (JSON).",
        discussion: """
            Files under 10 MB use a simple upload URL. Larger ones use the resumable flow: \
            generate-resumable-upload-url, tus PATCH chunks, finalize. Network faults pause the \
            upload and it resumes by itself (up to --outage-limit). If the command is interrupted \
            (Ctrl-C, crash, reboot), running it again with the same file resumes the same upload \
            from the server's offset; the state is kept under $XDG_STATE_HOME/mediafs/uploads.
            """
    )

    @Argument(help: "Files to upload.")
    var files: [String]

    @Option(name: .long, help: "Target folder id (default: media-root).")
    var folder: String?

    @Option(name: .customLong("label"), help: "A label for the files (repeatable).")
    var labels: [String] = []

    @Flag(name: .long, help: "Make the files private.")
    var `private` = false

    @Option(name: .long, help: "tus chunk size in MiB.")
    var chunkSize: Int = 8

    @Option(name: .long, help: "Seconds to keep retrying through a network outage.")
    var outageLimit: Double = 300

    @Option(name: .long, help: ChecksumChoice.help)
    var uploadChecksums = ChecksumChoice(.automatic)

    @OptionGroup var connection: ClientOptions
    @OptionGroup var logging: LoggingOptions

    /// Files below this size go through the simple upload URL.
    static let simpleUploadLimit: Int64 = 10_000_000

    func validate() throws {
        for file in files {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw ValidationError("'\(file)' is not a readable file.")
            }
        }
        guard (1...256).contains(chunkSize) else { throw ValidationError("--chunk-size must be between 1 and 256 MiB.") }
        guard outageLimit > 0 else { throw ValidationError("--outage-limit must be positive.") }
    }

    func run() async throws {
        MemoryTuning.apply()
        let logger = try logging.bootstrap(label: "mediafs")
        let connection = try await self.connection.connect(logger: logger)
        let tus = TusClient(
            configuration: .init(
                chunkSize: chunkSize << 20, retry: RetryPolicy(outageLimit: .milliseconds(Int64(outageLimit * 1000))),
                checksums: uploadChecksums.policy),
            httpClient: connection.http, logger: logger)
        let states = UploadStateStore(directory: Environment.stateHome + "/uploads")
        var failures = 0
        for file in files {
            do {
                let descriptor = try await upload(file, connection: connection, tus: tus, states: states)
                let encoder = WireFormat.makeEncoder()
                encoder.outputFormatting.insert(.prettyPrinted)
                Console.line(String(decoding: try encoder.encode(descriptor), as: UTF8.self))
            } catch {
                failures += 1
                Console.error("mediafs upload: \(file): \(error)")
            }
        }
        await connection.close()
        if failures > 0 { throw ExitCode(1) }
    }

    private func upload(_ path: String, connection: Connection, tus: TusClient, states: UploadStateStore) async throws -> MediaManager.FileDescriptor {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let name = url.lastPathComponent
        let mimeType = MIMETypes.guess(fileName: name)
        let options = UploadOptions(
            fileName: name, sizeInBytes: size, parentFolderId: folder, private: `private` ? true : nil,
            labels: labels.isEmpty ? nil : labels)
        let progress = ProgressDisplay(name: name, total: size)

        if size < Self.simpleUploadLimit {
            let target = try await connection.client.files.generateFileUploadUrl(mimeType: mimeType, options: options)
            let data = try Data(contentsOf: url)
            let file = try await connection.client.uploads.upload(
                to: target.uploadUrl, fileName: name, contentType: mimeType, bytes: ByteBuffer(bytes: data))
            progress.update(size)
            progress.finish()
            return file
        }

        let key = [connection.identity, url.path, String(size), String(modified), folder ?? "", labels.joined(separator: ","), String(`private`)]
            .joined(separator: "\n")
        for attempt in 0..<2 {
            var state: UploadState
            if let stored = states.load(key) {
                state = stored
            } else {
                let generated = try await connection.client.files.generateFileResumableUploadUrl(mimeType: mimeType, options: options)
                state = UploadState(uploadUrl: generated.uploadUrl, uploadToken: generated.uploadToken, tusURL: nil)
                try states.save(state, for: key)
            }
            do {
                let snapshot = state
                let result = try await tus.upload(
                    file: url.path, to: state.uploadUrl,
                    metadata: ["filename": name, "contentType": mimeType, "token": state.uploadToken],
                    resumeURL: state.tusURL,
                    onCreate: { tusURL in
                        var updated = snapshot
                        updated.tusURL = tusURL
                        try? states.save(updated, for: key)
                    },
                    progress: { progress.update($0) })
                if result.resumedFrom > 0 {
                    progress.note("resumed from byte \(result.resumedFrom) of \(size)")
                }
                let file = try await connection.client.uploads.finalizeResumableUpload(
                    uploadUrl: state.uploadUrl, uploadToken: state.uploadToken, fileName: name)
                progress.finish()
                states.remove(key)
                return file
            } catch let error as ResumableError where error.status == 429 && attempt == 0 {
                // The stored token started an upload that is gone: start over with a new one.
                progress.note("the stored upload expired; starting over")
                states.remove(key)
            }
        }
        throw CommandFailure("the upload could not be started")
    }
}

/// Where an interrupted upload is found again: the upload URL, its single-use token, and the
/// tus upload it started.
struct UploadState: Codable, Sendable {
    var uploadUrl: String
    var uploadToken: String
    var tusURL: String?
}

/// Upload states on disk (mode 0600: they hold upload tokens), one file per source file.
struct UploadStateStore: Sendable {
    let directory: String

    private func path(_ key: String) -> String {
        directory + "/" + SHA256.hash(data: Data(key.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined() + ".json"
    }

    func load(_ key: String) -> UploadState? {
        guard let data = FileManager.default.contents(atPath: path(key)) else { return nil }
        return try? JSONDecoder().decode(UploadState.self, from: data)
    }

    func save(_ state: UploadState, for key: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let data = try JSONEncoder().encode(state)
        let temporary = path(key) + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CommandFailure("cannot write the upload state in \(directory)")
        }
        _ = rename(temporary, path(key))
    }

    func remove(_ key: String) {
        try? FileManager.default.removeItem(atPath: path(key))
    }
}
