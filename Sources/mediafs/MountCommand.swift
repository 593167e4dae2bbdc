import ArgumentParser
import Dispatch
import Foundation
import FuseBridge
import Journal
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

    @Flag(name: .long, help: "close() returns once the bytes are durable in the local journal; uploads follow in the background (see `mediafs status`, `mediafs sync`).")
    var writeBack = false

    @Option(name: .long, help: "How many files are uploaded at once.")
    var transfers: Int = 8

    @Option(name: .long, help: "tus PATCH size in MiB while a file is written: bytes go out once this many have gathered.")
    var chunkSize: Int = 8

    @Option(name: .long, help: "The most bytes the journal holds that the Media Manager has not acknowledged (e.g. 10G, 512M); beyond it writes wait.")
    var cacheMaxSize: ByteCount = ByteCount(10 << 30)

    @Option(name: .long, help: "Seconds an upload a close() waits for keeps retrying through a network outage before close() fails with EIO.")
    var outageLimit: Double = 300

    @Option(name: .long, help: "Directory of the write journal and other local state (default: $XDG_CACHE_HOME/mediafs).")
    var cacheDir: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard attrTTL >= 0, dirTTL >= 0 else { throw ValidationError("TTLs cannot be negative.") }
        guard (1...256).contains(chunkSize) else { throw ValidationError("--chunk-size must be between 1 and 256 MiB.") }
        guard transfers >= 1 else { throw ValidationError("--transfers must be at least 1.") }
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
            let cacheDirectory = cacheDir ?? Environment.cacheHome
            let tus = TusClient(
                configuration: .init(
                    chunkSize: chunkSize << 20,
                    retry: RetryPolicy(outageLimit: .milliseconds(Int64(outageLimit * 1000))),
                    spoolDirectory: cacheDirectory),
                httpClient: connection.http, logger: logger)
            let attributes = try AttributeStore(
                path: Environment.stateHome + "/attributes.sqlite",
                scope: connection.identity,
                logger: logger)
            let journal = try Journal(
                configuration: Journal.Configuration(
                    directory: cacheDirectory + "/journal", scope: connection.identity, writeBack: writeBack, transfers: transfers,
                    maximumSize: cacheMaxSize.bytes, streamChunk: chunkSize << 20,
                    outageLimit: .milliseconds(Int64(outageLimit * 1000))),
                client: connection.client, tus: tus, attributes: attributes, logger: logger)
            if rootFolder != FolderID.mediaRoot {
                do {
                    _ = try await connection.client.folders.get(id: rootFolder)
                } catch {
                    throw ValidationError("--root-folder \(rootFolder): \(error)")
                }
            }
            let filesystem = MediaFilesystem(
                client: connection.client, http: connection.http, journal: journal, attributes: attributes,
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
            await filesystem.shutdown(timeout: .seconds(30))
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


/// A size given as bytes or with a unit: `512M`, `10G`, `1T` (powers of 1024).
struct ByteCount: ExpressibleByArgument, Sendable {
    let bytes: Int64

    init(_ bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int64)] = [("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        var number = text
        var unit: Int64 = 1
        for (suffix, value) in units where text.hasSuffix(suffix) || text.hasSuffix(suffix + "B") || text.hasSuffix(suffix + "IB") {
            number = String(text.prefix { $0.isNumber })
            unit = value
            break
        }
        guard !number.isEmpty, number.allSatisfy(\.isNumber), let value = Int64(number), value > 0 else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }
        self.bytes = bytes
    }

    var defaultValueDescription: String { "\(bytes >> 30)G" }
}
