import FaultInjection
import Foundation
import MediaFS
import MediaServerTesting
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The read path the bridge drives, called as the bridge calls it: parallel 1 MiB reads arriving
/// out of order (the kernel's read-ahead), the answer-at-once path, and cancellation.
@Suite("Read path: parallel, out of order, answered at once, cancelled", .serialized)
struct ReadPathTests {
    static func bytes(_ buffers: [ByteBuffer]) -> Data {
        var data = Data()
        for buffer in buffers { data.append(contentsOf: buffer.readableBytesView) }
        return data
    }

    @Test("20 parallel 1 MiB reads in shuffled order, then random small ones: every byte right")
    func parallelOutOfOrder() async throws {
        try await BridgeMount.with { mount in
            let data = Data.random(20 << 20 + 12_345)
            try await mount.upload("big.bin", data)
            let fs = mount.filesystem
            let inode = try await fs.lookup(parent: 1, name: "big.bin").attributes.inode
            let handle = try await fs.open(inode, flags: O_RDONLY)
            let offsets = Array(stride(from: 0, to: data.count, by: 1 << 20)).shuffled()
            try await withThrowingTaskGroup(of: (Int, Data).self) { group in
                for offset in offsets {
                    group.addTask { (offset, Self.bytes(try await fs.readBuffers(handle: handle, offset: Int64(offset), size: 1 << 20))) }
                }
                for try await (offset, bytes) in group {
                    #expect(bytes == data[offset..<min(data.count, offset + (1 << 20))], "at \(offset)")
                }
            }
            for _ in 0..<20 {
                let offset = Int.random(in: 0..<data.count)
                let size = Int.random(in: 1...300_000)
                let bytes = Self.bytes(try await fs.readBuffers(handle: handle, offset: Int64(offset), size: size))
                #expect(bytes == data[offset..<min(data.count, offset + size)], "at \(offset)+\(size)")
            }
            #expect(try await fs.readBuffers(handle: handle, offset: Int64(data.count), size: 10).isEmpty)
            await fs.release(handle: handle)
        }
    }

    @Test("sequential reads are answered at once from read-ahead; the first read of a window is not")
    func answeredAtOnce() async throws {
        try await BridgeMount.with { mount in
            let data = Data.random(6 << 20)
            try await mount.upload("seq.bin", data)
            let fs = mount.filesystem
            let inode = try await fs.lookup(parent: 1, name: "seq.bin").attributes.inode
            let handle = try await fs.open(inode, flags: O_RDONLY)
            // Nothing fetched yet: the first read must wait, but starts the fetch.
            #expect(fs.readNow(handle: handle, offset: 0, size: 1 << 20) == nil)
            #expect(Self.bytes(try await fs.readBuffers(handle: handle, offset: 0, size: 1 << 20)) == data[0..<(1 << 20)])
            // The next MiB was fetched ahead: once it arrived, its read is answered at once.
            var second: [ByteBuffer]?
            try await Programs.waitFor("read-ahead of the second MiB") {
                second = fs.readNow(handle: handle, offset: 1 << 20, size: 1 << 20)
                return second != nil
            }
            #expect(Self.bytes(second ?? []) == data[(1 << 20)..<(2 << 20)])
            var offset = 2 << 20
            var immediate = 0
            while offset < data.count {
                let expected = data[offset..<min(data.count, offset + (1 << 20))]
                if let buffers = fs.readNow(handle: handle, offset: Int64(offset), size: 1 << 20) {
                    #expect(Self.bytes(buffers) == expected)
                    immediate += 1
                } else {
                    #expect(Self.bytes(try await fs.readBuffers(handle: handle, offset: Int64(offset), size: 1 << 20)) == expected)
                }
                offset += 1 << 20
            }
            #expect(immediate >= 1, "no read was answered at once")
            await fs.release(handle: handle)
        }
    }

    @Test("cancelling a read that waits for the network ends it at once with EINTR")
    func cancelledRead() async throws {
        try await BridgeMount.with(behindProxy: true, retry: BridgeTests.patientRetry) { mount in
            let proxy = try #require(mount.proxy)
            try await mount.upload("slow.bin", Data.random(1 << 20))
            let fs = mount.filesystem
            let inode = try await fs.lookup(parent: 1, name: "slow.bin").attributes.inode
            let handle = try await fs.open(inode, flags: O_RDONLY)
            try await proxy.beginOutage(.closeImmediately)
            let read = Task { try await fs.readBuffers(handle: handle, offset: 0, size: 4096) }
            try await BridgeTests.waitForRejection(proxy, after: 0)
            let started = ContinuousClock.now
            read.cancel()
            do {
                _ = try await read.value
                Issue.record("a cancelled read must throw")
            } catch let error as FilesystemError {
                #expect(error.errno == EINTR, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            try await proxy.endOutage()
            // The handle still reads once the server is back.
            #expect(try await fs.readBuffers(handle: handle, offset: 0, size: 4096).reduce(0) { $0 + $1.readableBytes } == 4096)
            await fs.release(handle: handle)
        }
    }
}
