/// Quantizing a whole tensor with an importance matrix, as llama-quantize does: each expert's rows
/// (`columns` values each) with that expert's importance row (`imatrix + expert * n_per_row`), through
/// `ggml_quantize_chunk`'s weighted paths (llama.cpp 0c1e57098, `ggml/src/ggml-quants.c`):
///
/// - K types, IQ4_NL and IQ4_XS (`quantize_iq4_nl`, `quantize_iq4_xs` take the weights per column):
///   `KQuant.quantize` with the importance weights.
/// - Q4_0 / Q5_0 (`quantize_row_q4_0_impl`, `q5_0_impl`): per row `sigma2 = Σx² / n` (an f32 sum in
///   order); per block of 32 the weights `w[j] = qw[j] * sqrtf(sigma2 + x[j]²)`, then `make_qx_quants`
///   (`rmse_type` 1, nmax 8 / 16) gives `d` and the quants `l + nmax`.
/// - Q4_1 / Q5_1 (`q4_1_impl`, `q5_1_impl`): the same weights, then `make_qkx3_quants` (nmax 15 / 31,
///   rmin -0.9, rdelta 0.05, 36 steps, squared error): `d` and `m = -the_min`.
/// - Q8_0 and the plain types ignore the weights.
enum WeightedQuantize {
    /// Quantizes `values` (rows of `columns`) into `dst` and measures the round-trip error.
    /// - Throws: `ScalpelError.invalid` for sizes that do not fit, or a non-finite value or weight.
    static func quantizeMeasuring(_ type: GGMLType, _ values: UnsafeBufferPointer<Float>, columns: Int, importance: [Float],
                                  into dst: UnsafeMutableRawBufferPointer) throws -> QuantError {
        try quantize(type, values, columns: columns, importance: importance, into: dst)
        let chunk = max(1, 65536 / type.blockSize)
        let io = UncheckedBox((values, UnsafeRawBufferPointer(dst)))
        return try QuantError.inChunks(count: values.count / type.blockSize, chunk: chunk) { r in
            let (v, d) = io.value
            let original = UnsafeBufferPointer(rebasing: v[(r.lowerBound * type.blockSize)..<(r.upperBound * type.blockSize)])
            let bytes = UnsafeRawBufferPointer(rebasing: d[(r.lowerBound * type.typeSize)..<(r.upperBound * type.typeSize)])
            return try withUnsafeTemporaryAllocation(of: Float.self, capacity: original.count) { back in
                try GGMLDequantize.dequantize(type, bytes, into: back)
                return QuantError.measure(original: original, reconstructed: UnsafeBufferPointer(back))
            }
        }
    }

    /// Quantizes `values` (rows of `columns`; `importance.count / columns` experts of equal row counts).
    static func quantize(_ type: GGMLType, _ values: UnsafeBufferPointer<Float>, columns: Int, importance: [Float],
                         into dst: UnsafeMutableRawBufferPointer) throws {
        func fail(_ reason: String) -> ScalpelError { .invalid(file: nil, tensor: nil, reason: reason) }
        guard columns > 0, columns % type.blockSize == 0, values.count % columns == 0 else {
            throw fail("rows of \(columns) values do not fit \(type.name) blocks of \(type.blockSize)")
        }
        guard !importance.isEmpty, importance.count % columns == 0 else {
            throw fail("the importance matrix has \(importance.count) values, not a multiple of the row length \(columns)")
        }
        let rows = values.count / columns, experts = importance.count / columns
        guard rows % experts == 0 else { throw fail("\(rows) rows do not split into \(experts) experts") }
        let rowBytes = columns / type.blockSize * type.typeSize
        guard dst.count == rows * rowBytes else { throw fail("\(rows) rows of \(type.name) take \(rows * rowBytes) bytes, not \(dst.count)") }
        if let i = importance.firstIndex(where: { !$0.isFinite }) { throw fail("importance value \(importance[i]) at \(i) is not finite") }
        let perExpert = rows / experts
        let legacy = [GGMLType.q4_0, .q4_1, .q5_0, .q5_1].contains(type)
        for e in 0..<experts {
            let src = UnsafeBufferPointer(rebasing: values[(e * perExpert * columns)..<((e + 1) * perExpert * columns)])
            let out = UnsafeMutableRawBufferPointer(rebasing: dst[(e * perExpert * rowBytes)..<((e + 1) * perExpert * rowBytes)])
            try importance.withUnsafeBufferPointer { all in
                let qw = UnsafeBufferPointer(rebasing: all[(e * columns)..<((e + 1) * columns)])
                if KQuant.supportedTypes.contains(type) || KQuant.iq4Types.contains(type) {
                    try KQuant.quantize(type, src, rowLength: columns, importance: qw, into: out)
                } else if legacy {
                    try legacyRows(type, src, columns: columns, importance: qw, into: out)
                } else {
                    try GGMLQuantize.quantize(type, src, into: out)
                }
            }
        }
    }

