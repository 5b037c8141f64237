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
        cb.withUnsafeMutableBufferPointer { c in
            scb.withUnsafeMutableBufferPointer { s in
                _ = quantize(weights, rows: rows, columns: columns, codes: c.baseAddress, scb: s.baseAddress, measure: false)
            }
        }
        return BnbInt8Quantized(rows: rows, columns: columns, cb: cb, scb: scb)
    }

    /// Every row's SCB without quantizing: `f32(f16(max |w|))`, which is the absmax of the f16-rounded
    /// row (rounding to f16 keeps the order of magnitudes); NaN for a row holding a NaN, infinite for a
    /// row beyond f16's range. The same values `quantize` stores. Runs in parallel over rows.
    public static func rowScales(_ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int) -> [Float] {
        precondition(weights.count == rows * columns, "LLM.int8: \(weights.count) values are not \(rows) x \(columns)")
        var scb = [Float](repeating: 0, count: rows)
        guard rows > 0, columns > 0, let src = weights.baseAddress else { return scb }
        scb.withUnsafeMutableBufferPointer { s in
            let io = UncheckedBox((src, s.baseAddress!))
            parallelChunks(count: rows, chunk: max(1, 65536 / columns)) { range in
                let (src, scb) = io.value
                for r in range { scb[r] = scalpel_int8_quantize_row(src + r * columns, columns, nil, nil, 0) }
            }
        }
        return scb
    }

    /// Quantizes into caller-owned `codes` (`rows * columns`) and `scb` (`rows`) and, when `measure`,
    /// returns the round-trip error against `weights` (dequantized a row at a time, never stored). Runs
    /// in parallel over fixed chunks of rows (the error does not depend on the thread count). The row
    /// kernel is `scalpel_int8_quantize_row` (C, AVX2 and F16C chosen at run time).
    static func quantize(_ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, codes: UnsafeMutablePointer<Int8>?,
                         scb: UnsafeMutablePointer<Float>?, measure: Bool) -> QuantError? {
        guard rows > 0, columns > 0, let src = weights.baseAddress, let codes, let scb else {
            return measure ? QuantError(count: 0, signalEnergy: 0, errorEnergy: 0, maxAbsError: 0) : nil
        }
        let io = UncheckedBox((src, codes, scb))
        let error = try? QuantError.inChunks(count: rows, chunk: max(1, 65536 / columns)) { range in
            let (src, codes, scb) = io.value
            return withUnsafeTemporaryAllocation(of: Float.self, capacity: measure ? columns : 0) { back in
                var sums = scalpel_error_sums_t()
                var signal = 0.0, err = 0.0, maxAbs: Float = 0
                for r in range {
                    let w = src + r * columns
                    scb[r] = scalpel_int8_quantize_row(w, columns, codes + r * columns, measure ? back.baseAddress : nil, 0)
                    guard measure else { continue }
                    scalpel_error_sums(w, back.baseAddress!, columns, &sums)
                    signal += sums.signal
                    err += sums.error
                    let m = Float(bitPattern: sums.max_abs_bits)
                    maxAbs = m.isNaN || maxAbs.isNaN ? .nan : max(maxAbs, m)
                }
                return QuantError(count: range.count * columns, signalEnergy: signal, errorEnergy: err, maxAbsError: Double(maxAbs))
            }
        }
        return measure ? error : nil
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
