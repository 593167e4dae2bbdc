#if canImport(Glibc)
import Glibc
#endif

/// glibc's allocator defaults suit short-lived programs: one arena per thread (up to 8 per core)
/// and a mmap threshold that grows after large frees, so multi-megabyte chunk buffers end up in
/// arenas that are never given back. For a long-running process that moves data in big buffers
/// through many threads, that keeps the resident size far above what is in use. Limit the arenas
/// and serve big buffers with mmap, so that they go back to the system when freed. The trim
/// threshold is 16 MiB: at 1 MiB, the 64 KiB socket buffers a transfer frees and allocates again
/// were given back to the system and faulted in again (a fifth of the CPU of a read), while
/// 16 MiB of free heap is little next to the process's size.
enum MemoryTuning {
    // From glibc's <malloc.h>, which the Glibc module does not import.
    private static let trimThreshold: Int32 = -1
    private static let mmapThreshold: Int32 = -3
    private static let arenaMax: Int32 = -8

    static func apply() {
        #if os(Linux)
        _ = glibcMallopt(arenaMax, 2)
        _ = glibcMallopt(mmapThreshold, 256 * 1024)
        _ = glibcMallopt(trimThreshold, 16 * 1024 * 1024)
        #endif
    }
}

#if os(Linux)
/// glibc's `int mallopt(int param, int value)`.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