    /// The weighted Q4_0/Q4_1/Q5_0/Q5_1 rows, in parallel over fixed chunks of rows.
    private static func legacyRows(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, columns: Int, importance: UnsafeBufferPointer<Float>,
                                   into dst: UnsafeMutableRawBufferPointer) throws {
        if let i = src.firstIndex(where: { !$0.isFinite }) {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "value \(src[i]) at index \(i) is not finite; \(type.name) quantization needs finite values")
        }
        let rows = src.count / columns, rowBytes = columns / 32 * type.typeSize
        let io = UncheckedBox((src.baseAddress!, importance.baseAddress!, dst.baseAddress!))
        parallelChunks(count: rows, chunk: max(1, 16384 / columns)) { range in
            let (s, qw, d) = io.value
            for r in range { legacyRow(type, s + r * columns, columns, qw, d + r * rowBytes) }
        }
    }

    private static func legacyRow(_ type: GGMLType, _ x: UnsafePointer<Float>, _ n: Int, _ qw: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var sumX2: Float = 0
        for j in 0..<n { sumX2 += x[j] * x[j] }
        let sigma2 = sumX2 / Float(n)
        let fiveBit = type == .q5_0 || type == .q5_1, withMin = type == .q4_1 || type == .q5_1
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { weight in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { scratch in
                let w = weight.baseAddress!, L = scratch.baseAddress!
                for b in 0..<(n / 32) {
                    let xb = x + 32 * b, wb = qw + 32 * b
                    for j in 0..<32 { w[j] = wb[j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
                    let block = out + b * type.typeSize
                    let quantsAt: Int
                    if withMin {
                        let (d, theMin) = searchScaleMin(nmax: fiveBit ? 31 : 15, x: xb, w: w, L: L, laux: L + 32)
                        block.storeBytes(of: Float16(d).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
                        block.storeBytes(of: Float16(-theMin).bitPattern.littleEndian, toByteOffset: 2, as: UInt16.self)
                        quantsAt = 4
                    } else {
                        let d = L.withMemoryRebound(to: Int8.self, capacity: 32) {
                            KQuantScales.searchSymmetric(n: 32, nmax: fiveBit ? 16 : 8, x: xb, L: $0, qw: w)
                        }
                        block.storeBytes(of: Float16(d).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
                        quantsAt = 2
                    }
                    var qh: UInt32 = 0
                    for j in 0..<16 {
                        let a = L[j], c = L[j + 16]
                        block.storeBytes(of: (a & 0x0F) | ((c & 0x0F) << 4), toByteOffset: quantsAt + (fiveBit ? 4 : 0) + j, as: UInt8.self)
                        qh |= UInt32((a & 0x10) >> 4) << UInt32(j)
                        qh |= UInt32((c & 0x10) >> 4) << UInt32(j + 16)
                    }
                    if fiveBit { block.storeBytes(of: qh.littleEndian, toByteOffset: quantsAt, as: UInt32.self) }
                }
            }
        }
    }

    /// `make_qkx3_quants` (squared error) for one block of 32 with weights `w`: quants 0...nmax into `L`;
    /// returns the scale and `the_min` (the negated offset).
    private static func searchScaleMin(nmax: Int32, x: UnsafePointer<Float>, w: UnsafePointer<Float>, L: UnsafeMutablePointer<UInt8>,
                                       laux: UnsafeMutablePointer<UInt8>) -> (Float, Float) {
        let n = 32
        var mn = x[0], mx = x[0]
        var sumW = w[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < mn { mn = x[i] }
            if x[i] > mx { mx = x[i] }
            sumW += w[i]
            sumX += w[i] * x[i]
        }
        if mn > 0 { mn = 0 }
        if mx <= mn {
            for i in 0..<n { L[i] = 0 }
            return (0, -mn)
        }
        let nm = Float(nmax)
        @inline(__always) func q(_ iscale: Float, _ i: Int) -> Int32 { max(0, min(nmax, KQuantLanes.nearestInt(iscale * (x[i] - mn)))) }
        var iscale = nm / (mx - mn)
        var scale = 1 / iscale
        var best: Float = 0
        for i in 0..<n {
            L[i] = UInt8(q(iscale, i))
            let diff = scale * Float(L[i]) + mn - x[i]
            best += w[i] * (diff * diff)
        }
        for step in 0...36 {
            iscale = (-0.9 + 0.05 * Float(step) + nm) / (mx - mn)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = q(iscale, i)
                laux[i] = UInt8(l)
                let fl = Float(l)
                sumL += w[i] * fl
                sumL2 += w[i] * fl * fl
                sumXL += w[i] * fl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            guard D > 0 else { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var cur: Float = 0
            for i in 0..<n {
                let diff = thisScale * Float(laux[i]) + thisMin - x[i]
                cur += w[i] * (diff * diff)
            }
            if cur < best {
                for i in 0..<n { L[i] = laux[i] }
                best = cur
                scale = thisScale
                mn = thisMin
            }
        }
        return (scale, -mn)
    }
}
