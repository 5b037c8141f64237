/// ggml's reference quantizers (`quantize_row_*_ref`), bit for bit, for the 32-element block types.
///
/// Same bytes as ggml (x86-64) and gguf-py's `gguf.quants.quantize` for finite inputs. All arithmetic is
/// f32 as in the reference: `x * id` is rounded before any constant is added (no fused multiply-add); the
/// scale `d` (and Q4_1/Q5_1's minimum `m`) is stored as f16 rounded to nearest even, while the quants use
/// the unrounded f32 inverse `id = d != 0 ? 1 / d : 0`.
///
/// - Q8_0: `amax = max |x|`, `d = amax / 127`, `q = roundf(x * id)` (halves away from zero).
/// - Q4_0 / Q5_0: `max` = the first element with the largest `|x|` (+0 when all are zero),
///   `d = max / -8` (`/ -16`), `q = min(15, trunc(x * id + 8.5))` (`min(31, trunc(x * id + 16.5))`).
/// - Q4_1 / Q5_1: `min`, `max` = the first smallest and largest elements (this decides the sign of zero),
///   `d = (max - min) / 15` (`/ 31`), `q = trunc((x - min) * id + 0.5)`, clamped to 15 for Q4_1.
/// - Packing: element j in the low nibble of byte j, element j + 16 in the high nibble; for Q5 types bit 4
///   of element j is bit j of the little-endian u32 `qh`.
///
/// Where the reference converts a non-finite or out-of-range float to an integer (possible only when `id`
/// overflows to infinity, for blocks whose largest magnitude is below about 1e-37), the quant is 0, which
/// is what ggml's x86-64 code produces.
///
/// Inputs containing NaN or infinity are rejected: the reference's result is undefined for them.
public enum GGMLQuantize {
    /// The 32-element block types `quantize` produces. It also takes the K-quants, IQ4_NL and IQ4_XS of
    /// `KQuant` (without importance weights), which `KQuant.quantize` documents; merge and prune
    /// re-quantize only these.
    public static let supportedTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    /// Quantizes `src` (a whole number of 32-value blocks, in order) into `dst`, in parallel over fixed
    /// chunks of blocks.
    ///
    /// - Parameter dst: exactly `src.count / 32 * type.typeSize` bytes (any alignment).
    /// - Throws: `ScalpelError.invalid` for an unsupported type, mismatched sizes, or a non-finite input
    ///   (naming its index; `dst` is then partly written).
    public static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer) throws {
        try quantize(type, src, into: dst, blocksPerChunk: GGMLBlockChunks.blocksPerChunk)
    }

    /// Quantizes with ggml's reference quantizer and measures the round-trip error in one pass: each
    /// fixed chunk of blocks is quantized, dequantized into a small buffer and compared while it is still
    /// in cache, chunks in parallel. The bytes are those of `quantize` on the whole buffer; the error is
    /// `QuantError.measure` of `src` against `GGMLDequantize.dequantize` of them.
    /// - Throws: as `quantize`.
    public static func quantizeMeasuring(_ type: GGMLType, _ values: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer) throws -> QuantError {
        if !isKQuant(type) { _ = try checkedKernel(type, values.count, dst.count) }
        let io = UncheckedBox((values, dst))
        return try QuantError.inChunks(count: values.count / type.blockSize, chunk: 2048) { r in
            let (v, d) = io.value
            let original = UnsafeBufferPointer(rebasing: v[(r.lowerBound * type.blockSize)..<(r.upperBound * type.blockSize)])
            let bytes = UnsafeMutableRawBufferPointer(rebasing: d[(r.lowerBound * type.typeSize)..<(r.upperBound * type.typeSize)])
            try quantize(type, original, into: bytes)
            return try withUnsafeTemporaryAllocation(of: Float.self, capacity: original.count) { back in
                try GGMLDequantize.dequantize(type, UnsafeRawBufferPointer(bytes), into: back)
                return QuantError.measure(original: original, reconstructed: UnsafeBufferPointer(back))
            }
        }
    }

    /// `quantize` with a chosen chunk size (tests use small chunks).
    static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer,
                         blocksPerChunk: Int) throws {
        if isKQuant(type) {  // K-quants and IQ4, without importance weights: each (super-)block on its own
            return try KQuant.quantize(type, src, rowLength: src.count > 0 ? src.count : 256, into: dst)
        }
        let kernel = try checkedKernel(type, src.count, dst.count)
        let blocks = src.count / type.blockSize
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let finite = GGMLBlockChunks.allSatisfy(blocks: blocks, blocksPerChunk: blocksPerChunk) { kernel(UnsafeRawPointer(s), d, $0) }
        if !finite, let i = src.firstIndex(where: { !$0.isFinite }) {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "value \(src[i]) at index \(i) is not finite; \(type.name) quantization needs finite values")
        }
    }

    /// True for the types `KQuant.quantize` writes (K-quants, IQ4_NL, IQ4_XS).
    private static func isKQuant(_ type: GGMLType) -> Bool {
        KQuant.supportedTypes.contains(type) || KQuant.iq4Types.contains(type)
    }

    /// The kernel for `type`, after checking that `values` floats make whole blocks filling `bytes` bytes.
    private static func checkedKernel(_ type: GGMLType, _ values: Int, _ bytes: Int) throws -> Kernel {
        guard let kernel = kernel(for: type) else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "quantizing to \(type.name) is not supported (supported: \(supportedTypes.map(\.name).joined(separator: ", ")))")
        }
        guard values % type.blockSize == 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(values) values are not a whole number of \(type.blockSize)-value \(type.name) blocks")
        }
        let blocks = values / type.blockSize
        guard bytes == blocks * type.typeSize else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(blocks) \(type.name) blocks take \(blocks * type.typeSize) bytes, but the output has \(bytes)")
        }
        return kernel
    }

    /// Quantizes the blocks of a range; false when an input may not be finite.
    private typealias Kernel = (UnsafeRawPointer, UnsafeMutableRawPointer, Range<Int>) -> Bool

    private static func kernel(for type: GGMLType) -> Kernel? {
        switch type {
        case .q8_0: return { run(Q8_0.self, $0, $1, $2) }
        case .q4_0: return { run(Q4_0.self, $0, $1, $2) }
        case .q4_1: return { run(Q4_1.self, $0, $1, $2) }
        case .q5_0: return { run(Q5_0.self, $0, $1, $2) }
        case .q5_1: return { run(Q5_1.self, $0, $1, $2) }
        default: return nil
        }
    }

    /// Quantizes the blocks of `range` with `K`, storing the f16 fields in batches. Returns false when an
    /// input may not be finite (a running sum that overflows also says so; the caller then looks).
    private static func run<K: GGMLBlockQuantizer>(_: K.Type, _ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>) -> Bool {
        let n = GGMLBlockChunks.scaleBatch
        var sum = SIMD16<Float>()  // stays finite unless an input is NaN or infinite (or the sum overflows)
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: n) { halves in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * n) { fields in
                let h = halves.baseAddress!, f = fields.baseAddress!
                GGMLBlockChunks.batches(range) { r in
                    for (k, b) in r.enumerated() {
                        let v0 = src.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                        let v1 = src.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
                        sum += v0 + v1
                        let (d, m) = K.block(v0, v1, (src + b * 128).assumingMemoryBound(to: Float.self), dst + b * K.typeSize)
                        f[k] = d
                        f[n + k] = m
                    }
                    GGMLBlockChunks.storeHalves(f, halves: h, into: dst, typeSize: K.typeSize, fieldOffset: 0, r)
                    if K.halfFields == 2 {
                        GGMLBlockChunks.storeHalves(f + n, halves: h, into: dst, typeSize: K.typeSize, fieldOffset: 2, r)
                    }
                }
            }
        }
        return !any((sum - sum) .!= 0)  // inf - inf and NaN - NaN are NaN
    }
}

/// One block type of a ggml quantizer: its layout, and how one block of 32 floats is quantized.
protocol GGMLBlockQuantizer {
    /// Bytes per block.
    static var typeSize: Int { get }
    /// The number of f16 fields: d at byte offset 0 and, when 2, m at byte offset 2.
    static var halfFields: Int { get }
    /// Quantizes the block `x` (`v0` = elements 0..<16, `v1` = 16..<32) into `out`, all but its f16
    /// fields, whose f32 values it returns (d, m).
    static func block(_ v0: SIMD16<Float>, _ v1: SIMD16<Float>, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float)
}
