import FaultInjection
import Foundation
import Logging
import NIOCore
import Testing

/// The fault proxy's link emulation against real loopback servers: delay, caps shared by all
/// connections, pipelining, order and integrity, bounded buffering; and its faults through it.
/// Times are measured around transfers; tolerances are generous (a shared 2-core machine, with
/// other suites in parallel): rates must stay under the cap and above half of it (stop-and-wait,
/// one 64 KiB buffer per 40 ms round trip, would reach an eighth of it or less); delays are
/// checked against the same exchange without the proxy.
@Suite("Fault proxy link emulation", .serialized)
struct LinkEmulationTests {
    static let mebibyte = 1024 * 1024
    /// RTT 40 ms, 100 Mbit/s up, 200 Mbit/s down: the benchmarks' wide-area link.
    static let wideArea = LinkProfile.wideArea(roundTrip: .milliseconds(40), upMegabits: 100, downMegabits: 200)
    let logger = testLogger("LinkEmulationTests")

    func withProxy<T>(
        in mode: PeerServer.Mode,
        link: LinkProfile,
        _ body: (PeerServer, FaultProxy) async throws -> T
    ) async throws -> T {
        let server = try await PeerServer.start(mode)
        let proxy: FaultProxy
        do {
            proxy = try await FaultProxy.start(targetPort: server.port, link: link, logger: logger)
        } catch {
            await server.stop()
            throw error
        }
        do {
            let result = try await body(server, proxy)
            try await proxy.stop()
            await server.stop()
            return result
        } catch {
            try? await proxy.stop()
            await server.stop()
            throw error
        }
    }

    /// Sends `payload` on a new connection, half-closes (unless told not to), and waits until
    /// the server closes.
    func send(_ payload: ByteBuffer, port: Int, halfClose: Bool = true) async throws {
        let connection = try await connectPeer(port: port)
        try await connection.executeThenClose { inbound, outbound in
            var remaining = payload
            while let slice = remaining.readSlice(length: min(64 * 1024, remaining.readableBytes)), slice.readableBytes > 0 {
                try await outbound.write(slice)
            }
            if halfClose { outbound.finish() }
            for try await _ in inbound {}
        }
    }

    func nextReport(_ server: PeerServer) async -> PeerServer.Report? {
        var iterator = server.reports.makeAsyncIterator()
        return await iterator.next()
    }

    // MARK: Delay

