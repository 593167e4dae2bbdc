import ArgumentParser
import Dispatch
import FaultInjection
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `mediafs-faultproxy`: the fault proxy as a process, to put an emulated wide-area link in front
/// of a server (for the benchmarks).
@main
struct FaultProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediafs-faultproxy",
        abstract: "Forward TCP connections to a target through an emulated link (delay and bandwidth cap per direction).",
        discussion: """
            Prints the port it listens on (one line on standard output) once ready, then forwards \
            until SIGINT or SIGTERM, and prints what it forwarded on standard error. The caps are \
            shared by all connections, as a real link's are; a new connection waits one round trip \
            before its first byte leaves. Example, a 40 ms round trip with 100 Mbit/s up and \
            200 Mbit/s down in front of a server on port 8080:

              mediafs-faultproxy --target 127.0.0.1:8080 --delay-ms 20 --up-mbit 100 --down-mbit 200
            """
    )

    @Option(name: .long, help: "Port to listen on (0 picks a free one).")
    var listen: Int = 0

    @Option(name: .long, help: "Address to listen on.")
    var listenHost: String = "127.0.0.1"

    @Option(name: .long, help: "Where to forward, as HOST:PORT.")
    var target: String

    @Option(name: .long, help: "One-way delay in milliseconds, each direction (the round trip is twice this).")
    var delayMs: Double = 0

    @Option(name: .long, help: "Client → target delay in milliseconds (default: --delay-ms).")
    var upDelayMs: Double?

    @Option(name: .long, help: "Target → client delay in milliseconds (default: --delay-ms).")
    var downDelayMs: Double?

    @Option(name: .long, help: "Client → target cap in Mbit/s, shared by all connections (default: none).")
    var upMbit: Double?

    @Option(name: .long, help: "Target → client cap in Mbit/s, shared by all connections (default: none).")
    var downMbit: Double?

    @Flag(name: .long, help: "Do not charge a round trip for each new connection.")
    var noHandshake = false

    @Option(name: .long, help: "Most KiB one connection holds per direction before the proxy stops reading from it (default: from the link).")
    var bufferKib: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    func validate() throws {
        guard (0...65535).contains(listen) else { throw ValidationError("--listen must be between 0 and 65535.") }
        guard parsedTarget != nil else { throw ValidationError("--target must be HOST:PORT, e.g. 127.0.0.1:8080.") }
        for (name, value) in [("--delay-ms", delayMs), ("--up-delay-ms", upDelayMs ?? 0), ("--down-delay-ms", downDelayMs ?? 0)] {
            guard value >= 0, value < 60_000 else { throw ValidationError("\(name) must be between 0 and 60000.") }
        }
        for (name, value) in [("--up-mbit", upMbit), ("--down-mbit", downMbit)] {
            if let value, !(value > 0) { throw ValidationError("\(name) must be positive.") }
        }
        if let bufferKib, bufferKib < 1 { throw ValidationError("--buffer-kib must be positive.") }
        guard Logger.Level(rawValue: logLevel.lowercased()) != nil else {
            throw ValidationError("Unknown log level '\(logLevel)'; use trace, debug, info, notice, warning, error or critical.")
        }
    }

    var parsedTarget: (host: String, port: Int)? {
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]),
            (1...65535).contains(port), colon != target.startIndex
        else { return nil }
        return (String(target[..<colon]), port)
    }

    var link: LinkProfile {
        func direction(delayMs: Double, mbit: Double?) -> LinkProfile.Direction {
            let delay = Duration.microseconds(Int64((delayMs * 1000).rounded()))
            return mbit.map { .megabits($0, delay: delay) } ?? LinkProfile.Direction(delay: delay)
        }
        return LinkProfile(
            upstream: direction(delayMs: upDelayMs ?? delayMs, mbit: upMbit),
            downstream: direction(delayMs: downDelayMs ?? delayMs, mbit: downMbit),
            handshake: !noHandshake,
            bufferLimit: bufferKib.map { $0 * 1024 })
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "mediafs-faultproxy")
        logger.logLevel = level
        let (host, port) = parsedTarget!
        let signals = Self.signals([SIGINT, SIGTERM])
        let proxy = try await FaultProxy.start(
            targetHost: host, targetPort: port, port: listen, link: link, listenHost: listenHost, logger: logger)
        print(proxy.port)
        fflush(nil)
        Self.standardError("mediafs-faultproxy: \(listenHost):\(proxy.port) → \(host):\(port), \(Self.describe(link))")
        for await _ in signals.stream { break }
        let statistics = try await proxy.statistics()
        try await proxy.stop()
        signals.sources.forEach { $0.cancel() }
        Self.standardError(
            "mediafs-faultproxy: \(statistics.connectionsForwarded) connections, "
                + "\(statistics.bytesUpstream) bytes up, \(statistics.bytesDownstream) bytes down, "
                + "peak buffered \(statistics.peakBufferedBytes) bytes")
    }

    static func describe(_ link: LinkProfile) -> String {
        func direction(_ direction: LinkProfile.Direction) -> String {
            let milliseconds = direction.delay.components.seconds * 1000
                + direction.delay.components.attoseconds / 1_000_000_000_000_000
            let cap = direction.bitsPerSecond.map { "\(Double($0) / 1_000_000) Mbit/s" } ?? "no cap"
            return "\(milliseconds) ms, \(cap)"
        }
        return "up \(direction(link.upstream)); down \(direction(link.downstream))"
            + (link.handshake ? "; one round trip per new connection" : "")
    }

    static func standardError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// The signals as a stream (their default action is turned off).
    static func signals(_ numbers: [Int32]) -> (stream: AsyncStream<Int32>, sources: [any DispatchSourceSignal]) {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        let sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        return (stream, sources)
    }
}
