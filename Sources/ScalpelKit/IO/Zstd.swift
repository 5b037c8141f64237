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
    /// without decompressing the data).
    public static func decompressPrefix(_ input: UnsafeRawBufferPointer, limit: Int, path: String) throws -> [UInt8] {
        var result: [UInt8] = []
        try decompress(input, path: path) { chunk in
            let take = min(chunk.count, limit - result.count)
            result.append(contentsOf: chunk[0..<take])
            return result.count < limit
        }
        return result
    }

    /// Decompresses all of `input` into a new unlinked temporary file and maps it.
    public static func decompressToMappedFile(_ input: UnsafeRawBufferPointer, path: String) throws -> MappedFile {
        let tmpDir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let out = try OutputFile(path: tmpDir + "/scalpel-zstd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try decompress(input, path: path) { chunk in
            try out.write(chunk)
            return true
        }
        try out.commit()
        defer { unlink(out.path) }
        return try MappedFile(path: out.path)
    }

    /// Streams the decompressed bytes to `sink` until it returns false or the input ends.
    private static func decompress(_ input: UnsafeRawBufferPointer, path: String,
                                   sink: (UnsafeRawBufferPointer) throws -> Bool) throws {
        guard let d = ZSTD_createDCtx() else { throw ScalpelError.io(file: path, reason: "zstd: out of memory") }
        defer { ZSTD_freeDCtx(d) }
        var out = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var lastResult = 0
        while true {
            let (r, produced): (Int, Int) = try out.withUnsafeMutableBytes { o in
                var outBuf = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                let r = ZSTD_decompressStream(d, &outBuf, &inBuf)
                if ZSTD_isError(r) != 0 {
                    throw ScalpelError.malformed(file: path, tensor: nil, reason: "zstd: \(String(cString: ZSTD_getErrorName(r)))")
                }
                return (r, outBuf.pos)
            }
            lastResult = r
            if produced > 0 {
                let keepGoing = try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
                if !keepGoing { return }
            }
            if inBuf.pos == inBuf.size && produced < out.count { break }
        }
        if lastResult != 0 {
            throw ScalpelError.malformed(file: path, tensor: nil, reason: "zstd stream is truncated")
        }
    }
}
