import CScalpelKernels
import CZstd
import Foundation

/// A zstd streaming compressor producing one frame.
final class ZstdCompressor {
    private let ctx: OpaquePointer
    private var out = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
    private let path: String

    init(level: Int, path: String) throws {
        guard let c = ZSTD_createCCtx() else { throw ScalpelError.io(file: path, reason: "zstd: out of memory") }
        ctx = c
        self.path = path
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, Int32(level))
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1)
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_nbWorkers, 2)
    }

    deinit { ZSTD_freeCCtx(ctx) }

    /// Compresses `input`, handing each piece of output to `sink`; `last` ends the frame.
    func compress(_ input: UnsafeRawBufferPointer, last: Bool, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        let mode = last ? ZSTD_e_end : ZSTD_e_continue
        while true {
            let (remaining, produced): (Int, Int) = try out.withUnsafeMutableBytes { o in
                var outBuf = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                let r = ZSTD_compressStream2(ctx, &outBuf, &inBuf, mode)
                if ZSTD_isError(r) != 0 {
                    throw ScalpelError.io(file: path, reason: "zstd: \(String(cString: ZSTD_getErrorName(r)))")
                }
                return (r, outBuf.pos)
            }
            if produced > 0 { try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            if last ? remaining == 0 : inBuf.pos == inBuf.size { break }
        }
    }
}

/// zstd decompression of whole files or of their first bytes.
public enum Zstd {
    /// True when `bytes` starts with the zstd frame magic (28 B5 2F FD).
    public static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x28 && bytes[1] == 0xB5 && bytes[2] == 0x2F && bytes[3] == 0xFD
    }

    /// Decompresses at most `limit` bytes from the start of `input` (stops early; used to read headers
    /// without decompressing the data). Memory: `limit` bytes at most.
    public static func decompressPrefix(_ input: UnsafeRawBufferPointer, limit: Int, path: String) throws -> [UInt8] {
        var result: [UInt8] = []
        try decompress(input, path: path) { chunk in
            let take = min(chunk.count, limit - result.count)
            result.append(contentsOf: chunk[0..<take])
            return result.count < limit
        }
        return result
    }

    /// How many bytes `input` decompresses to, counting at most up to `limit` (returns `limit` when there
    /// are at least that many). Decompresses into a small reused buffer: costs time, not memory or disk.
    public static func decompressedLength(_ input: UnsafeRawBufferPointer, upTo limit: Int, path: String) throws -> Int {
        var total = 0
        try decompress(input, path: path) { chunk in
            total += chunk.count
            return total < limit
        }
        return min(total, limit)
    }

    /// Decompresses all of `input` into an unlinked temporary file under TMPDIR and maps it. The file has
    /// no name from the moment it is created, so nothing is left behind however the run ends.
    /// - Parameter expectedLength: the length the header promises; decompression stops with an error as
    ///   soon as the content runs longer (a decompression bomb never fills the disk).
    public static func decompressToMappedFile(_ input: UnsafeRawBufferPointer, path: String, expectedLength: Int? = nil) throws -> MappedFile {
        let tmpDir = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((tmpDir + "/scalpel-zstd-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { scalpel_temp_create_anonymous(tmpDir, $0.baseAddress!) }
        guard fd >= 0 else {
            throw ScalpelError.io(file: path, reason: "cannot create a temporary file in \(tmpDir) to decompress into: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 22)
        var written = 0
        func flush() throws {
            var done = 0
            while done < buffer.count {
                let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ScalpelError.io(file: path, reason: "cannot decompress into \(tmpDir): \(String(cString: strerror(errno)))")
                }
                done += n
            }
            buffer.removeAll(keepingCapacity: true)
        }
        try decompress(input, path: path) { chunk in
            written += chunk.count
            if let expectedLength, written > expectedLength {
                throw ScalpelError.malformed(file: path, tensor: nil, reason: "the decompressed content is longer than the \(expectedLength) bytes its header describes")
            }
            buffer.append(contentsOf: chunk)
            if buffer.count >= 1 << 22 { try flush() }
            return true
        }
        try flush()
        return try MappedFile(descriptor: fd, displayPath: path)
    }

    /// Streams the decompressed bytes to `sink` until it returns false or the input ends. The input may
    /// hold several frames; it must end at the end of a frame.
    private static func decompress(_ input: UnsafeRawBufferPointer, path: String,
                                   sink: (UnsafeRawBufferPointer) throws -> Bool) throws {
        guard let d = ZSTD_createDCtx() else { throw ScalpelError.io(file: path, reason: "zstd: out of memory") }
        defer { ZSTD_freeDCtx(d) }
        // At most 128 MiB of window (zstd --long=27): a frame asking for more is refused, not allocated.
        ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 27)
        var out = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            let (r, produced): (Int, Int) = try out.withUnsafeMutableBytes { o in
                var outBuf = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                let r = ZSTD_decompressStream(d, &outBuf, &inBuf)
                if ZSTD_isError(r) != 0 {
                    throw ScalpelError.malformed(file: path, tensor: nil, reason: "zstd: \(String(cString: ZSTD_getErrorName(r)))")
                }
                return (r, outBuf.pos)
            }
            if produced > 0 {
                let keepGoing = try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
                if !keepGoing { return }
            }
            // r == 0: a frame is completely decoded and flushed. Done when no input is left (another
            // frame may follow otherwise).
            if r == 0 && inBuf.pos == inBuf.size { return }
            // Input used up, output buffer not filled: zstd has nothing more to give. The frame is cut.
            if inBuf.pos == inBuf.size && produced < out.count {
                throw ScalpelError.malformed(file: path, tensor: nil, reason: "zstd stream is truncated")
            }
        }
    }
}
