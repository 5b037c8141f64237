/// Q4_K and Q5_K (ggml `block_q4_K`, `block_q5_K`): 256 values in eight sub-blocks of 32, each with a
/// 6-bit scale and a 6-bit min; `x ≈ d·scale·q − dmin·min`, q in 0...15 (Q4_K) or 0...31 (Q5_K).
///
/// Layout: f16 d @0, f16 dmin @2, scales[12] @4, then Q4_K qs[128] @16; Q5_K qh[32] @16, qs[128] @48.
///
/// Without importance weights (ggml's `quantize_row_q{4,5}_K_ref`): each sub-block's scale and min come
/// from `make_qkx2_quants` with weights `sqrt(mean x²) + |x|` (Q4_K: rmin −1, step 0.1, 20 steps; Q5_K:
/// −0.5, 0.1, 15); the largest scale and min set `d = max/63`, `dmin = max/63`, and each scale is
/// `min(63, nearest(63/max · s))`. With weights `qw` (`quantize_row_q{4,5}_K_impl`): weights
/// `qw · sqrt(σ² + x²)` with `σ² = 2 Σx²/256`, `make_qkx3_quants` (−0.9, 0.05, 36 steps), and the scales
/// and mins quantized by `make_qp_quants` with the sub-blocks' weight sums. Then every value is
/// re-quantized with the stored (f16) scales: `q = clamp(nearest((x + dmin·m) / (d·s)))`.
enum KQuantQ4Q5 {
    typealias V = SIMD16<Float>

    /// Quantizes super-blocks `range` of `src` (two at a time, one per half of the lanes).
    static func run(fiveBit: Bool, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>,
                    importance: UnsafePointer<Float>?, blocksPerRow: Int) {
        let s = KQuantScratch()
        defer { s.deallocate() }
        let typeSize = fiveBit ? 176 : 144
        var b = range.lowerBound
        while b < range.upperBound {
            let pair = b + 1 < range.upperBound
            let blocks = (b, pair ? b + 1 : b)  // an odd last super-block fills both halves
            for h in 0..<2 {
                KQuantScratch.gather(src + 256 * (h == 0 ? blocks.0 : blocks.1), n: 32, lanes: 8, first: 8 * h, into: s.x)
            }
            var sigma2 = V()
            if let importance {
                for h in 0..<2 {
                    let blk = h == 0 ? blocks.0 : blocks.1
                    let col = (blk % blocksPerRow) * 256
                    KQuantScratch.gather(importance + col, n: 32, lanes: 8, first: 8 * h, into: s.qw)
                    let s2 = 2 * KQuantScratch.sumOfSquares(src + 256 * blk) / 256
                    for j in 0..<8 { sigma2[8 * h + j] = s2 }
                }
            }
            var sw = V()
            if importance != nil {
                for i in 0..<32 {
                    s.w[i] = s.qw[i] * (sigma2 + s.x[i] * s.x[i]).squareRoot()
                    sw += s.w[i]
                }
            } else {
                var sumX2 = V()
                for i in 0..<32 { sumX2 += s.x[i] * s.x[i] }
                let avX = (sumX2 / 32).squareRoot()
                for i in 0..<32 { s.w[i] = avX + KQuantLanes.magnitude(s.x[i]) }
            }
            let nmax: Int32 = fiveBit ? 31 : 15
            let (scales, mins): (V, V)
            if importance != nil {
                (scales, mins) = KQuantLanes.searchScaleMin(n: 32, nmax: nmax, x: s.x, w: s.w, L: s.L, laux: s.laux,
                                                             rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false, emptyWhenNotGreater: true)
            } else {
                (scales, mins) = KQuantLanes.searchScaleMin(n: 32, nmax: nmax, x: s.x, w: s.w, L: s.L, laux: s.laux,
                                                             rmin: fiveBit ? -0.5 : -1, rdelta: 0.1, nstep: fiveBit ? 15 : 20,
                                                             useMad: false, emptyWhenNotGreater: false)
            }
            for h in 0..<(pair ? 2 : 1) {
                let blk = h == 0 ? blocks.0 : blocks.1
                finish(fiveBit: fiveBit, h: h, x: src + 256 * blk, out: dst + typeSize * blk,
                       scales: scales, mins: mins, sw: sw, weighted: importance != nil, s: s)
            }
            b += pair ? 2 : 1
        }
    }

