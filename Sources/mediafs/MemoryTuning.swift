#if canImport(Glibc)
import Glibc
#endif

/// glibc's allocator defaults suit short-lived programs: one arena per thread (up to 8 per core)
/// and a mmap threshold that grows after large frees, so multi-megabyte chunk buffers end up in
/// arenas that are never given back. For a long-running process that moves data in big buffers
/// through many threads, that keeps the resident size far above what is in use. Limit the arenas
/// and serve big buffers with mmap, so that they go back to the system when freed.
///
/// The trim threshold is how much free heap glibc keeps before it gives pages back. A higher one
/// saves the page faults of socket buffers freed and allocated again, but keeps that much free
/// heap resident. `upload` keeps 1 MiB, the server 4 MiB, the mount 16 MiB.
enum MemoryTuning {
    /// The mount's trim threshold: 16 MiB. Measured on a 1 GiB read, the mount's CPU drops from
    /// 1.08 s (1 MiB) to 0.88 s, and its peak stays within the 64 MiB target with one writer or
    /// sixteen.
    static let mountTrimThreshold: Int32 = 16 << 20

    /// The server's limits: 4 MiB of free heap kept, and buffers up to 4 MiB from the heap (it
    /// reads content in 256 KiB chunks). Serving a 1 GiB file, 3 runs each, its CPU went from
    /// 1.79 s (1 MiB kept, 128 KiB chunks) to 1.62 s for the mount's range reads, and from 1.43 to
    /// 1.19 s for one GET: fewer page faults and zeroed pages for buffers given back and allocated
    /// again. Keeping 16 MiB with 512 KiB chunks saved more (1.45 and 1.02 s) but raised its peak
    /// with one writer from 58 to 75 MiB, over its 64 MiB target.
    static let serverTrimThreshold: Int32 = 4 << 20
    static let serverMmapThreshold: Int32 = 4 << 20

    // From glibc's <malloc.h>, which the Glibc module does not import.
    private static let trimThreshold: Int32 = -1
    private static let mmapThreshold: Int32 = -3
    private static let arenaMax: Int32 = -8

    /// Hands free heap pages back to the system (glibc keeps freed small blocks otherwise).
    static func release() {
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// Sets the allocator's limits for this process, in bytes: the free heap kept, and the size
    /// from which a buffer is mapped on its own (and unmapped when freed).
    static func apply(trimThreshold threshold: Int32 = 1 << 20, mmapThreshold mapped: Int32 = 256 << 10) {
        #if os(Linux)
        _ = glibcMallopt(arenaMax, 2)
        _ = glibcMallopt(mmapThreshold, mapped)
        _ = glibcMallopt(trimThreshold, threshold)
        #endif
    }
}

#if os(Linux)
/// glibc's `int mallopt(int param, int value)`.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

/// glibc's `int malloc_trim(size_t pad)`.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
