import ArgumentParser
import AsyncHTTPClient
import Dispatch
import Foundation
import FuseBridge
import Logging
import MediaFS
import MediaManager
import MediaServer
import NIOCore
import Resumable
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `mediafs mount`: the Media Manager as a directory, in the foreground or detached.
struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a Media Manager as a directory.",
        discussion: """
            Folders are directories and files are regular files. Display names are not unique in a \
            Media Manager and may contain '/': in the mount, '/' shows as '∕' (U+2215), and later \
            items with a name already taken get ' (2)', ' (3)', … before the extension, in creation \
            order. Extended attributes user.mediafs.* (id, url, mimeType, mediaType, hash, labels, \
            operationStatus) tell what the Media Manager knows; setting user.mediafs.labels \
            (comma-separated) changes a file's labels.

            In the foreground (the default), Ctrl-C, SIGTERM, umount or fusermount3 -u unmounts: \
            requests in flight finish, then uploads drain (--drain-timeout). With --daemon, and when \
            mount(8) starts it, mediafs detaches and exits 0 once the mount answers, or non-zero with \
            the reason (a refused key, an unreachable server, a busy mount point).

            Every option also has a mount(8) spelling, -o name_with_underscores=VALUE (or -o name for \
            a flag), which /etc/fstab takes in a line of type fuse.mediafs whose source is the folder \
            to mount (media-root for all the media); see mediafs(8).
            """
    )

    @Argument(help: "An empty directory to mount on.")
    var mountpoint: String

    @OptionGroup var connection: ClientOptions

    @Option(name: .long, help: "Mount this folder (its id) instead of the root of the media.")
    var rootFolder: String = FolderID.mediaRoot

    @Option(
        name: .customShort("o"),
        help: ArgumentHelp(
            """
            Mount options, comma-separated: this command's options as name=value or name \
            (api_key_file=FILE, uid=1000, read_only), FUSE's (allow_root, nosuid, nodev, noexec, \
            noatime, …); mount(8)'s (_netdev, nofail, noauto, x-systemd.*) are ignored.
            """, valueName: "options"))
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

    @Option(name: .long, help: ArgumentHelp("Owner (user name or id) of files and folders with no stored owner (default: the user mounting).", valueName: "user"))
    var uid: String?

    @Option(name: .long, help: ArgumentHelp("Group (name or id) of files and folders with no stored group (default: the user's group).", valueName: "group"))
    var gid: String?

    @Option(name: .long, help: ArgumentHelp("Octal bits cleared from 0666 (files) and 0777 (folders) that have no stored mode (default: 022).", valueName: "bits"))
    var umask: String?

    @Option(name: .long, help: ArgumentHelp("Octal mode of files with no stored mode (overrides --umask).", valueName: "mode"))
    var fileMode: String?

    @Option(name: .long, help: ArgumentHelp("Octal mode of folders with no stored mode (overrides --umask).", valueName: "mode"))
    var dirMode: String?

    @Flag(name: .long, help: "Let users other than the one mounting use the mount (FUSE allow_other; a user other than root needs user_allow_other in /etc/fuse.conf).")
    var allowOther = false

    @Flag(name: .long, help: "Refuse every change (EROFS), whatever the API key may do (-o ro).")
    var readOnly = false

    @Flag(name: .long, help: "Mount even on a directory that holds files or is already a mount, hiding them while mounted (-o nonempty).")
    var allowNonEmpty = false

    @Flag(name: .long, help: "Detach once mounted: exit 0 when the mount answers, non-zero with the reason otherwise.")
    var daemon = false

    @Flag(name: .long, help: "Stay in the foreground (the default, except when started by mount(8)).")
    var foreground = false

    @Option(name: .long, help: ArgumentHelp("Seconds unmounting waits for uploads in progress to finish.", valueName: "seconds"))
    var drainTimeout: Double = 30

    /// Started by mount(8) (see ``Invocation``): detach unless --foreground, succeed silently.
    @Flag(name: .long, help: .private)
    var helper = false

    /// mount(8)'s -s: unknown -o options are dropped with a warning (handled by ``Invocation``).
    @Flag(name: .long, help: .private)
    var sloppy = false

    /// The pipe a starting process reads the outcome from (see ``Daemon``).
    @Option(name: .long, help: .private)
    var readyFd: Int32?

    @OptionGroup var logging: LoggingOptions

    /// Whether this process starts a detached one and waits for it.
    var detaches: Bool { readyFd == nil && (daemon || (helper && !foreground)) }

    func validate() throws {
        guard attrTTL >= 0, dirTTL >= 0 else { throw ValidationError("TTLs cannot be negative.") }
        guard (1...256).contains(chunkSize) else { throw ValidationError("--chunk-size must be between 1 and 256 MiB.") }
        guard maxWriters >= 1 else { throw ValidationError("--max-writers must be at least 1.") }
        guard outageLimit > 0 else { throw ValidationError("--outage-limit must be positive.") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout cannot be negative.") }
        guard !(daemon && foreground) else { throw ValidationError("--daemon and --foreground exclude each other.") }
        _ = try ownership
        for option in options.flatMap({ $0.split(separator: ",").map(String.init) }) where !MountOptionSpelling.isFUSEOption(option) {
            throw ValidationError("unknown mount option '\(option)'")
        }
    }

    var ownership: Ownership {
        get throws { try Ownership(uid: uid, gid: gid, umask: umask, fileMode: fileMode, directoryMode: dirMode) }
    }

    /// FUSE options: those given with -o, and those the flags stand for.
    var fuseOptions: [String] {
        var fuse = options.flatMap { $0.split(separator: ",").map(String.init) }
        if allowOther { fuse.append("allow_other") }
        if readOnly { fuse.append("ro") }
        return fuse
    }

    func run() async throws {
        MemoryTuning.apply()
        if detaches {
            try await startDetached()
        } else {
            try await mount()
        }
    }

    /// Checks that cost nothing, made before starting anything: the mount point is free, and
    /// `allow_other` is allowed.
    func preflight(mountpoint: String) throws {
        try MountpointCheck.verify(mountpoint, allowNonEmpty: allowNonEmpty)
        let wantsOthers = allowOther || fuseOptions.contains("allow_root")
        if wantsOthers && geteuid() != 0 && !FuseConfiguration.allowsOtherForUsers() {
            throw CommandFailure(
                "allow_other needs the line user_allow_other in /etc/fuse.conf for a user other than root "
                    + "(it lets users open their mounts to others); add it as root, or mount without allow_other.")
        }
    }

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

    /// Mounts in this process, until unmounted.
    func mount() async throws {
        let detached = Readiness.isAwaited
        if detached {
            // A session of its own: no terminal, no signals from the starter's process group.
            _ = setsid()
            signal(SIGPIPE, SIG_IGN)
        }
        let logger: Logger
        do {
            logger = try logging.bootstrap(label: "mediafs", detached: detached)
        } catch {
            Readiness.failed("\(error)")
            throw error
        }
        do {
            try await mount(detached: detached, logger: logger)
        } catch {
            let message = (error as? ValidationError)?.message ?? "\(error)"
            Readiness.failed(message)
            if detached { logger.error("Mounting failed: \(message)") }
            throw error
        }
    }

    private func mount(detached: Bool, logger: Logger) async throws {
        let mountpoint = MountpointCheck.canonical(self.mountpoint)
        var client = self.connection
        client.data = client.data.map(Self.absolute)
        let cacheDirectory = Self.absolute(cacheDir ?? Environment.cacheHome)
        if detached {
            // Holding no directory busy.
            _ = chdir("/")
        }
        try preflight(mountpoint: mountpoint)
        let key = client.resolvedServer == nil ? nil : try client.apiKey(logger: logger)
        let connection = try await client.connect(apiKey: key, logger: logger)
        let session: FuseSession
        let filesystem: MediaFilesystem
        let readOnlyMount: Bool
        do {
            let (scopeReadOnly, reason) = try await Self.withStartupClient(connection.client.configuration, logger: logger) { client in
                let scope = try await Self.probeScope(client, logger: logger)
                if rootFolder != FolderID.mediaRoot {
                    do {
                        _ = try await client.folders.get(id: rootFolder)
                    } catch {
                        throw CommandFailure("Cannot mount folder \(rootFolder) (--root-folder, or the source of the fstab line): \(error)")
                    }
                }
                return scope
            }
            let ownership = try self.ownership
            var configuration = FilesystemConfiguration(
                rootFolderId: rootFolder,
                entryTTL: .milliseconds(Int64(attrTTL * 1000)),
                attributeTTL: .milliseconds(Int64(attrTTL * 1000)),
                directoryTTL: .milliseconds(Int64(dirTTL * 1000)),
                uid: ownership.uid,
                gid: ownership.gid,
                fileMode: ownership.fileMode,
                directoryMode: ownership.directoryMode
            )
            readOnlyMount = readOnly || scopeReadOnly
            configuration.readOnly = readOnlyMount
            configuration.readOnlyReason = readOnly ? "the mount is read-only (--read-only, -o ro)" : reason
            configuration.writeMode = writeMode
            configuration.chunkSize = chunkSize << 20
            configuration.maxWriters = maxWriters
            configuration.cacheDirectory = cacheDirectory
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
            filesystem = MediaFilesystem(
                client: connection.client, http: connection.http, tus: tus, attributes: attributes,
                configuration: configuration, logger: logger)
            session = try FuseSession(mountpoint: mountpoint, filesystem: filesystem, options: fuseOptions, logger: logger)
        } catch {
            await connection.close()
            throw error
        }

        let target = connection.embedded.map { "the embedded Media Manager (\($0.baseURL))" } ?? "the Media Manager at \(connection.client.configuration.baseURL)"
        let notifier = SystemdNotifier()
        let mount = MountService(
            session: session, filesystem: filesystem, mountpoint: mountpoint,
            drainTimeout: .milliseconds(Int64(drainTimeout * 1000)),
            readyMessage: "mounted \(target) on \(mountpoint)\(readOnlyMount ? " read-only" : "")",
            notifier: notifier, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let embedded = connection.embedded {
            services.append(.init(service: EmbeddedServerService(server: embedded)))
        }
        services.append(.init(service: HTTPClientService(http: connection.http)))
        services.append(.init(service: mount, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
        var groupLogger = logger
        groupLogger.logLevel = max(logger.logLevel, .warning)
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint, .sighup], logger: groupLogger))
        try await group.run()
        if !detached {
            Console.line("mediafs: unmounted \(mountpoint)")
        }
    }

    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// Runs the startup checks with a client of their own that reports at once: connection
    /// attempts are not retried within a request (a refused connection fails it), a request has
    /// 15 s, and only 3 attempts are made. The mount's own client keeps retrying through outages.
    static func withStartupClient<T: Sendable>(
        _ configuration: MediaManagerClient.Configuration, logger: Logger, _ body: (MediaManagerClient) async throws -> T
    ) async throws -> T {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(15))
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        var probeConfiguration = configuration
        probeConfiguration.timeouts.request = .seconds(15)
        probeConfiguration.retry = .init(maximumAttempts: 3, initialDelay: .milliseconds(200), maximumDelay: .seconds(2))
        let client = MediaManagerClient(configuration: probeConfiguration, httpClient: http, logger: logger)
        do {
            let result = try await body(client)
            try? await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
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
            throw CommandFailure("The Media Manager refused the API key (401): check the key (--api-key-file) and --site-id.")
        } catch {
            throw CommandFailure("Cannot reach the Media Manager at \(client.configuration.baseURL): \(error)")
        }
    }
}

extension WriteMode: ExpressibleByArgument {}