    /// Quantizes the scales of the super-block in lanes `8h..<8h+8`, re-quantizes its values and packs it.
    @inline(__always)
    private static func finish(fiveBit: Bool, h: Int, x: UnsafePointer<Float>, out: UnsafeMutableRawPointer,
                               scales: V, mins: V, sw: V, weighted: Bool, s: KQuantScratch) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 24) { f in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { l in
                let sc = f.baseAddress!, mn = sc + 8, w = sc + 16
                let ls = l.baseAddress!, lm = ls + 8
                for j in 0..<8 { sc[j] = scales[8 * h + j]; mn[j] = mins[8 * h + j]; w[j] = sw[8 * h + j] }
                let d: Float, dmin: Float
                if weighted {
                    d = KQuantScales.searchUnsigned(n: 8, nmax: 63, x: sc, L: ls, qw: w)
                    dmin = KQuantScales.searchUnsigned(n: 8, nmax: 63, x: mn, L: lm, qw: w)
                    if fiveBit {
                        for j in 0..<8 { ls[j] = min(63, ls[j]); lm[j] = min(63, lm[j]) }
                    }
                } else {
                    var maxScale: Float = 0, maxMin: Float = 0
                    for j in 0..<8 {
                        if sc[j] > maxScale { maxScale = sc[j] }
                        if mn[j] > maxMin { maxMin = mn[j] }
                    }
                    let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
                    let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
                    for j in 0..<8 {
                        ls[j] = min(63, UInt8(truncatingIfNeeded: KQuantLanes.nearestInt(invScale * sc[j])))
                        lm[j] = min(63, UInt8(truncatingIfNeeded: KQuantLanes.nearestInt(invMin * mn[j])))
                    }
                    d = maxScale / 63
                    dmin = maxMin / 63
                }
                let packed = out + 4
                KQuantScratch.packScaleMins(ls, lm, into: packed)
                KQuantScratch.storeHalf(d, out, 0)
                KQuantScratch.storeHalf(dmin, out, 2)
                let dh = KQuantScales.half(d), mh = KQuantScales.half(dmin)
                let nmax: Int32 = fiveBit ? 31 : 15
                for j in 0..<8 {
                    let (a, m) = KQuantScratch.scaleMin(j, packed)
                    let dj = dh * Float(a)
                    if dj == 0 {
                        s.copyLane(8 * h + j, n: 32, to: s.q + 32 * j)
                        continue
                    }
                    KQuantScratch.requantize(x + 32 * j, n: 32, d: dj, m: mh * Float(m), lo: 0, hi: nmax, bias: 0, into: s.q + 32 * j)
                }
                if fiveBit { pack5(s.q, into: out) } else { pack4(s.q, into: out + 16) }
            }
        }
    }

    /// qs[32g + l] = q[64g + l] | q[64g + 32 + l] << 4.
    @inline(__always)
    private static func pack4(_ q: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        for g in 0..<4 {
            for k in 0..<2 {
                let lo = UnsafeRawPointer(q + 64 * g + 16 * k).loadUnaligned(as: SIMD16<UInt8>.self)
                let hi = UnsafeRawPointer(q + 64 * g + 32 + 16 * k).loadUnaligned(as: SIMD16<UInt8>.self)
                out.storeBytes(of: lo | (hi &<< 4), toByteOffset: 32 * g + 16 * k, as: SIMD16<UInt8>.self)
            }
        }
    }

    /// Q5_K: low nibbles as Q4_K's qs at @48, bit 4 of q[64g + l] in bit 2g of qh[l], of q[64g + 32 + l]
    /// in bit 2g + 1.
    @inline(__always)
    private static func pack5(_ q: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        for k in 0..<2 {
            var qh = SIMD16<UInt8>()
            for g in 0..<4 {
                let lo = UnsafeRawPointer(q + 64 * g + 16 * k).loadUnaligned(as: SIMD16<UInt8>.self)
                let hi = UnsafeRawPointer(q + 64 * g + 32 + 16 * k).loadUnaligned(as: SIMD16<UInt8>.self)
                qh |= ((lo &>> 4) &<< UInt8(2 * g)) | ((hi &>> 4) &<< UInt8(2 * g + 1))
                out.storeBytes(of: (lo & 0xF) | ((hi & 0xF) &<< 4), toByteOffset: 48 + 32 * g + 16 * k, as: SIMD16<UInt8>.self)
            }
            out.storeBytes(of: qh, toByteOffset: 16 + 16 * k, as: SIMD16<UInt8>.self)
        }
    }
}
