/// Q6_K (ggml `block_q6_K`): 256 values in sixteen sub-blocks of 16, each with an int8 scale;
/// `x ≈ d·scale·(q − 32)`, q in 0...63.
///
/// Layout: ql[128] @0 (low nibbles), qh[64] @128 (two high bits), int8 scales[16] @192, f16 d @208.
///
/// Each sub-block's scale comes from `make_qx_quants(16, 32, rmse_type 1)` with weights x² (no
/// importance) or the importance weights themselves (`quantize_row_q6_K_impl` uses `qw` as is). The scale
/// of largest magnitude `m` sets `d = f16(m / −128)` and each scale is `min(127, nearest(−128/m · s))`;
/// a super-block whose largest |scale| is below 1e-15 is all zero bytes. Then every value is re-quantized
/// with the stored scales: `q = clamp(nearest(x / (d·s)), −32, 31) + 32`.
enum KQuantQ6 {
    typealias V = SIMD16<Float>

    static func run(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>,
                    importance: UnsafePointer<Float>?, blocksPerRow: Int) {
        let s = KQuantScratch()
        defer { s.deallocate() }
        for b in range {
            let x = src + 256 * b, out = dst + 210 * b
            KQuantScratch.gather(x, n: 16, lanes: 16, first: 0, into: s.x)
            var weights: UnsafePointer<V>? = nil
            if let importance {
                KQuantScratch.gather(importance + (b % blocksPerRow) * 256, n: 16, lanes: 16, first: 0, into: s.qw)
                weights = UnsafePointer(s.qw)
            }
            let scales = KQuantLanes.searchSymmetric(n: 16, nmax: 32, x: s.x, w: weights, L: s.L)
            var maxScale: Float = 0, maxAbs: Float = 0
            for j in 0..<16 {
                let a = abs(scales[j])
                if a > maxAbs { maxAbs = a; maxScale = scales[j] }
            }
            if maxAbs < 1e-15 {
                out.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                continue
            }
            let iscale = -128 / maxScale
            KQuantScratch.storeHalf(1 / iscale, out, 208)
            let dh = KQuantScales.half(1 / iscale)
            for j in 0..<16 {
                let sc = Int8(truncatingIfNeeded: min(127, KQuantLanes.nearestInt(iscale * scales[j])))
                out.storeBytes(of: sc, toByteOffset: 192 + j, as: Int8.self)
                let d = dh * Float(sc)
                if d == 0 {
                    s.copyLane(j, n: 16, to: s.q + 16 * j)
                    continue
                }
                KQuantScratch.requantize(x + 16 * j, n: 16, d: d, m: 0, lo: -32, hi: 31, bias: 32, into: s.q + 16 * j)
            }
            pack(s.q, into: out)
        }
    }

    /// For each half h: ql[64h + l] = q[128h + l] & 15 | (q[128h + 64 + l] & 15) << 4,
    /// ql[64h + 32 + l] = q[128h + 32 + l] & 15 | (q[128h + 96 + l] & 15) << 4, and qh[32h + l] holds the
    /// top two bits of q[128h + 32k + l] at bit 2k.
    @inline(__always)
    private static func pack(_ q: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        for h in 0..<2 {
            for k in 0..<2 {
                func ld(_ o: Int) -> SIMD16<UInt8> { UnsafeRawPointer(q + 128 * h + o + 16 * k).loadUnaligned(as: SIMD16<UInt8>.self) }
                let q0 = ld(0), q1 = ld(32), q2 = ld(64), q3 = ld(96)
                out.storeBytes(of: (q0 & 0xF) | ((q2 & 0xF) &<< 4), toByteOffset: 64 * h + 16 * k, as: SIMD16<UInt8>.self)
                out.storeBytes(of: (q1 & 0xF) | ((q3 & 0xF) &<< 4), toByteOffset: 64 * h + 32 + 16 * k, as: SIMD16<UInt8>.self)
                let qh = (q0 &>> 4) | ((q1 &>> 4) &<< 2) | ((q2 &>> 4) &<< 4) | ((q3 &>> 4) &<< 6)
                out.storeBytes(of: qh, toByteOffset: 128 + 32 * h + 16 * k, as: SIMD16<UInt8>.self)
            }
        }
    }
}