    /// Opens a connection to an echo server on `port` and measures: the first exchange (from
    /// before connecting until its echo) and `count` round trips of one byte after it.
    func exchanges(port: Int, count: Int = 6) async throws -> (first: Duration, pings: [Duration]) {
        let started = ContinuousClock.now
        let connection = try await connectPeer(port: port)
        return try await connection.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(bytes: [255]))
            _ = try await iterator.next()
            let first = ContinuousClock.now - started
            var pings: [Duration] = []
            for index in 0..<count {
                let sent = ContinuousClock.now
                try await outbound.write(ByteBuffer(bytes: [UInt8(index)]))
                let echoed = try await iterator.next()
                pings.append(ContinuousClock.now - sent)
                #expect(echoed?.readableBytesView.first == UInt8(index))
            }
            return (first, pings)
        }
    }

    func median(_ values: [Duration]) -> Duration {
        values.sorted()[values.count / 2]
    }

    @Test func roundTripsTakeTheSetDelayAndANewConnectionOneMore() async throws {
        try await withProxy(in: .echo, link: Self.wideArea) { server, proxy in
            // What the machine itself adds (a loaded machine adds to both alike).
            let direct = try await exchanges(port: server.port)
            var firsts: [Duration] = []
            var pings: [Duration] = []
            for _ in 0..<3 {
                // A new connection: the handshake (one round trip), then the byte and its echo (another).
                let measured = try await exchanges(port: proxy.port)
                firsts.append(measured.first)
                pings += measured.pings
            }
            logger.info("round trips", metadata: ["firsts": "\(firsts)", "pings": "\(pings)", "direct": "\(direct.pings)"])
            for first in firsts {
                #expect(first >= .milliseconds(79))
            }
            for ping in pings {
                #expect(ping >= .milliseconds(39))
            }
            let baseline = median(direct.pings)
            // Upper bounds on the fastest of each (a loaded machine only adds time: the whole suite
            // runs in parallel on two cores), with room; the lower bounds above are the delay itself.
            #expect(firsts.min()! - direct.first < .milliseconds(80 + 400))
            #expect(pings.min()! - baseline < .milliseconds(40 + 200))
        }
    }

    @Test func withoutALinkBytesPassAtOnce() async throws {
        try await withProxy(in: .echo, link: .unlimited) { server, proxy in
            // The fastest of many each, over up to five rounds: a loaded machine only adds time
            // (runs of the whole suite on two cores measured 26 and 35 ms more through the proxy
            // as the fastest of one round), while a delay the proxy added would be in every
            // round. Well under the 40 ms a wide-area link would add.
            var added: Duration = .seconds(3600)
            for _ in 0..<5 where added >= .milliseconds(30) {
                let direct = try await exchanges(port: server.port, count: 20)
                let proxied = try await exchanges(port: proxy.port, count: 20)
                added = min(added, proxied.pings.min()! - direct.pings.min()!)
            }
            #expect(added < .milliseconds(30))
        }
    }

    // MARK: Caps, pipelining, integrity

    @Test func uploadsRunAtTheUpstreamCapAcrossTheDelay() async throws {
        // 8 MiB through 100 Mbit/s with 20 ms each way: stop-and-wait with 64 KiB per round trip
        // would manage about 1.6 MB/s; a delay line keeps the cap.
        let payload = randomPayload(count: 8 * Self.mebibyte, seed: 1)
        try await withProxy(in: .sink, link: Self.wideArea) { server, proxy in
            let sent = ContinuousClock.now
            try await send(payload, port: proxy.port)
            let report = try #require(await nextReport(server))
            #expect(!report.failed)
            #expect(report.bytes == payload.readableBytes)
            #expect(report.digest == sha256(payload))
            let seconds = try #require(report.lastByte.flatMap { last in report.firstByte.map { (last - $0).seconds } })
            let rate = Double(report.bytes) / seconds
            logger.info("upstream", metadata: ["MB/s": "\(rate / 1e6)"])
            // Below the cap on a loaded machine (the proxy shares two cores with the whole suite),
            // but far above stop-and-wait (64 KiB per round trip: 1.6 MB/s).
            #expect(rate > 0.3 * 12.5e6)
            // Measured from before the send: a loaded machine can note a first byte late, never early.
            let last = try #require(report.lastByte)
            #expect(Double(report.bytes) / (last - sent).seconds < 1.1 * 12.5e6)
            let statistics = try await proxy.statistics()
            #expect(statistics.bytesUpstream == Int64(payload.readableBytes))
        }
    }

    @Test func downloadsRunAtTheDownstreamCap() async throws {
        let payload = randomPayload(count: 16 * Self.mebibyte, seed: 2)
        try await withProxy(in: .source(payload: payload), link: Self.wideArea) { _, proxy in
            let connection = try await connectPeer(port: proxy.port)
            let asked = ContinuousClock.now
            let (received, first, last) = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(bytes: Array("GET".utf8)))
                var received = ByteBuffer()
                var first: ContinuousClock.Instant?
                var last = ContinuousClock.now
                for try await var buffer in inbound {
                    last = ContinuousClock.now
                    if first == nil { first = last }
                    received.writeBuffer(&buffer)
                    if received.readableBytes >= payload.readableBytes { break }
                }
                return (received, first, last)
            }
            #expect(received == payload)
            let seconds = try #require(first.map { (last - $0).seconds })
            let rate = Double(received.readableBytes) / seconds
            logger.info("downstream", metadata: ["MB/s": "\(rate / 1e6)"])
            // Below the cap on a loaded machine, far above stop-and-wait (1.6 MB/s).
            #expect(rate > 0.2 * 25e6)
            // Measured from the request: a loaded machine can note a first byte late, never early.
            #expect(Double(received.readableBytes) / (last - asked).seconds < 1.1 * 25e6)
        }
    }

    @Test func connectionsShareTheCapFairly() async throws {
        let payloads = (0..<4).map { randomPayload(count: 2 * Self.mebibyte, seed: 10 + UInt64($0)) }
        try await withProxy(in: .sink, link: Self.wideArea) { server, proxy in
            let sent = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for payload in payloads {
                    group.addTask { try await send(payload, port: proxy.port) }
                }
                try await group.waitForAll()
            }
            var reports: [PeerServer.Report] = []
            for await report in server.reports {
                reports.append(report)
                if reports.count == payloads.count { break }
            }
            #expect(Set(reports.map(\.digest)) == Set(payloads.map(sha256)))
            let firsts = reports.compactMap(\.firstByte)
            let lasts = reports.compactMap(\.lastByte)
            let start = try #require(firsts.min())
            let end = try #require(lasts.max())
            let span = (end - start).seconds
            let rate = Double(payloads.count * 2 * Self.mebibyte) / span
            logger.info("shared upstream", metadata: ["MB/s": "\(rate / 1e6)"])
            // One cap for all (four separate caps would give four times the rate). Below the cap
            // on a loaded machine (the proxy shares two cores with the whole suite), but far above
            // stop-and-wait (64 KiB per round trip: 1.6 MB/s). Above it measured from before the
            // first send: a loaded machine can note a first byte late, never early.
            #expect(rate > 0.3 * 12.5e6)
            #expect(Double(payloads.count * 2 * Self.mebibyte) / (end - sent).seconds < 1.1 * 12.5e6)
            // In turn: every connection is still sending near the end.
            let earliestEnd = try #require(lasts.min())
            #expect((earliestEnd - start).seconds > 0.5 * span)
        }
    }

    // MARK: Back-pressure

    @Test func aFastSenderIsHeldBackAtTheBufferLimit() async throws {
        // The client writes as fast as loopback goes; the link takes 12.5 MB/s. Without
        // back-pressure the proxy would hold most of the 12 MiB. (The client does not half-close:
        // at an end of stream NIO reads whatever the socket still holds.)
        var link = Self.wideArea
        link.bufferLimit = 512 * 1024
        let payload = randomPayload(count: 12 * Self.mebibyte, seed: 3)
        try await withProxy(in: .sinkUntil(bytes: payload.readableBytes), link: link) { server, proxy in
            try await send(payload, port: proxy.port, halfClose: false)
            let report = try #require(await nextReport(server))
            #expect(report.digest == sha256(payload))
            let statistics = try await proxy.statistics()
            logger.info("buffered", metadata: ["peak": "\(statistics.peakBufferedBytes)"])
            // The limit, plus one burst of reads (4 × 64 KiB) and the receiver's write buffer.
            #expect(statistics.peakBufferedBytes <= 512 * 1024 + 512 * 1024)
            #expect(statistics.peakBufferedBytes >= 256 * 1024)
            #expect(statistics.bufferedBytes == 0)
        }
    }

    // MARK: Faults through the link

    @Test func cutsAndOutagesStillApplyThroughTheLink() async throws {
        let payload = randomPayload(count: Self.mebibyte, seed: 4)
        try await withProxy(in: .sink, link: Self.wideArea) { server, proxy in
            // A cut after exactly 100 000 bytes: they arrive (after the delay), then the connection closes.
            try await proxy.setCutPolicy(CutPolicy(trigger: nil, bytesAfterTrigger: 100_000...100_000, maximumCuts: 1))
            do {
                try await send(payload, port: proxy.port)
            } catch {
                // The client may see the cut as a failed write or a reset.
            }
            let report = try #require(await nextReport(server))
            #expect(report.bytes == 100_000)
            #expect(report.digest == sha256(payload.getSlice(at: 0, length: 100_000)!))
            #expect(try await proxy.statistics().cuts == 1)
            try await proxy.setCutPolicy(nil)

            try await proxy.beginOutage(.refuse)
            await #expect(throws: (any Error).self) { try await connectPeer(port: proxy.port) }
            try await proxy.endOutage()
            try await send(payload, port: proxy.port)
            let whole = try #require(await nextReport(server))
            #expect(whole.digest == sha256(payload))
        }
    }
}

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
