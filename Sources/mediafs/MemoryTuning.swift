#if canImport(Glibc)
import Glibc
#endif

/// glibc's allocator defaults suit short-lived programs: one arena per thread (up to 8 per core)
/// and a mmap threshold that grows after large frees, so multi-megabyte chunk buffers end up in
/// arenas that are never given back. For a long-running process that moves data in big buffers
/// through many threads, that keeps the resident size far above what is in use. Limit the arenas
/// and serve big buffers with mmap, so that they go back to the system when freed. The trim
/// threshold stays low (1 MiB): a higher one saves the faults of socket buffers freed and
/// allocated again (measured: a fifth of a read's CPU at 64 MiB), but keeps that much free heap
/// resident, and the mount's memory targets (64 MiB with one copy) leave no room for it.
enum MemoryTuning {
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

    static func apply() {
        #if os(Linux)
        _ = glibcMallopt(arenaMax, 2)
        _ = glibcMallopt(mmapThreshold, 256 * 1024)
        _ = glibcMallopt(trimThreshold, 1024 * 1024)
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
