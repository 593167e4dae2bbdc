import AsyncHTTPClient
import Dispatch
import Foundation
import FuseBridge
import Logging
import MediaFS
import MediaServer
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import CDispatch  // declares struct stat and timespec for Swift on Linux
import Glibc
#endif

/// The mount as a service: serves FUSE until unmounted, reports readiness once the mount answers,
/// and at the end drains the filesystem.
///
/// Unmounting, whichever way it starts (SIGINT/SIGTERM through the service group, `umount`,
/// `fusermount3 -u`), goes in order: the FUSE session stops taking requests and finishes those in
/// flight (its `run()` returns), then the filesystem drains its uploads (bounded by the drain
/// timeout). The service group then stops the HTTP client and the embedded server, in that order.
struct MountService: Service {
    let session: FuseSession
    let filesystem: MediaFilesystem
    let mountpoint: String
    let drainTimeout: Duration
    /// Said once the mount answers: "mounted … on …".
    let readyMessage: String
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await session.run() }
                do {
                    try await MountProbe.waitUntilMounted(mountpoint, timeout: .seconds(30))
                } catch {
                    Readiness.failed("\(error)")
                    session.unmount()
                    try await group.waitForAll()
                    throw error
                }
                logger.info("Mounted", metadata: ["mountpoint": "\(mountpoint)"])
                notifier.ready(status: readyMessage)
                if Readiness.isAwaited {
                    Readiness.ready(readyMessage)
                } else {
                    Console.line("mediafs: \(readyMessage); Ctrl-C to unmount")
                }
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            notifier.stopping(status: "Unmounting \(mountpoint)")
            logger.notice("Unmounting \(mountpoint): taking no new requests, finishing those in flight")
            session.unmount()
        }
        notifier.stopping(status: "Unmounting \(mountpoint)")
        let clock = ContinuousClock()
        let start = clock.now
        logger.info("Unmounted \(mountpoint); draining uploads (at most \(Self.seconds(drainTimeout)))")
        await filesystem.shutdown(timeout: drainTimeout)
        let elapsed = clock.now - start
        if elapsed > drainTimeout {
            logger.warning("Draining took \(Self.seconds(elapsed)), more than --drain-timeout \(Self.seconds(drainTimeout))")
        } else {
            logger.info("Drained in \(Self.seconds(elapsed))")
        }
    }

    /// `1.2 s`.
    static func seconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.1f s", value)
    }
}

/// Checks from outside the FUSE loop that the mount answers.
enum MountProbe {
    /// Waits until a `stat` of `mountpoint` is answered by the mount (its device differs from its
    /// parent directory's). The stat runs on a thread of its own: a mount that does not answer
    /// would block it.
    static func waitUntilMounted(_ mountpoint: String, timeout: Duration) async throws {
        let parent = (mountpoint as NSString).deletingLastPathComponent
        let answer = try await Blocking.run(timeout: timeout, what: "the mount to answer a stat") { () -> (Int32, UInt64, UInt64) in
            var mounted = stat()
            var below = stat()
            guard stat(mountpoint, &mounted) == 0 else { return (errno, 0, 0) }
            guard stat(parent.isEmpty ? "/" : parent, &below) == 0 else { return (errno, 0, 0) }
            return (0, UInt64(mounted.st_dev), UInt64(below.st_dev))
        }
        guard answer.0 == 0 else {
            throw CommandFailure("The mount at \(mountpoint) does not answer: \(String(cString: strerror(answer.0)))")
        }
        guard answer.1 != answer.2 else {
            throw CommandFailure("\(mountpoint) is not mounted any more (it was unmounted while starting)")
        }
    }
}
