import CScalpelKernels

/// Q3_K (ggml `block_q3_K`): 256 values in sixteen sub-blocks of 16, each with a 6-bit signed scale;
/// `x ≈ d·(scale − 32)·(q − 4)`, q in 0...7.
///
/// Layout: hmask[32] @0 (bit 2 of q[32k + l] in bit k of hmask[l]), qs[64] @32 (two low bits, as Q2_K),
/// scales[12] @96 (low nibbles of scales 0..<8 and 8..<16 in bytes 0..<8, the top two bits of scale j at
/// bit 2(j/4) of byte 8 + j%4), f16 d @108.
///
/// Without importance weights (`quantize_row_q3_K_ref`): each sub-block's scale from `make_q3_quants`
/// (weights x², up to five one-quant-at-a-time passes); the scale of largest magnitude `m` sets
/// `d = f16(m / −32)`, each scale is `clamp(nearest(−32/m · s), −32, 31) + 32`. With weights `qw`
/// (`quantize_row_q3_K_impl`): weights `qw · sqrt(σ² + x²)` with `σ² = 2 Σx²/256`, `make_qx_quants(16, 4)`
/// per sub-block, the scales quantized by `make_qx_quants(16, 32)` with the sub-blocks' weight sums.
/// Then `q = clamp(nearest(x / (d·s)), −4, 3) + 4`.
enum KQuantQ3 {
    typealias V = SIMD16<Float>

    static func run(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>,
                    importance: UnsafePointer<Float>?, blocksPerRow: Int) {
        let s = KQuantScratch()
        defer { s.deallocate() }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { f in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 16) { ls in
                let sc = f.baseAddress!, swp = sc + 16, lsp = ls.baseAddress!
                for b in range {
                    let x = src + 256 * b, out = dst + 110 * b
                    KQuantScratch.gather(x, n: 16, lanes: 16, first: 0, into: s.x)
                    let packed = (out + 96).assumingMemoryBound(to: UInt8.self)
                    for k in 0..<12 { packed[k] = 0 }
                    let d: Float
                    if let importance {
                        KQuantScratch.gather(importance + (b % blocksPerRow) * 256, n: 16, lanes: 16, first: 0, into: s.qw)
                        let sigma2 = V(repeating: 2 * KQuantScratch.sumOfSquares(x) / 256)
                        var sw = V()
                        for i in 0..<16 {
                            s.w[i] = s.qw[i] * (sigma2 + s.x[i] * s.x[i]).squareRoot()
                            sw += s.w[i]
                        }
                        let scales = KQuantLanes.searchSymmetric(n: 16, nmax: 4, x: s.x, w: UnsafePointer(s.w), L: s.L)
                        for j in 0..<16 { sc[j] = scales[j]; swp[j] = sw[j] }
                        d = scalpel_kq_search_symmetric1(16, 32, sc, swp, lsp, 0)
                        for j in 0..<16 { pack(scale: Int32(lsp[j]), j, packed) }
                    } else {
                        let scales = KQuantLanes.searchQ3(n: 16, nmax: 4, x: s.x, L: s.L)
                        var maxScale: Float = 0, amax: Float = 0
                        for j in 0..<16 {
                            let a = abs(scales[j])
                            if a > amax { amax = a; maxScale = scales[j] }
                        }
                        if maxScale != 0 {
                            let iscale = -32 / maxScale
                            for j in 0..<16 {
                                let l = Int8(truncatingIfNeeded: KQuantLanes.nearestInt(iscale * scales[j]))
                                pack(scale: Int32(max(-32, min(31, l))) + 32, j, packed)
                            }
                            d = 1 / iscale
                        } else {
                            d = 0
                        }
                    }
                    KQuantScratch.storeHalf(d, out, 108)
                    let dh = KQuantScales.half(d)
                    for j in 0..<16 {
                        let low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4
                        let scale = Int32(low | (((packed[8 + j % 4] >> UInt8(2 * (j / 4))) & 3) << 4)) - 32
                        let dj = dh * Float(scale)
                        if dj == 0 {
                            s.copyLane(j, n: 16, to: s.q + 16 * j)
                            continue
                        }
                        KQuantScratch.requantize(x + 16 * j, n: 16, d: dj, m: 0, lo: -4, hi: 3, bias: 4, into: s.q + 16 * j)
                    }
                    packQuants(s.q, into: out)
                }
            }
        }
    }

    /// Stores the 6-bit scale `l` of sub-block j (the reference's packing, bits above 6 dropped as its
    /// byte arithmetic does).
    @inline(__always)
    private static func pack(scale l: Int32, _ j: Int, _ p: UnsafeMutablePointer<UInt8>) {
        if j < 8 {
            p[j] = UInt8(truncatingIfNeeded: l & 0xF)
        } else {
            p[j - 8] |= UInt8(truncatingIfNeeded: (l & 0xF) << 4)
        }
        p[j % 4 + 8] |= UInt8(truncatingIfNeeded: (l >> 4) << (2 * (j / 4)))
    }

    /// hmask and qs from q[0..<256] (values 0...7).
    @inline(__always)
    private static func packQuants(_ q: UnsafeMutablePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        for k in 0..<2 {
            var hm = SIMD16<UInt8>()
            for m in 0..<8 {
                let p = UnsafeMutableRawPointer(q + 32 * m + 16 * k)
                let v = p.loadUnaligned(as: SIMD16<UInt8>.self)
                // v is 0...7: bit 2 goes to hmask, the two low bits stay.
                hm |= ((v &>> 2) & 1) &<< UInt8(m)
                p.storeBytes(of: v & 3, as: SIMD16<UInt8>.self)
            }
            out.storeBytes(of: hm, toByteOffset: 16 * k, as: SIMD16<UInt8>.self)
        }
        KQuantScratch.pack2(q, into: out + 32)
    }
}
