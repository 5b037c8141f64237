/// IQ4_NL and IQ4_XS (ggml `block_iq4_nl`, `block_iq4_xs`): 4-bit indices into ggml's fixed non-linear
/// grid of 16 int8 levels (`kvalues_iq4nl`), bit for bit as `ggml_quantize_chunk` writes them
/// (`quantize_iq4_nl` / `quantize_iq4_xs`, which take the same search with or without importance weights).
///
/// - IQ4_NL: 32 values in 18 bytes: f16 d @0, qs[16] @2; `x ≈ d·grid[q]`.
/// - IQ4_XS: 256 values in 136 bytes: f16 d @0, u16 scales_h @2, scales_l[4] @4, qs[128] @8; eight
///   sub-blocks of 32, each with a 6-bit scale `ls` (low nibble in scales_l, two high bits in scales_h);
///   `x ≈ d·(ls − 32)·grid[q]`.
///
/// Each sub-block of 32: weights `x²` (no importance) or `qw · sqrt(σ² + x²)` with `σ² = 2·Σx²/n` over
/// the block (n = 32 or 256); the element of largest magnitude `max` (the first one) gives the first
/// scale `max/127` and quants by the nearest grid level (`best_index_int8`), then the least-squares scale
/// `Σwqx/Σwq²`; fifteen more scales `max/(t − 127)` for t in −7...7 are tried, a scale winning when
/// `(Σwqx)² > best·Σwq²` (`best = d·Σwqx`). A sub-block whose |max| is below 1e-15 has scale 0.
/// IQ4_NL stores `f16(d)` and re-quantizes with `1/d`; IQ4_XS takes `d = −max_scale/32` from the
/// scale of largest magnitude, stores `f16(d)` and each `ls = clamp(nearest(s/d), −32, 31) + 32`, then
/// re-quantizes each sub-block with `1/(d·(ls − 32))` (d in f32). Quants are packed two per byte:
/// byte 16i + j = q[32i + j] | q[32i + 16 + j] << 4. All arithmetic is f32 in the reference's order.
enum KQuantIQ4 {
    /// ggml's `kvalues_iq4nl`.
    static let grid: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// `best_index_int8(16, grid, x)`: the index of the nearest grid level (the lower one unless the upper
    /// one is strictly nearer), by the reference's bisection.
    @inline(__always)
    static func bestIndex(_ x: Float, _ g: UnsafePointer<Float>) -> Int {
        if x <= g[0] { return 0 }
        if x >= g[15] { return 15 }
        var ml = 0, mu = 15
        while mu - ml > 1 {
            let mav = (ml + mu) / 2
            if x < g[mav] { mu = mav } else { ml = mav }
        }
        return x - g[mu - 1] < g[mu] - x ? mu - 1 : mu
    }

    /// The search of one sub-block of 32 (`quantize_row_iq4_nl_impl`'s loop body with ntry 7): writes
    /// the quants into `L` and returns the scale (0 for an all-but-zero sub-block, whose `L` is untouched).
    @inline(__always)
    static func searchBlock(_ xb: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>,
                            _ g: UnsafePointer<Float>) -> Float {
        var amax: Float = 0, mx: Float = 0
        for j in 0..<32 {
            let ax = abs(xb[j])
            if ax > amax { amax = ax; mx = xb[j] }
        }
        if amax < 1e-15 { return 0 }
        var d = -mx / g[0]
        var id = 1 / d
        var sumqx: Float = 0, sumq2: Float = 0
        for j in 0..<32 {
            let l = bestIndex(id * xb[j], g)
            L[j] = UInt8(l)
            let q = g[l], wj = w[j]
            sumqx += wj * q * xb[j]
            sumq2 += wj * q * q
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0
        var best = d * sumqx
        for itry in -7...7 {
            id = Float(itry - 127) / mx
            sumqx = 0; sumq2 = 0
            for j in 0..<32 {
                let q = g[bestIndex(id * xb[j], g)], wj = w[j]
                sumqx += wj * q * xb[j]
                sumq2 += wj * q * q
            }
            if sumq2 > 0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2
                best = d * sumqx
            }
        }
        return d
    }

