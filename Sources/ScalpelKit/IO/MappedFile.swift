import CScalpelKernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file, unmapped when the last reference goes away.
///
/// Pages are read on demand by the kernel: mapping a 4 GB file costs nothing until its bytes are touched.
/// The file is opened without blocking (a FIFO or device is refused, never waited on), and its range is
/// registered for SIGBUS reporting: if
/// another process truncates the file while it is read, the run stops with one line naming the file.
/// `@unchecked Sendable`: immutable after `init`, and the mapping is read-only.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened with.
    public let path: String
    /// The mapped bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer
    private var mappingSlot: Int32 = -1
    /// True when `bytes` is an allocated copy (tests, fuzzing), freed instead of unmapped.
    private var owned = false

    /// Maps `path` read-only.
    /// - Throws: `ScalpelError.io` when the file cannot be opened, is not a regular file, or cannot be
    ///   mapped.
    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ScalpelError.io(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ScalpelError.io(file: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ScalpelError.io(file: path, reason: "not a regular file") }
        bytes = try MappedFile.map(fd, size: Int(st.st_size), path: path)
        registerForSIGBUS(name: path)
    }

    /// Maps an open regular file (a private temporary, e.g. decompressed data); errors and a SIGBUS name
    /// `displayPath`, the user's file.
    init(descriptor fd: Int32, displayPath: String) throws {
        path = displayPath
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ScalpelError.io(file: displayPath, reason: String(cString: strerror(errno))) }
        bytes = try MappedFile.map(fd, size: Int(st.st_size), path: displayPath)
        registerForSIGBUS(name: displayPath)
    }

    /// A copy of `bytes` standing in for a mapped file named `path` (for tests and fuzz targets: no
    /// file, no registration).
    init(copying source: UnsafeRawBufferPointer, path: String) {
        self.path = path
        owned = true
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
        if let base = source.baseAddress, source.count > 0 { p.copyMemory(from: base, byteCount: source.count) }
        bytes = UnsafeRawBufferPointer(start: source.count > 0 ? p : nil, count: source.count)
        if source.count == 0 { p.deallocate() }
    }

    private static func map(_ fd: Int32, size: Int, path: String) throws -> UnsafeRawBufferPointer {
        if size == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw ScalpelError.io(file: path, reason: "cannot map: \(String(cString: strerror(errno)))")
        }
        return UnsafeRawBufferPointer(start: p, count: size)
    }

    /// What a SIGBUS or a failed write from mapped memory says.
    static let changedWhileRead = "the file changed or was truncated while being read"

    private static let namesLock = NSLock()
    nonisolated(unsafe) private static var names: [Int32: String] = [:]

    private func registerForSIGBUS(name: String) {
        guard let base = bytes.baseAddress else { return }
        let line = "scalpel: error: \(Escape.untrusted(name)): \(MappedFile.changedWhileRead)\n"
        mappingSlot = scalpel_mapping_register(base, bytes.count, line)
        if mappingSlot >= 0 {
            MappedFile.namesLock.lock(); MappedFile.names[mappingSlot] = name; MappedFile.namesLock.unlock()
        }
    }

    deinit {
        if mappingSlot >= 0 {
            MappedFile.namesLock.lock(); MappedFile.names[mappingSlot] = nil; MappedFile.namesLock.unlock()
        }
        scalpel_mapping_forget(mappingSlot)
        if owned {
            bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
        } else if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }

    /// The input file whose mapping holds `address` (used to blame a failed write from mapped memory
    /// on the input, not the output).
    static func mappedInput(holding address: UnsafeRawPointer) -> String? {
        let slot = scalpel_mapping_slot(address)
        guard slot >= 0 else { return nil }
        namesLock.lock(); defer { namesLock.unlock() }
        return names[slot]
    }

    /// Drops the pages of a range that has been consumed, so resident memory stays near one tensor.
    /// Memory this object owns (a copy, not a mapping) is left alone: dropping its pages would zero it.
    public func release(_ range: Range<Int>) {
        if !owned { advise(range, MADV_DONTNEED) }
    }

    private func advise(_ range: Range<Int>, _ advice: Int32) {
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        let page = Platform.pageSize
        let start = range.lowerBound / page * page
        let end = min(range.upperBound, bytes.count)
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, advice)
    }
}
