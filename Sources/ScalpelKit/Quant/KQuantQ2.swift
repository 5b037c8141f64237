/// Q2_K (ggml `block_q2_K`): 256 values in sixteen sub-blocks of 16, each with a 4-bit scale and a 4-bit
/// min; `x ≈ d·scale·q − dmin·min`, q in 0...3.
///
/// Layout: scales[16] @0 (scale in the low nibble, min in the high one), qs[64] @16 (byte 32h + l holds
/// q[128h + 32k + l] at bit 2k), f16 d @80, f16 dmin @82.
///
/// Without importance weights (`quantize_row_q2_K_ref`): each sub-block's scale and min from
/// `make_qkx2_quants(16, 3)` with weights |x|, mean absolute error (rmin −0.5, step 0.1, 15 steps); the
/// largest scale and min set `d = max/15`, `dmin = max/15`; each nibble is `nearest(15/max · s)`. With
/// weights `qw` (`quantize_row_q2_K_impl`): weights `qw · sqrt(σ² + x²)` with `σ² = Σx²/256`,
/// `make_qkx3_quants` (−0.9, 0.05, 36 steps, squared error), the scales and mins quantized by
/// `make_qp_quants(16, 15)` with the sub-blocks' weight sums. Then `q = clamp(nearest((x + dmin·m) / (d·s)), 0, 3)`.
enum KQuantQ2 {
    typealias V = SIMD16<Float>

    static func run(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>,
                    importance: UnsafePointer<Float>?, blocksPerRow: Int) {
        let s = KQuantScratch()
        defer { s.deallocate() }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 48) { f in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { lbuf in
                let sc = f.baseAddress!, mn = sc + 16, swp = sc + 32
                let ls = lbuf.baseAddress!, lm = ls + 16
                for b in range {
                    let x = src + 256 * b, out = dst + 84 * b
                    KQuantScratch.gather(x, n: 16, lanes: 16, first: 0, into: s.x)
                    let packed = out.assumingMemoryBound(to: UInt8.self)
                    var dm: Float, mm: Float
                    if let importance {
                        KQuantScratch.gather(importance + (b % blocksPerRow) * 256, n: 16, lanes: 16, first: 0, into: s.qw)
                        let sigma2 = V(repeating: KQuantScratch.sumOfSquares(x) / 256)
                        var sw = V()
                        for i in 0..<16 {
                            s.w[i] = s.qw[i] * (sigma2 + s.x[i] * s.x[i]).squareRoot()
                            sw += s.w[i]
                        }
                        let (scales, mins) = KQuantLanes.searchScaleMin(n: 16, nmax: 3, x: s.x, w: s.w, L: s.L, laux: s.laux,
                                                                        rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false,
                                                                        emptyWhenNotGreater: true)
                        for j in 0..<16 { sc[j] = scales[j]; mn[j] = mins[j]; swp[j] = sw[j] }
                        dm = KQuantScales.searchUnsigned(n: 16, nmax: 15, x: sc, L: ls, qw: swp)
                        mm = KQuantScales.searchUnsigned(n: 16, nmax: 15, x: mn, L: lm, qw: swp)
                        for j in 0..<16 { packed[j] = ls[j] | (lm[j] << 4) }
                        KQuantScratch.storeHalf(dm, out, 80)
                        KQuantScratch.storeHalf(mm, out, 82)
                    } else {
                        for i in 0..<16 { s.w[i] = KQuantLanes.magnitude(s.x[i]) }
                        let (scales, mins) = KQuantLanes.searchScaleMin(n: 16, nmax: 3, x: s.x, w: s.w, L: s.L, laux: s.laux,
                                                                        rmin: -0.5, rdelta: 0.1, nstep: 15, useMad: true,
                                                                        emptyWhenNotGreater: false)
                        var maxScale: Float = 0, maxMin: Float = 0
                        for j in 0..<16 {
                            if scales[j] > maxScale { maxScale = scales[j] }
                            if mins[j] > maxMin { maxMin = mins[j] }
                        }
                        if maxScale > 0 {
                            let iscale = 15 / maxScale
                            for j in 0..<16 { packed[j] = UInt8(truncatingIfNeeded: KQuantLanes.nearestInt(iscale * scales[j])) }
                            dm = maxScale / 15
                        } else {
                            for j in 0..<16 { packed[j] = 0 }
                            dm = 0
                        }
                        if maxMin > 0 {
                            let iscale = 15 / maxMin
                            for j in 0..<16 {
                                packed[j] = UInt8(truncatingIfNeeded: Int32(packed[j]) | (KQuantLanes.nearestInt(iscale * mins[j]) << 4))
                            }
                            mm = maxMin / 15
                        } else {
                            mm = 0
                        }
                        KQuantScratch.storeHalf(dm, out, 80)
                        KQuantScratch.storeHalf(mm, out, 82)
                    }
                    dm = KQuantScales.half(dm)
                    mm = KQuantScales.half(mm)
                    for j in 0..<16 {
                        let d = dm * Float(packed[j] & 0xF)
                        if d == 0 {
                            s.copyLane(j, n: 16, to: s.q + 16 * j)
                            continue
                        }
                        KQuantScratch.requantize(x + 16 * j, n: 16, d: d, m: mm * Float(packed[j] >> 4), lo: 0, hi: 3, bias: 0,
                                                 into: s.q + 16 * j)
                    }
                    KQuantScratch.pack2(s.q, into: out + 16)
                }
            }
        }
    }
}
