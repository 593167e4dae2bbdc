import Backoff
import ArgumentParser
import AsyncHTTPClient
import Foundation
import FuseBridge
import Journal
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

extension MountCommand {
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
            configuration.releaseMemory = { MemoryTuning.release() }
            let tus = TusClient(
                configuration: .init(
                    chunkSize: chunkSize << 20,
                    retry: RetryPolicy(outageLimit: .milliseconds(Int64(outageLimit * 1000))),
                    checksums: uploadChecksums.policy,
                    spoolDirectory: cacheDirectory),
                httpClient: connection.http, logger: logger)
            let attributes = try AttributeStore(
                path: Environment.stateHome + "/attributes.sqlite",
                scope: connection.identity,
                logger: logger)
            let journal: Journal
            do {
                journal = try Journal(
                    configuration: Journal.Configuration(
                        directory: cacheDirectory + "/journal", scope: connection.identity, writeBack: writeBack, transfers: transfers,
                        maximumSize: cacheMaxSize.bytes, streamChunk: chunkSize << 20,
                        outageLimit: .milliseconds(Int64(outageLimit * 1000))),
                    client: connection.client, tus: tus, attributes: attributes, logger: logger)
            } catch {
                throw CommandFailure(error.message)
            }
            filesystem = MediaFilesystem(
                client: connection.client, http: connection.http, journal: journal, attributes: attributes,
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
        probeConfiguration.retry = .init(initialDelay: .milliseconds(200), maximumDelay: .seconds(2), maximumAttempts: 3)
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
