import CScalpelKernels

/// The row kernel of `CompressedTensors.quantize`: the same arithmetic as its documentation, computed by
/// `scalpel_ct_quantize_row` (C, AVX2 and F16C chosen at run time, the same bits on every CPU), then packed into
/// the words (little-endian: a row's packed bytes are the offset codes in order, two per byte for 4 bits).
enum CompressedTensorsKernel {
    struct Layout {
        var rows: Int, columns: Int, bits: Int, groupSize: Int, symmetric: Bool
        var groups: Int { columns / groupSize }
        var wordsPerRow: Int { (columns * bits + 31) / 32 }
    }

    /// The C kernel's code for rounding to `dtype` (the scale dtype): 0 f32, 1 bf16, 2 f16.
    private static func rounding(_ dtype: DType) -> Int32 {
        switch dtype {
        case .bf16: return 1
        case .f16: return 2
        default: return 0
        }
    }

    /// Quantizes every row into `packed` / `scales` / `zeroPoints` (nil when symmetric); with `measure`,
    /// returns the round-trip error against `weights`. Runs in parallel over fixed chunks of rows.
    static func run(_ weights: UnsafePointer<Float>, _ l: Layout, dtype: DType, packed: UnsafeMutablePointer<Int32>,
                    scales: UnsafeMutablePointer<Float>, zeroPoints: UnsafeMutablePointer<Int8>?, measure: Bool) -> QuantError? {
        let io = UncheckedBox((weights, packed, scales, zeroPoints))
        let mode = rounding(dtype)
        let error = try? QuantError.inChunks(count: l.rows, chunk: max(1, 65536 / max(1, l.columns))) { range in
            let (w, packed, scales, zps) = io.value
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: l.columns + 32) { codes in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: measure ? l.columns : 0) { back in
                    var signal = 0.0, err = 0.0, maxAbs: Float = 0
                    var sums = scalpel_error_sums_t()
                    for r in range {
                        let row = w + r * l.columns
                        scalpel_ct_quantize_row(row, l.groups, l.groupSize, Int32(l.bits), l.symmetric ? 1 : 0, mode, codes.baseAddress!,
                                                scales + r * l.groups, zps.map { $0 + r * l.groups }, measure ? back.baseAddress : nil, 0)
                        pack(codes.baseAddress!, l, into: UnsafeMutableRawPointer(packed + r * l.wordsPerRow))
                        if measure {
                            scalpel_error_sums(row, back.baseAddress!, l.columns, &sums)
                            signal += sums.signal
                            err += sums.error
                            let m = Float(bitPattern: sums.max_abs_bits)
                            maxAbs = m.isNaN || maxAbs.isNaN ? .nan : max(maxAbs, m)
                        }
                    }
                    return QuantError(count: range.count * l.columns, signalEnergy: signal, errorEnergy: err, maxAbsError: Double(maxAbs))
                }
            }
        }
        return measure ? error : nil
    }

    /// The scales (and zero points, nil when symmetric) of every row's groups, without the codes: what
    /// `run` stores, from one pass of minima and maxima. Runs in parallel over rows.
    static func scales(_ weights: UnsafePointer<Float>, _ l: Layout, dtype: DType, scales: UnsafeMutablePointer<Float>,
                       zeroPoints: UnsafeMutablePointer<Int8>?) {
        let io = UncheckedBox((weights, scales, zeroPoints))
        let mode = rounding(dtype)
        parallelChunks(count: l.rows, chunk: max(1, 65536 / max(1, l.columns))) { range in
            let (w, scales, zps) = io.value
            for r in range {
                scalpel_ct_quantize_row(w + r * l.columns, l.groups, l.groupSize, Int32(l.bits), l.symmetric ? 1 : 0, mode, nil,
                                        scales + r * l.groups, zps.map { $0 + r * l.groups }, nil, 0)
            }
        }
    }

    /// A row's offset codes into its packed words (zero bits pad the last word).
    @inline(__always)
    private static func pack(_ codes: UnsafeMutablePointer<UInt8>, _ l: Layout, into dst: UnsafeMutableRawPointer) {
        let bytes = l.wordsPerRow * 4
        if l.bits == 8 {
            dst.copyMemory(from: codes, byteCount: l.columns)
            if bytes > l.columns { (dst + l.columns).initializeMemory(as: UInt8.self, repeating: 0, count: bytes - l.columns) }
            return
        }
        // 4 bits: byte j = code[2j] | code[2j + 1] << 4.
        let src = UnsafeRawPointer(codes)
        var j = 0
        while 2 * j + 32 <= l.columns {
            let v = src.loadUnaligned(fromByteOffset: 2 * j, as: SIMD32<UInt8>.self)
            dst.storeBytes(of: v.evenHalf | (v.oddHalf &<< 4), toByteOffset: j, as: SIMD16<UInt8>.self)
            j += 16
        }
        while 2 * j < l.columns {
            let hi: UInt8 = 2 * j + 1 < l.columns ? codes[2 * j + 1] : 0
            dst.storeBytes(of: codes[2 * j] | hi << 4, toByteOffset: j, as: UInt8.self)
            j += 1
        }
        if bytes > j { (dst + j).initializeMemory(as: UInt8.self, repeating: 0, count: bytes - j) }
    }
}
