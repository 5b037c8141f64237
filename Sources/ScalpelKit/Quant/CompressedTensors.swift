/// A Linear weight quantized in compressed-tensors' `pack-quantized` format (vLLM's W4A16 / W8A16).
public struct CompressedTensorsQuantized: Sendable, Equatable {
    /// Output features (rows of the weight).
    public var rows: Int
    /// Input features (columns of the weight).
    public var columns: Int
    /// 4 or 8.
    public var bits: Int
    /// Input features per scale (`columns` for the channel strategy).
    public var groupSize: Int
    /// `weight_packed`, I32 `[rows, packedColumns]`: `q + 2^(bits-1)` unsigned, `32 / bits` consecutive
    /// input features per word, the first in the lowest bits; a row's last word is padded with zero bits.
    public var packed: [Int32]
    /// `weight_scale` `[rows, groups]`, each value exactly representable in `scaleDType`.
    public var scales: [Float]
    /// The zero point of each group `[rows, groups]` (in -8...7 or -128...127) when asymmetric.
    public var zeroPoints: [Int8]?
    /// The dtype of `weight_scale`: the weight's own (F32, F16 or BF16).
    public var scaleDType: DType

    public init(rows: Int, columns: Int, bits: Int, groupSize: Int, packed: [Int32], scales: [Float],
                zeroPoints: [Int8]?, scaleDType: DType) {
        self.rows = rows
        self.columns = columns
        self.bits = bits
        self.groupSize = groupSize
        self.packed = packed
        self.scales = scales
        self.zeroPoints = zeroPoints
        self.scaleDType = scaleDType
    }

    /// Scales per row.
    public var groups: Int { columns / groupSize }
    /// Words per row of `packed`: `ceil(columns * bits / 32)`.
    public var packedColumns: Int { (columns * bits + 31) / 32 }
    /// `weight_shape`, I64 `[2]`.
    public var weightShape: [Int64] { [Int64(rows), Int64(columns)] }
    /// `weight_zero_point` when asymmetric, I32 `[ceil(rows * bits / 32), groups]`: the zero points
    /// `+ 2^(bits-1)` packed along the OUTPUT dimension (column g of word row w holds rows
    /// `w * 32/bits ...`, the first in the lowest bits).
    public var packedZeroPoints: [Int32]? {
        guard let zp = zeroPoints else { return nil }
        let perWord = 32 / bits, g = groups
        let wordRows = (rows * bits + 31) / 32
        var out = [Int32](repeating: 0, count: wordRows * g)
        for r in 0..<rows {
            for j in 0..<g {
                let v = UInt32(Int32(zp[r * g + j]) + Int32(1 << (bits - 1)))
                let w = (r / perWord) * g + j
                out[w] = Int32(bitPattern: UInt32(bitPattern: out[w]) | v << UInt32(bits * (r % perWord)))
            }
        }
        return out
    }
}

/// compressed-tensors integer weight quantization (`pack-quantized`), bit-identical to
/// compressed-tensors 0.20 given llm-compressor's min-max observer (tested against its
/// `calculate_qparams`, `quantize` and `pack_to_int32`).
///
/// All arithmetic happens in the weight's dtype, as torch does it: every operation is computed in f32
/// and rounded to BF16/F16 (nearest even), so the values are rounded twice where the model is BF16.
/// Per group of `groupSize` input features of one row, with `mn = min(min(w), 0)` and
/// `mx = max(max(w), 0)`:
/// - Symmetric: `scale = R(max(|mn|, |mx|) / ((qmax - qmin) / 2))`: absmax / 7.5 for int4, / 127.5 for
///   int8. Quantized: `q = round(clamp(R(w / scale), qmin, qmax))`.
/// - Asymmetric: `scale = R(R(mx - mn) / (qmax - qmin))`, zero point
///   `zp = round(clamp(R(qmin - R(mn / scale)), qmin, qmax))`, `q = round(clamp(R(R(w / scale) + zp), ...))`.
/// - `round` is half to even (`torch.round`); a zero scale is replaced by the dtype's epsilon (2^-7 BF16,
///   2^-10 F16, 2^-23 F32) after the zero point is computed (an all-zero group's zero point is then 0,
///   as torch converts its NaN to 0 on x86-64). NaN weights quantize to 0.
/// - Dequantized: `R((q - zp) * scale)`.
public enum CompressedTensors {
    /// How many input features share a scale.
    public enum Strategy: Sendable, Equatable {
        /// `group_size` consecutive input features (vLLM wants 32, 64 or 128).
        case group(Int)
        /// One scale per output row.
        case channel
    }

