import CScalpelKernels
import Foundation

/// How far a reconstructed (dequantized) tensor is from its original.
public struct QuantError: Sendable, Equatable {
    /// Number of elements compared.
    public var count: Int
    /// Σ x², the energy of the original (f64).
    public var signalEnergy: Double
    /// Σ (x - y)², the energy of the error (f64).
    public var errorEnergy: Double
    /// max |x - y|.
    public var maxAbsError: Double

    public init(count: Int, signalEnergy: Double, errorEnergy: Double, maxAbsError: Double) {
        self.count = count
        self.signalEnergy = signalEnergy
        self.errorEnergy = errorEnergy
        self.maxAbsError = maxAbsError
    }

    /// Relative RMSE `sqrt(Σ(x - y)² / Σx²)`: 0 when identical; NaN for an all-zero original (0/0),
    /// infinity when only the original is all zero.
    public var relativeRMSE: Double { (errorEnergy / signalEnergy).squareRoot() }

    /// Signal-to-quantization-noise ratio in dB, `10 log10(Σx² / Σ(x - y)²)` = `-20 log10(relativeRMSE)`:
    /// +infinity when identical.
    public var sqnrDB: Double { 10 * log10(signalEnergy / errorEnergy) }

    /// The error over the union of disjoint parts (energies add, the largest difference wins).
    public static func combined(_ parts: [QuantError]) -> QuantError {
        parts.reduce(QuantError(count: 0, signalEnergy: 0, errorEnergy: 0, maxAbsError: 0)) {
            QuantError(count: $0.count + $1.count, signalEnergy: $0.signalEnergy + $1.signalEnergy,
                       errorEnergy: $0.errorEnergy + $1.errorEnergy, maxAbsError: max($0.maxAbsError, $1.maxAbsError))
        }
    }

    /// The error of `count` elements measured by `body` over fixed chunks in parallel, combined. Each
    /// call gets one chunk's range and returns that chunk's error; results do not depend on thread count.
    public static func inChunks(count: Int, chunk: Int, _ body: @Sendable (Range<Int>) throws -> QuantError) throws -> QuantError {
        var parts = [QuantError?](repeating: nil, count: (count + chunk - 1) / chunk)
        try parts.withUnsafeMutableBufferPointer { p in
            let out = UncheckedBox(p)
            try parallelChunksThrowing(count: count, chunk: chunk) { r in out.value[r.lowerBound / chunk] = try body(r) }
        }
        return combined(parts.compactMap { $0 })
    }

    /// Compares `original` with `reconstructed` (same count). The differences are taken in f32 and
    /// squared and summed in f64 with SIMD lanes over fixed chunks, so the result does not depend on the
    /// thread count or the CPU. NaN in either input makes the energies NaN.
    public static func measure(original: UnsafeBufferPointer<Float>, reconstructed: UnsafeBufferPointer<Float>) -> QuantError {
        precondition(original.count == reconstructed.count, "QuantError: \(original.count) vs \(reconstructed.count) values")
        let n = original.count
        guard n > 0 else { return QuantError(count: 0, signalEnergy: 0, errorEnergy: 0, maxAbsError: 0) }
        let chunk = 1 << 16
        let chunks = (n + chunk - 1) / chunk
        // Three partial results per chunk: Σx², Σ(x-y)², max|x-y|.
        var partial = [Double](repeating: 0, count: 3 * chunks)
        let io = UncheckedBox((original.baseAddress!, reconstructed.baseAddress!))
        partial.withUnsafeMutableBufferPointer { out in
            let sink = UncheckedBox(out.baseAddress!)
            parallelChunks(count: n, chunk: chunk) { range in
                let p = sums(io.value.0 + range.lowerBound, io.value.1 + range.lowerBound, range.count)
                let at = sink.value + 3 * (range.lowerBound / chunk)
                at[0] = p.signal
                at[1] = p.error
                at[2] = p.maxAbs
            }
        }
        var signal = 0.0, error = 0.0, maxAbs = 0.0
        for c in 0..<chunks {
            signal += partial[3 * c]
            error += partial[3 * c + 1]
            let m = partial[3 * c + 2]
            maxAbs = m.isNaN || maxAbs.isNaN ? .nan : max(maxAbs, m)
        }
        return QuantError(count: n, signalEnergy: signal, errorEnergy: error, maxAbsError: maxAbs)
    }

    /// Σx², Σ(x-y)² and max|x-y| over `count` values (`scalpel_error_sums`: f64 lanes, vectorized for
    /// the running CPU with the same bits on any).
    private static func sums(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ count: Int)
        -> (signal: Double, error: Double, maxAbs: Double) {
        var out = scalpel_error_sums_t()
        scalpel_error_sums(x, y, count, &out)
        return (out.signal, out.error, Double(Float(bitPattern: out.max_abs_bits)))
    }
}
