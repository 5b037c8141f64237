import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file being written: bytes go to a temporary file in the destination folder, which `commit()`
/// renames into place. Dropping the object without committing deletes the temporary file, so a failed
/// run leaves no partial output.
///
/// When `zstdLevel` is set, everything written is compressed as one zstd frame.
public final class OutputFile {
    /// The final path.
    public let path: String
    /// The temporary path being written.
    public let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 22
    private var zstd: ZstdCompressor?
    private var committed = false

    /// Creates the temporary file for `path`.
    /// - Parameter zstdLevel: compress with this zstd level (1...19), or nil for no compression.
    public init(path: String, zstdLevel: Int? = nil) throws {
        self.path = path
        let dir = PathName.folder(path)
        let base = PathName.file(path)
        var template = Array((dir + "/.\(base).tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw ScalpelError.io(file: path, reason: "cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        self.temporaryPath = String(cString: template.map { UInt8(bitPattern: $0) } + [0])
        if let zstdLevel { zstd = try ZstdCompressor(level: zstdLevel, path: path) }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed { unlink(temporaryPath) }
    }

    /// Appends bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if let zstd {
            try zstd.compress(bytes, last: false) { try self.writeRaw($0) }
        } else {
            try writeRaw(bytes)
        }
    }

    /// Appends bytes.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends `count` zero bytes.
    public func writeZeros(_ count: Int) throws {
        if count > 0 { try write([UInt8](repeating: 0, count: count)) }
    }

    private func writeRaw(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count >= bufferLimit {
            try flush()
            try writeFully(bytes)
            return
        }
        buffer.append(contentsOf: bytes)
        if buffer.count >= bufferLimit { try flush() }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeFully($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Platform.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw ScalpelError.io(file: path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Finishes the file (zstd frame end, flush, close) and renames it to `path`. The rename is atomic:
    /// other processes see either no file or the whole file (no fsync: a power cut may lose it).
    public func commit() throws {
        if let zstd {
            try zstd.compress(UnsafeRawBufferPointer(start: nil, count: 0), last: true) { try self.writeRaw($0) }
        }
        try flush()
        fchmod(fd, 0o644)
        guard close(fd) == 0 else {
            fd = -1
            throw ScalpelError.io(file: path, reason: "close failed: \(String(cString: strerror(errno)))")
        }
        fd = -1
        guard rename(temporaryPath, path) == 0 else {
            throw ScalpelError.io(file: path, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
        }
        committed = true
    }
}
