#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#else
// ScalpelKit reads checkpoints through mmap(2) and writes outputs atomically with mkstemp(3), mkdtemp(3)
// and rename(2) (Sources/ScalpelKit/IO). Say so here, once, instead of a screen of "cannot find 'mmap'".
#error("ScalpelKit needs a POSIX C library (Glibc or Musl on Linux, Darwin on macOS) for mmap, madvise, mkstemp, mkdtemp and write; this platform has none")
#endif

/// The C library calls ScalpelKit's file I/O makes, in one place. The I/O files (`MappedFile`,
/// `OutputFile`, `TemporaryFolder`) use POSIX calls that exist on Linux (Glibc, Musl) and macOS
/// (Darwin); anything Glibc-specific is behind `#if canImport(Glibc)` here, and other platforms stop
/// at compile time with the message above.
enum Platform {
    /// write(2): writes up to `count` bytes of `bytes` to `fd`; the number written, or -1 with `errno` set.
    static func write(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, bytes, count)
        #elseif canImport(Musl)
        return Musl.write(fd, bytes, count)
        #else
        return Darwin.write(fd, bytes, count)
        #endif
    }

    /// The size of a memory page in bytes (`sysconf(_SC_PAGESIZE)`).
    static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))
}
