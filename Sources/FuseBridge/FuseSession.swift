import CFuse3
import Foundation
import Logging
import MediaFS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A mounted FUSE session over a ``MediaFilesystem``.
///
/// ```swift
/// let session = try FuseSession(mountpoint: "/mnt/media", filesystem: fs, logger: logger)
/// try await session.run()   // until unmounted; every request in flight has finished then
/// await fs.shutdown(timeout: .seconds(30))
/// ```
///
/// Unmounting (``unmount()``, `fusermount3 -u`, `umount`) stops taking requests at once; ``run()``
/// then waits for the requests in flight to be answered and their tasks to end (up to the drain
/// timeout), closes the session to answers, and returns. No answer or cache invalidation ever
/// reaches a destroyed session.
public final class FuseSession: @unchecked Sendable {
    // The session pointer is used from the loop's threads, by `unmount()` (which only stops the
    // loop) and, behind the host's gate, by replies and the notifier.
    private let session: OpaquePointer
    private let host: FuseHost
    private let hostPointer: UnsafeMutableRawPointer
    private let wakeDescriptor: Int32
    public let mountpoint: String
    /// Invalidates the kernel's caches; already attached to the filesystem.
    public let notifier: FuseNotifier
    private let logger: Logger
    private let workers: UInt32
    private let drainTimeout: Duration
    private let unmounted = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)
    /// False when something still used the session after the drain: it is then never destroyed.
    private let destroyable = Atomic<Bool>(true)

    /// Mounts `filesystem` at `mountpoint`.
    ///
    /// - Parameters:
    ///   - options: FUSE mount options (`-o`), e.g. `allow_other`. `default_permissions`,
    ///     `fsname` and `subtype` are always set.
    ///   - maxThreads: FUSE worker threads; they never block on the network, so few suffice.
    ///   - readAheadKilobytes: The kernel's read-ahead for the mount (needs root; 0 keeps the default).
    ///   - drainTimeout: How long ``run()`` waits, once unmounted, for requests in flight.
    /// - Throws: ``FuseError`` when the session cannot be created or mounted; its description
    ///   says why and what to do.
    public init(
        mountpoint: String,
        filesystem: MediaFilesystem,
        options: [String] = [],
        maxThreads: UInt32 = 4,
        readAheadKilobytes: Int = 4096,
        drainTimeout: Duration = .seconds(30),
        logger: Logger
    ) throws {
        // Everything that can fail happens before the stored properties are set: a throwing
        // initializer then runs no deinit, and each failure path cleans up exactly what it made.
        FuseLog.install(logger)
        let host = FuseHost(filesystem: filesystem, readAhead: max(128, readAheadKilobytes) << 10, logger: logger)
        let hostPointer = Unmanaged.passRetained(host).toOpaque()
        let mountOptions = (["fsname=mediafs", "subtype=mediafs", "default_permissions"] + options).joined(separator: ",")
        let words: [String] = ["mediafs", "-o", mountOptions]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { word in word.withCString { strdup($0) } }
        enum Attempt {
            case mounted(OpaquePointer)
            case notCreated
            case notMounted
        }
        let (attempt, messages) = FuseLog.capturing { () -> Attempt in
            let created = argv.withUnsafeMutableBufferPointer { pointer -> OpaquePointer? in
                var args = cfuse_args_init(Int32(pointer.count), pointer.baseAddress)
                defer { fuse_opt_free_args(&args) }
                // libfuse copies the table.
                var operations = FuseOperations.make()
                return cfuse_session_new(&args, &operations, hostPointer)
            }
            guard let created else { return .notCreated }
            guard fuse_session_mount(created, mountpoint) == 0 else {
                fuse_session_destroy(created)
                return .notMounted
            }
            return .mounted(created)
        }
        argv.forEach { free($0) }
        let created: OpaquePointer
        switch attempt {
        case .mounted(let session):
            created = session
            messages.forEach { logger.debug("libfuse: \($0)") }
        case .notCreated:
            Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
            let cause = messages.last.map { $0.hasPrefix("fuse: ") ? String($0.dropFirst(6)) : $0 } ?? "libfuse refused it"
            throw FuseError("Cannot create the FUSE session: \(cause); check the mount options (-o \(mountOptions)).")
        case .notMounted:
            Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
            throw FuseError.mountFailed(mountpoint, messages: messages)
        }
        let wake = cfuse_wake_create()
        guard wake >= 0 else {
            let reason = String(cString: strerror(errno))
            fuse_session_unmount(created)
            fuse_session_destroy(created)
            Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
            throw FuseError("Cannot set up the FUSE loop: eventfd failed: \(reason).")
        }
        self.session = created
        self.host = host
        self.hostPointer = hostPointer
        self.wakeDescriptor = wake
        self.mountpoint = mountpoint
        self.logger = logger
        self.workers = max(1, maxThreads)
        self.drainTimeout = drainTimeout
        self.notifier = FuseNotifier(session: created, gate: host.gate, logger: logger)
        filesystem.attach(notifier: notifier)
        raiseReadAhead(kilobytes: readAheadKilobytes)
    }

    /// The kernel reads ahead only 128 KiB on a FUSE mount (the negotiation can only lower its
    /// default). With 4 MiB it sends up to four 1 MiB read requests at once (1 MiB: `max_pages`
    /// follows `max_write`), which keeps the connections busy. Only root may raise it; for anyone
    /// else the default stays.
    private func raiseReadAhead(kilobytes: Int) {
        // The device number comes from mountinfo: a stat of the mount point would wait for the
        // loop, which is not running yet.
        guard kilobytes > 0, let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
        let escaped = mountpoint.replacingOccurrences(of: " ", with: "\\040")
        guard let line = mounts.split(separator: "\n").last(where: { $0.split(separator: " ").dropFirst(4).first.map(String.init) == escaped }),
            let device = line.split(separator: " ").dropFirst(2).first
        else { return }
        let path = "/sys/class/bdi/\(device)/read_ahead_kb"
        guard let handle = FileHandle(forWritingAtPath: path) else {
            logger.debug("Cannot raise the read-ahead (\(path)); reads use the kernel's default")
            return
        }
        handle.write(Data(String(kilobytes).utf8))
        try? handle.close()
    }

    /// Serves requests until the filesystem is unmounted (by ``unmount()``, `fusermount3 -u`, or
    /// `umount`), then waits for the requests in flight (up to the drain timeout) and closes the
    /// session. When it returns, every request answered has finished its work.
    public func run() async throws {
        let status: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                continuation.resume(returning: cfuse_loop_run(session, workers, wakeDescriptor))
            }
            thread.name = "fuse-loop"
            thread.start()
        }
        // No request is taken any more.
        fuse_session_exit(session)
        if status != 0 {
            logger.warning("The FUSE loop ended with an error: \(String(cString: strerror(-status)))")
        }
        await drain()
        close()
    }

    /// Waits for the requests in flight, and says how many and how long.
    private func drain() async {
        let (unanswered, tasks) = host.requests.inFlight
        guard unanswered + tasks > 0 else { return }
        let started = ContinuousClock.now
        logger.info("Unmounting: waiting for \(max(unanswered, tasks)) FUSE request(s) in flight")
        let finished = await host.requests.drain(timeout: drainTimeout)
        let elapsed = ContinuousClock.now - started
        if finished {
            logger.info("All requests in flight finished in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds])))")
        } else {
            let (unanswered, tasks) = host.requests.inFlight
            logger.warning(
                "Unmounting: \(max(unanswered, tasks)) FUSE request(s) still running after \(drainTimeout); their answers will be dropped")
        }
    }

    /// Closes the session to answers and notifications, and unmounts it from the kernel.
    private func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if !host.gate.close(timeout: .seconds(5)) {
            // A notification waits on the kernel: destroying the session under it would crash.
            destroyable.store(false, ordering: .releasing)
            logger.warning("The FUSE session is still in use after the unmount; it is left allocated")
        }
        // Unmounted by ``unmount()`` already, or from outside (libfuse then only closes /dev/fuse).
        if !unmounted.exchange(true, ordering: .acquiringAndReleasing) {
            fuse_session_unmount(session)
        }
    }

    /// Stops taking requests and unmounts (lazily, so a busy mount detaches at once); ``run()``
    /// then drains the requests in flight and returns.
    public func unmount() {
        guard !unmounted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        fuse_session_exit(session)
        cfuse_wake(wakeDescriptor)
        if getuid() == 0 {
            if umount2(mountpoint, Int32(MNT_DETACH)) != 0, errno != EINVAL {
                logger.warning("umount \(mountpoint) failed: \(String(cString: strerror(errno)))")
            }
        } else {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
            process.arguments = ["-u", "-z", "-q", mountpoint]
            do {
                try process.run()
                process.waitUntilExit()
            } catch {
                logger.warning("fusermount3 -u \(mountpoint) failed: \(error)")
            }
        }
    }

    deinit {
        close()
        if destroyable.load(ordering: .acquiring) {
            fuse_session_destroy(session)
        }
        Glibc.close(wakeDescriptor)
        Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
    }
}
