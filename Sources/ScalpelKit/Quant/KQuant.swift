/// ggml's K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: super-blocks of 256 values), bit for bit.
///
/// Without importance weights the bytes are those of ggml's reference quantizers
/// (`quantize_row_q*_K_ref`, what `ggml_quantize_chunk` runs when given no `quant_weights`); with
/// per-column importance weights (an imatrix), those of the weighted path `ggml_quantize_chunk` takes
/// when given them (`quantize_row_q*_K_impl`). The per-type files (`KQuantQ2` ... `KQuantQ6`) state each
/// algorithm. All arithmetic is f32 in the reference's order, with no fused multiply-add; the searches run
/// sixteen sub-blocks side by side in SIMD lanes (`KQuantLanes`), each lane doing the scalar steps.
///
/// Work is split into fixed chunks of super-blocks, in parallel; the bytes do not depend on the number
/// of threads. Inputs or weights containing NaN or infinity are rejected.
public enum KQuant {
    /// The types `quantize` produces.
    public static let supportedTypes: [GGMLType] = [.q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    /// The non-linear 4-bit types `quantize` also produces (`KQuantIQ4`): IQ4_NL (blocks of 32) and
    /// IQ4_XS (super-blocks of 256), byte-identical to `ggml_quantize_chunk`: `--type iq4_nl`/`iq4_xs`.
    public static let iq4Types: [GGMLType] = [.iq4_nl, .iq4_xs]

    /// Super-blocks per parallel work item (64 · 256 values = 64 KiB of f32).
    static let blocksPerChunk = 64

    /// Quantizes `src`, rows of `rowLength` values (a multiple of 256; of 32 for IQ4_NL), into `dst`.
    ///
    /// - Parameters:
    ///   - importance: nil, or `rowLength` non-negative per-column weights (the imatrix entry of the
    ///     tensor); with weights the weighted path is taken, as llama.cpp does when given an imatrix.
    ///   - dst: exactly `src.count / type.blockSize * type.typeSize` bytes (any alignment).
    /// - Throws: `ScalpelError.invalid` for an unsupported type, mismatched sizes, or a non-finite value.
    public static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, rowLength: Int,
                                importance: UnsafeBufferPointer<Float>? = nil, into dst: UnsafeMutableRawBufferPointer) throws {
        try quantize(type, src, rowLength: rowLength, importance: importance, into: dst, blocksPerChunk: blocksPerChunk)
    }

    /// `quantize` with a chosen chunk size (tests use small chunks).
    static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, rowLength: Int, importance: UnsafeBufferPointer<Float>?,
                         into dst: UnsafeMutableRawBufferPointer, blocksPerChunk: Int) throws {
        guard supportedTypes.contains(type) || iq4Types.contains(type) else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(type.name) is not a K-quant type (K-quants: \((supportedTypes + iq4Types).map(\.name).joined(separator: ", ")))")
        }
        let blockSize = type.blockSize
        guard rowLength > 0, rowLength % blockSize == 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "row length \(rowLength) is not a multiple of \(blockSize), as \(type.name) needs")
        }
        guard src.count % rowLength == 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(src.count) values are not whole rows of \(rowLength)")
        }
        let blocks = src.count / blockSize
        guard dst.count == blocks * type.typeSize else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(blocks) \(type.name) blocks take \(blocks * type.typeSize) bytes, but the output has \(dst.count)")
        }
        if let importance {
            guard importance.count == rowLength else {
                throw ScalpelError.invalid(file: nil, tensor: nil, reason: "the importance weights have \(importance.count) values, but rows have \(rowLength)")
            }
            if let i = importance.firstIndex(where: { !$0.isFinite }) {
                throw ScalpelError.invalid(file: nil, tensor: nil, reason: "importance weight \(importance[i]) at column \(i) is not finite")
            }
        }
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let weights = importance?.baseAddress
        let run = kernel(type)
        let blocksPerRow = rowLength / blockSize
        // The same 64 KiB of f32 per chunk for IQ4_NL's blocks of 32.
        let chunk = blocksPerChunk * (256 / blockSize)
        let finite = GGMLBlockChunks.allSatisfy(blocks: blocks, blocksPerChunk: chunk) { r in
            guard allFinite(s + blockSize * r.lowerBound, count: blockSize * r.count) else { return false }
            run(s, d, r, weights, blocksPerRow)
            return true
        }
        if !finite, let i = src.firstIndex(where: { !$0.isFinite }) {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "value \(src[i]) at index \(i) is not finite; \(type.name) quantization needs finite values")
        }
    }

    /// The type llama.cpp writes instead of the K type `type` when a row of `rowLength` values is not a
    /// multiple of 256 (`llama_tensor_get_type`'s fallback): Q2_K and Q3_K become Q4_0, Q4_K Q5_0, Q5_K
    /// Q5_1, Q6_K Q8_0, IQ4_XS IQ4_NL; F16 when the fallback's block does not divide the row either. Any
    /// type whose block divides the row is returned unchanged.
    public static func kQuantFallback(_ type: GGMLType, rowLength: Int) -> GGMLType {
        if rowLength % type.blockSize == 0 { return type }
        let fallback: GGMLType
        switch type {
        case .q2_K, .q3_K: fallback = .q4_0
        case .q4_K: fallback = .q5_0
        case .q5_K: fallback = .q5_1
        case .q6_K: fallback = .q8_0
        case .iq4_xs: fallback = .iq4_nl
        default: fallback = type
        }
        return rowLength % fallback.blockSize == 0 ? fallback : .f16
    }

    private typealias Kernel = (UnsafePointer<Float>, UnsafeMutableRawPointer, Range<Int>, UnsafePointer<Float>?, Int) -> Void

    private static func kernel(_ type: GGMLType) -> Kernel {
        switch type {
        case .q2_K: return { KQuantQ2.run($0, $1, $2, importance: $3, blocksPerRow: $4) }
        case .q3_K: return { KQuantQ3.run($0, $1, $2, importance: $3, blocksPerRow: $4) }
        case .q4_K: return { KQuantQ4Q5.run(fiveBit: false, $0, $1, $2, importance: $3, blocksPerRow: $4) }
        case .q5_K: return { KQuantQ4Q5.run(fiveBit: true, $0, $1, $2, importance: $3, blocksPerRow: $4) }
        case .iq4_nl: return { KQuantIQ4.runNL($0, $1, $2, importance: $3, blocksPerRow: $4) }
        case .iq4_xs: return { KQuantIQ4.runXS($0, $1, $2, importance: $3, blocksPerRow: $4) }
        default: return { KQuantQ6.run($0, $1, $2, importance: $3, blocksPerRow: $4) }
        }
    }

    /// True when `count` floats (a multiple of 16) are all finite.
    private static func allFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
        var acc = SIMD16<Float>()
        var i = 0
        while i < count {
            let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
            acc += v - v  // 0 for finite values, NaN for NaN and ±infinity
            i += 16
        }
        return !any(acc .!= 0)
    }
}

extension GGMLType {
    /// ggml Q2_K: 256 values in 84 bytes.
    public static let q2_K = GGMLType(id: 10)!
    /// ggml Q3_K: 256 values in 110 bytes.
    public static let q3_K = GGMLType(id: 11)!
    /// ggml IQ4_NL: 32 values in 18 bytes (non-linear 4-bit grid).
    public static let iq4_nl = GGMLType(id: 20)!
    /// ggml IQ4_XS: 256 values in 136 bytes.
    public static let iq4_xs = GGMLType(id: 23)!
}
