import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file being written: bytes go to a temporary file in the destination folder, which `commit()`
/// renames into place. Dropping the object without committing deletes the temporary file, so a failed
/// run leaves no partial output; SIGINT and SIGTERM delete it too (see `Temporaries`).
///
/// When `zstdLevel` is set, everything written is compressed as one zstd frame.
public final class OutputFile {
    /// The final path.
    public let path: String
    /// The temporary path being written.
    public let temporaryPath: String
    /// The final path as the user knows it (inside the final folder when `path` is in a temporary
    /// output folder); errors name it.
    private let displayPath: String
    private var fd: Int32
    private let slot: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 22
    private var zstd: ZstdCompressor?
    private var committed = false

    /// Creates the temporary file for `path`.
    /// - Parameter zstdLevel: compress with this zstd level (1...19), or nil for no compression.
    public init(path: String, zstdLevel: Int? = nil) throws {
        self.path = path
        displayPath = Temporaries.displayPath(path)
        (temporaryPath, fd, slot) = try Temporaries.createFile(for: path)
        if let zstdLevel { zstd = try ZstdCompressor(level: zstdLevel, path: displayPath) }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed {
            unlink(temporaryPath)
            Temporaries.forget(slot: slot)
        }
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
                let e = errno
                if e == EINTR { continue }
                // EFAULT: the source bytes are a mapped input that shrank under us; blame the input.
                if e == EFAULT, let input = MappedFile.mappedInput(holding: bytes.baseAddress! + done) {
                    throw ScalpelError.io(file: input, reason: MappedFile.changedWhileRead)
                }
                throw ScalpelError.io(file: displayPath, reason: "write failed: \(String(cString: strerror(e)))")
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
            throw ScalpelError.io(file: displayPath, reason: "close failed: \(String(cString: strerror(errno)))")
        }
        fd = -1
        let e = Temporaries.commit(slot: slot, from: temporaryPath, to: path)
        guard e == 0 else {
            throw ScalpelError.io(file: displayPath, reason: "cannot rename into place: \(String(cString: strerror(e)))")
        }
        committed = true
    }
}
