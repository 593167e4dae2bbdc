import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd how the service is doing (the `sd_notify` protocol): one datagram per message to
/// the unix socket named by `$NOTIFY_SOCKET`, written here without libsystemd.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`), every call does nothing.
final class SystemdNotifier: Sendable {
    /// The socket path; a leading `@` names an abstract socket.
    let socketPath: String?
    private let stoppingSent = Atomic<Bool>(false)

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"]
        self.socketPath = (path?.isEmpty ?? true) ? nil : path
    }

    /// `READY=1`: the service is up (the mount answers).
    func ready(status: String) {
        send("READY=1\nMAINPID=\(getpid())\nSTATUS=\(status)")
    }

    /// `STOPPING=1`: the service began shutting down (sent once).
    func stopping(status: String) {
        guard !stoppingSent.exchange(true, ordering: .relaxed) else { return }
        send("STOPPING=1\nSTATUS=\(status)")
    }

    /// `STATUS=…`: a line `systemctl status` shows.
    func status(_ text: String) {
        send("STATUS=\(text)")
    }

    /// Sends one datagram; failures are ignored, as sd_notify's are (the service works without).
    func send(_ message: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: pathBytes)
        }
        // An abstract address is counted exactly; a path one includes its terminating zero.
        let length = MemoryLayout<sa_family_t>.size + pathBytes.count + (pathBytes.first == 0 ? 0 : 1)
        let bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { body in
                    sendto(fd, body.baseAddress, body.count, Int32(MSG_NOSIGNAL), socketAddress, socklen_t(length))
                }
            }
        }
    }
}