    /// Quantizes a row-major `[rows, columns]` weight whose values are in `dtype` (values that are not
    /// exactly representable are first rounded to it).
    /// - Throws: `ScalpelError.invalid` for bits other than 4 and 8, a dtype other than F32/F16/BF16, a
    ///   group size that does not divide `columns`, or a count that is not `rows * columns`.
    public static func quantize(_ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int,
                                strategy: Strategy, symmetric: Bool, dtype: DType) throws -> CompressedTensorsQuantized {
        func fail(_ reason: String) -> ScalpelError { .invalid(file: nil, tensor: nil, reason: reason) }
        guard bits == 4 || bits == 8 else { throw fail("compressed-tensors packing supports 4 or 8 bits, not \(bits)") }
        guard let rounding = DTypeRounding(dtype) else { throw fail("compressed-tensors scales must be F32, F16 or BF16, not \(dtype.rawValue)") }
        guard weights.count == rows * columns else { throw fail("\(weights.count) values are not \(rows) x \(columns)") }
        let groupSize: Int
        switch strategy {
        case .channel: groupSize = columns
        case .group(let g): groupSize = g
        }
        guard groupSize > 0, columns % groupSize == 0 else {
            throw fail("group size \(groupSize) does not divide the \(columns) input features")
        }
        let layout = CompressedTensorsKernel.Layout(rows: rows, columns: columns, bits: bits, groupSize: groupSize, symmetric: symmetric)
        var packed = [Int32](repeating: 0, count: rows * layout.wordsPerRow)
        var scales = [Float](repeating: 0, count: rows * layout.groups)
        var zeroPoints = [Int8](repeating: 0, count: symmetric ? 0 : rows * layout.groups)
        if rows > 0 && columns > 0 {
            packed.withUnsafeMutableBufferPointer { p in
                scales.withUnsafeMutableBufferPointer { s in
                    zeroPoints.withUnsafeMutableBufferPointer { z in
                        _ = CompressedTensorsKernel.run(weights.baseAddress!, layout, dtype: dtype, packed: p.baseAddress!, scales: s.baseAddress!,
                                                        zeroPoints: symmetric ? nil : z.baseAddress, measure: false)
                    }
                }
            }
        }
        _ = rounding
        return CompressedTensorsQuantized(rows: rows, columns: columns, bits: bits, groupSize: groupSize, packed: packed,
                                          scales: scales, zeroPoints: symmetric ? nil : zeroPoints, scaleDType: dtype)
    }

    /// Dequantizes into `out` (`rows * columns` values): `R((q - zp) * scale)` in the scale dtype.
    public static func dequantize(_ q: CompressedTensorsQuantized, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == q.rows * q.columns, "compressed-tensors: output size")
        let rounding = DTypeRounding(q.scaleDType) ?? DTypeRounding(.f32)!
        let perWord = 32 / q.bits, mask = UInt32((1 << q.bits) - 1), offset = Int32(1 << (q.bits - 1))
        let wordsPerRow = q.packedColumns, groups = q.groups
        for r in 0..<q.rows {
            for c in 0..<q.columns {
                let word = UInt32(bitPattern: q.packed[r * wordsPerRow + c / perWord])
                let code = Int32((word >> UInt32(q.bits * (c % perWord))) & mask) - offset
                let g = r * groups + c / q.groupSize
                let zp = q.zeroPoints.map { Int32($0[g]) } ?? 0
                out[r * q.columns + c] = rounding(Float(code - zp) * q.scales[g])
            }
        }
    }
}