    /// The weights of a sub-block: `x²`, or `qw · sqrt(σ² + x²)`.
    @inline(__always)
    static func weights(_ xb: UnsafePointer<Float>, _ qw: UnsafePointer<Float>?, sigma2: Float, into w: UnsafeMutablePointer<Float>) {
        if let qw {
            for j in 0..<32 { w[j] = qw[j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
        } else {
            for j in 0..<32 { w[j] = xb[j] * xb[j] }
        }
    }

    /// σ² = Σx² · (2/n), summed in order.
    @inline(__always)
    static func sigma2(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var s: Float = 0
        for j in 0..<n { s += x[j] * x[j] }
        return s * (2 / Float(n))
    }

    /// Packs `n` quants: byte 16i + j = L[32i + j] | L[32i + 16 + j] << 4.
    @inline(__always)
    static func pack(_ L: UnsafePointer<UInt8>, n: Int, into q4: UnsafeMutableRawPointer) {
        for i in 0..<(n / 32) {
            let lo = UnsafeRawPointer(L + 32 * i).loadUnaligned(as: SIMD16<UInt8>.self)
            let hi = UnsafeRawPointer(L + 32 * i + 16).loadUnaligned(as: SIMD16<UInt8>.self)
            q4.storeBytes(of: lo | (hi &<< 4), toByteOffset: 16 * i, as: SIMD16<UInt8>.self)
        }
    }

    /// IQ4_NL blocks `range` of `src` (32 values each) into `dst` (18 bytes each).
    static func runNL(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>,
                      importance: UnsafePointer<Float>?, blocksPerRow: Int) {
        grid.map(Float.init).withUnsafeBufferPointer { gb in
            let g = gb.baseAddress!
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { wb in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { lb in
                    let w = wb.baseAddress!, L = lb.baseAddress!
                    for b in range {
                        let x = src + 32 * b, out = dst + 18 * b
                        let qw = importance.map { $0 + (b % blocksPerRow) * 32 }
                        weights(x, qw, sigma2: qw == nil ? 0 : sigma2(x, 32), into: w)
                        let d = searchBlock(x, w, L, g)
                        KQuantScratch.storeHalf(d, out, 0)
                        let id: Float = d != 0 ? 1 / d : 0
                        for j in 0..<32 { L[j] = UInt8(bestIndex(id * x[j], g)) }
                        pack(L, n: 32, into: out + 2)
                    }
                }
            }
        }
    }

    /// IQ4_XS super-blocks `range` of `src` (256 values each) into `dst` (136 bytes each).
    static func runXS(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>,
                      importance: UnsafePointer<Float>?, blocksPerRow: Int) {
        grid.map(Float.init).withUnsafeBufferPointer { gb in
            let g = gb.baseAddress!
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 40) { fb in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { lb in
                    let w = fb.baseAddress!, scales = w + 32, L = lb.baseAddress!
                    for b in range {
                        let x = src + 256 * b, out = dst + 136 * b
                        let qw = importance.map { $0 + (b % blocksPerRow) * 256 }
                        let s2 = qw == nil ? 0 : sigma2(x, 256)
                        var maxScale: Float = 0, amaxScale: Float = 0
                        for ib in 0..<8 {
                            weights(x + 32 * ib, qw.map { $0 + 32 * ib }, sigma2: s2, into: w)
                            let d = searchBlock(x + 32 * ib, w, L + 32 * ib, g)
                            scales[ib] = d
                            if abs(d) > amaxScale { amaxScale = abs(d); maxScale = d }
                        }
                        let d = -maxScale / 32
                        KQuantScratch.storeHalf(d, out, 0)
                        let id: Float = d != 0 ? 1 / d : 0
                        var scalesH: UInt16 = 0
                        let scalesL = (out + 4).assumingMemoryBound(to: UInt8.self)
                        for ib in 0..<8 {
                            let l = max(-32, min(31, KQuantLanes.nearestInt(id * scales[ib])))
                            let dl = d * Float(l)
                            let idl: Float = dl != 0 ? 1 / dl : 0
                            let xb = x + 32 * ib, Lb = L + 32 * ib
                            for j in 0..<32 { Lb[j] = UInt8(bestIndex(idl * xb[j], g)) }
                            let u = UInt8(l + 32)
                            if ib % 2 == 0 { scalesL[ib / 2] = u & 0xF } else { scalesL[ib / 2] |= (u & 0xF) << 4 }
                            scalesH |= UInt16(u >> 4) << (2 * (ib % 8))
                        }
                        out.storeBytes(of: scalesH.littleEndian, toByteOffset: 2, as: UInt16.self)
                        pack(L, n: 256, into: out + 8)
                    }
                }
            }
        }
    }
}
