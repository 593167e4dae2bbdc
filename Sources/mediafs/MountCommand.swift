import ArgumentParser
import Dispatch
import Foundation
import FuseBridge
import Logging
import MediaFS
import MediaManager
import MediaServer
import Resumable

#if canImport(Glibc)
import Glibc
#endif

/// `mediafs mount`: the Media Manager as a directory, in the foreground.
struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a Media Manager as a directory (in the foreground; Ctrl-C or fusermount3 -u unmounts).",
        discussion: """
            Folders are directories and files are regular files. Display names are not unique in a
            Media Manager and may contain '/': in the mount, '/' shows as '∕' (U+2215), and later
            items with a name already taken get ' (2)', ' (3)', … before the extension, in creation
            order. Extended attributes user.mediafs.* (id, url, mimeType, mediaType, hash, labels,
            operationStatus) tell what the Media Manager knows; setting user.mediafs.labels
            (comma-separated) changes a file's labels.
            """
    )

    @Argument(help: "An empty directory to mount on.")
    var mountpoint: String

    @OptionGroup var connection: ClientOptions

    @Option(name: .long, help: "Mount this folder (its id) instead of the root of the media.")
    var rootFolder: String = FolderID.mediaRoot

    @Option(name: .customShort("o"), help: "FUSE mount options, comma-separated (e.g. allow_other).")
    var options: [String] = []

    @Option(name: .long, help: "Seconds the kernel keeps attributes and names.")
    var attrTTL: Double = 1

    @Option(name: .long, help: "Seconds a folder listing is reused; changes made elsewhere show up within this.")
    var dirTTL: Double = 1

    @Option(name: .long, help: "stream: upload while writing (sequential writes); spool: stage in the cache directory and upload at close (any program).")
    var writeMode: WriteMode = .stream

    @Option(name: .long, help: "tus chunk size in MiB; each file being written holds about two chunks in memory.")
    var chunkSize: Int = 8

    @Option(name: .long, help: "How many files may be written at once (open fails beyond it).")
    var maxWriters: Int = 16

    @Option(name: .long, help: "Seconds an upload keeps retrying through a network outage before close() fails with EIO.")
    var outageLimit: Double = 300

    @Option(name: .long, help: "Directory for spooled files (default: $XDG_CACHE_HOME/mediafs).")
    var cacheDir: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard attrTTL >= 0, dirTTL >= 0 else { throw ValidationError("TTLs cannot be negative.") }
        guard (1...256).contains(chunkSize) else { throw ValidationError("--chunk-size must be between 1 and 256 MiB.") }
        guard maxWriters >= 1 else { throw ValidationError("--max-writers must be at least 1.") }
        guard outageLimit > 0 else { throw ValidationError("--outage-limit must be positive.") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("Mount point '\(mountpoint)' is not a directory; create it first (mkdir -p \(mountpoint)).")
        }
    }

    func run() async throws {
        MemoryTuning.apply()
        let logger = try logging.bootstrap(label: "mediafs")
        let mountpoint = URL(fileURLWithPath: self.mountpoint).standardizedFileURL.path
        let connection = try await self.connection.connect(logger: logger)
        do {
            let (readOnly, reason) = try await Self.probeScope(connection.client, logger: logger)
            var configuration = FilesystemConfiguration(
                rootFolderId: rootFolder,
                entryTTL: .milliseconds(Int64(attrTTL * 1000)),
                attributeTTL: .milliseconds(Int64(attrTTL * 1000)),
                directoryTTL: .milliseconds(Int64(dirTTL * 1000))
            )
            configuration.readOnly = readOnly
            configuration.readOnlyReason = reason
            configuration.writeMode = writeMode
            configuration.chunkSize = chunkSize << 20
            configuration.maxWriters = maxWriters
            configuration.cacheDirectory = cacheDir ?? Environment.cacheHome
            let tus = TusClient(
                configuration: .init(
                    chunkSize: chunkSize << 20,
                    retry: RetryPolicy(outageLimit: .milliseconds(Int64(outageLimit * 1000))),
                    spoolDirectory: configuration.cacheDirectory),
                httpClient: connection.http, logger: logger)
            let attributes = try AttributeStore(
                path: Environment.stateHome + "/attributes.sqlite",
                scope: connection.identity,
                logger: logger)
            if rootFolder != FolderID.mediaRoot {
                do {
                    _ = try await connection.client.folders.get(id: rootFolder)
                } catch {
                    throw ValidationError("--root-folder \(rootFolder): \(error)")
                }
            }
            let filesystem = MediaFilesystem(
                client: connection.client, http: connection.http, tus: tus, attributes: attributes,
                configuration: configuration, logger: logger)
            let session = try FuseSession(
                mountpoint: mountpoint, filesystem: filesystem,
                options: options.flatMap { $0.split(separator: ",").map(String.init) }, logger: logger)
            let signals = Self.onSignals([SIGINT, SIGTERM, SIGHUP]) {
                logger.info("Unmounting \(mountpoint)")
                session.unmount()
            }
            Console.line("mediafs: mounted \(connection.embedded.map { "the embedded Media Manager (\($0.baseURL))" } ?? "the Media Manager") on \(mountpoint)\(readOnly ? " read-only" : ""); Ctrl-C to unmount")
            try await session.run()
            signals.forEach { $0.cancel() }
            Console.line("mediafs: unmounted \(mountpoint)")
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// Whether the key may change things: generating an upload URL needs the Manage scope and
    /// changes nothing.
    static func probeScope(_ client: MediaManagerClient, logger: Logger) async throws -> (Bool, String?) {
        do {
            _ = try await client.files.generateFileUploadUrl(mimeType: "text/plain", options: UploadOptions(fileName: "mediafs-probe.txt"))
            return (false, nil)
        } catch let error as MediaManagerError where error.code == .permissionDenied {
            let reason = "the API key has only the Read Media Manager scope (the service answered 403 to an upload URL request)"
            logger.warning("Mounting read-only: \(reason)")
            return (true, reason)
        } catch let error as MediaManagerError where error.code == .unauthenticated {
            throw ValidationError("The Media Manager refused the API key (401): check --api-key / MEDIAFS_API_KEY and --site-id.")
        } catch {
            throw ValidationError("Cannot reach the Media Manager: \(error)")
        }
    }

    /// Handles `signals` on a queue instead of the default action.
    static func onSignals(_ signals: [Int32], handler: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
        signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }
}

extension WriteMode: ExpressibleByArgument {}
