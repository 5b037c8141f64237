import CScalpelKernels

/// A matrix quantized with LLM.int8 row-wise absmax (bitsandbytes `Linear8bitLt` weights).
public struct BnbInt8Quantized: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    /// Row-major int8 codes `[rows, columns]`: the I8 tensor `weight` (bitsandbytes' `CB`).
    public var cb: [Int8]
    /// Per-row absmax `[rows]`: the F32 tensor `SCB`.
    public var scb: [Float]

    public init(rows: Int, columns: Int, cb: [Int8], scb: [Float]) {
        self.rows = rows
        self.columns = columns
        self.cb = cb
        self.scb = scb
    }
}

/// LLM.int8 weight quantization, bit-identical to bitsandbytes 0.50 (`Int8Params._quantize` and the
/// default `int8_vectorwise_quant` / `int8_vectorwise_dequant` kernels), which it verifies against.
///
/// - The weight is first rounded to float16 (round to nearest even), as `Int8Params` converts it with
///   `.to(torch.float16)` before quantizing; beyond ±65504 it becomes infinite.
/// - `SCB[r]` = max |w| of row r (f32 of the f16 values).
/// - `CB[r, c]` = `round(w * (127 / SCB[r]))`: the f32 quotient `127 / SCB` first, then an f32 multiply,
///   then rounding half to even (`torch.round`). An all-zero row (SCB 0) gives zeros, as bitsandbytes
///   does on x86-64 (its NaN quotients convert to 0).
/// - Dequantized: `(CB * SCB) * f32(1 / 127)`, i.e. a multiply by the f32 constant 7.874015718698502e-3
///   rather than a division by 127, as bitsandbytes' `int8_vectorwise_dequant`.
/// A NaN in a row makes its SCB NaN and its codes 0; an infinite value makes SCB infinite, its own
/// code 0 and every finite code 0.
public enum BnbInt8 {
    /// The f32 reciprocal of 127 that bitsandbytes dequantizes with.
    static let inverse127 = Float(7.874015718698502e-3)

    /// Quantizes a row-major `[rows, columns]` matrix. Runs in parallel over rows.
    /// - Precondition: `weights.count == rows * columns`.
    public static func quantize(_ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int) -> BnbInt8Quantized {
        precondition(weights.count == rows * columns, "LLM.int8: \(weights.count) values are not \(rows) x \(columns)")
        var cb = [Int8](repeating: 0, count: rows * columns)
        var scb = [Float](repeating: 0, count: rows)
        guard rows > 0, columns > 0 else { return BnbInt8Quantized(rows: rows, columns: columns, cb: cb, scb: scb) }
        let src = UncheckedBox(weights.baseAddress!)
        cb.withUnsafeMutableBufferPointer { c in
            scb.withUnsafeMutableBufferPointer { s in
                let dst = UncheckedBox((c.baseAddress!, s.baseAddress!))
                parallelChunks(count: rows, chunk: max(1, 65536 / columns)) { range in
                    var half = [UInt16](repeating: 0, count: columns)
                    var row = [Float](repeating: 0, count: columns)
                    for r in range {
                        scalpel_f32_to_f16(src.value + r * columns, &half, columns)
                        scalpel_f16_to_f32(half, &row, columns)
                        dst.value.1[r] = quantizeRow(row, into: dst.value.0 + r * columns)
                    }
                }
            }
        }
        return BnbInt8Quantized(rows: rows, columns: columns, cb: cb, scb: scb)
    }

    /// Quantizes one row of f16-representable values; returns its SCB.
    private static func quantizeRow(_ row: [Float], into out: UnsafeMutablePointer<Int8>) -> Float {
        var amax: Float = 0
        var hasNaN = false
        for v in row {
            if v.isNaN { hasNaN = true } else { amax = max(amax, abs(v)) }
        }
        if hasNaN || amax == 0 {
            out.update(repeating: 0, count: row.count)
            return hasNaN ? .nan : 0
        }
        let scale = 127 / amax
        for (i, v) in row.enumerated() {
            let scaled = v * scale  // NaN only for an infinite value, whose SCB is then infinite
            out[i] = scaled.isNaN ? 0 : Int8(scaled.rounded(.toNearestOrEven))
        }
        return amax
    }

    /// Dequantizes into `out` (`rows * columns` values): `(CB * SCB) * f32(1/127)`.
    public static func dequantize(_ q: BnbInt8Quantized, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == q.rows * q.columns, "LLM.int8: output size")
        for r in 0..<q.rows {
            let s = q.scb[r]
            for c in 0..<q.columns {
                let i = r * q.columns + c
                out[i] = (Float(q.cb[i]) * s) * inverse127
            }
        }
    }
}
