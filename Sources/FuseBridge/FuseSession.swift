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
/// try await session.run()   // until unmounted
/// ```
public final class FuseSession: @unchecked Sendable {
    // The session pointer is used from the loop thread and from `unmount()`; libfuse allows
    // `fuse_session_exit` from any thread.
    private let session: OpaquePointer
    private let hostPointer: UnsafeMutableRawPointer
    public let mountpoint: String
    private let logger: Logger
    private let maxThreads: UInt32
    private let unmounted = Atomic<Bool>(false)

    /// Mounts `filesystem` at `mountpoint`.
    ///
    /// - Parameters:
    ///   - options: FUSE mount options (`-o`), e.g. `allow_other`. `default_permissions`,
    ///     `fsname` and `subtype` are always set.
    ///   - maxThreads: FUSE worker threads; they never block on the network, so few suffice.
    ///   - readAheadKilobytes: The kernel's read-ahead for the mount (needs root; 0 keeps the default).
    public init(
        mountpoint: String,
        filesystem: MediaFilesystem,
        options: [String] = [],
        maxThreads: UInt32 = 8,
        readAheadKilobytes: Int = 1024,
        logger: Logger
    ) throws {
        self.mountpoint = mountpoint
        self.logger = logger
        self.maxThreads = maxThreads
        let host = FuseHost(filesystem: filesystem, logger: logger)
        self.hostPointer = Unmanaged.passRetained(host).toOpaque()

        let mountOptions = (["fsname=mediafs", "subtype=mediafs", "default_permissions"] + options).joined(separator: ",")
        let words: [String] = ["mediafs", "-o", mountOptions]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { word in word.withCString { strdup($0) } }
        let hostPointer = self.hostPointer
        let created = argv.withUnsafeMutableBufferPointer { pointer -> OpaquePointer? in
            var args = cfuse_args_init(Int32(pointer.count), pointer.baseAddress)
            defer { fuse_opt_free_args(&args) }
            // libfuse copies the table.
            var operations = FuseOperations.make()
            return cfuse_session_new(&args, &operations, hostPointer)
        }
        argv.forEach { free($0) }
        guard let created else {
            Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
            throw FuseError("Could not create the FUSE session (bad mount options: \(mountOptions)?)")
        }
        self.session = created
        guard fuse_session_mount(session, mountpoint) == 0 else {
            fuse_session_destroy(session)
            Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
            throw FuseError(
                "Could not mount at \(mountpoint): is it an empty directory you may write, is /dev/fuse there, and is fuse3 installed?")
        }
        raiseReadAhead(kilobytes: readAheadKilobytes)
    }

    /// The kernel reads ahead only 128 KiB on a FUSE mount (the negotiation can only lower its
    /// default); sequential reads go much faster with 1 MiB requests. Only root may raise it; for
    /// anyone else the default stays.
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

    /// Serves requests on a dedicated thread until the filesystem is unmounted (by
    /// ``unmount()``, `fusermount3 -u`, or `umount`).
    public func run() async throws {
        let status: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                let result = cfuse_session_loop_mt(session, maxThreads)
                continuation.resume(returning: result)
            }
            thread.name = "fuse-loop"
            thread.start()
        }
        if !unmounted.load(ordering: .acquiring) {
            fuse_session_unmount(session)
        }
        if status != 0 && status != -ENODEV {
            logger.warning("The FUSE loop ended with status \(status)")
        }
    }

    /// Unmounts (lazily, so a busy mount detaches at once); ``run()`` then returns.
    public func unmount() {
        guard !unmounted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        fuse_session_exit(session)
        if getuid() == 0 {
            if umount2(mountpoint, Int32(MNT_DETACH)) != 0 {
                logger.warning("umount \(mountpoint) failed: \(String(cString: strerror(errno)))")
            }
        } else {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
            process.arguments = ["-u", "-z", mountpoint]
            do {
                try process.run()
                process.waitUntilExit()
            } catch {
                logger.warning("fusermount3 -u \(mountpoint) failed: \(error)")
            }
        }
    }

    deinit {
        fuse_session_destroy(session)
        Unmanaged<FuseHost>.fromOpaque(hostPointer).release()
    }
}

/// A failure to set up or run the FUSE session.
public struct FuseError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
