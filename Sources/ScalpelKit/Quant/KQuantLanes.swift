import CScalpelKernels

/// The scale searches of ggml's K-quants, run for 16 sub-blocks at once: lane `j` of every vector is one
/// sub-block, and `x[i]` holds element `i` of each. Every lane does exactly the scalar reference's
/// operations in the reference's order (each sum is accumulated element by element, in f32, with no fused
/// multiply-add), so the result of each lane is bit for bit the reference's; the lanes only run side by
/// side. A branch of the reference becomes a lane mask with the same comparison (NaN compares false).
enum KQuantLanes {
    typealias V = SIMD16<Float>
    typealias I = SIMD16<Int32>

    /// Lane masks as integers (all ones or zero per lane): the generic `SIMDMask` selects and
    /// `replacing(with:where:)` compile to a loop over lanes through memory in large functions; these are
    /// plain vector bit operations.
    typealias M = SIMD16<Int32>

    @inline(__always)
    static func mask(_ m: SIMDMask<I>) -> M { unsafeBitCast(m, to: M.self) }

    /// `m ? a : b` lane by lane.
    @inline(__always)
    static func select(_ m: M, _ a: V, _ b: V) -> V {
        let bb = unsafeBitCast(b, to: M.self)
        return unsafeBitCast(bb ^ ((unsafeBitCast(a, to: M.self) ^ bb) & m), to: V.self)
    }

    /// `m ? 0 : v` lane by lane.
    @inline(__always)
    static func zeroing(_ m: M, _ v: V) -> V {
        unsafeBitCast(unsafeBitCast(v, to: M.self) & ~m, to: V.self)
    }

    /// True when any lane of `m` is set.
    @inline(__always)
    static func any(_ m: M) -> Bool {
        let q = unsafeBitCast(m, to: (SIMD4<Int32>, SIMD4<Int32>, SIMD4<Int32>, SIMD4<Int32>).self)
        let o = (q.0 | q.1) | (q.2 | q.3)
        return (o[0] | o[1]) | (o[2] | o[3]) != 0
    }

    /// ggml's `nearest_int`: the float's bits after adding 1.5 · 2^23 (round half to even for
    /// |x| < 2^22; for larger or non-finite values the same bit arithmetic as the reference).
    @inline(__always)
    static func nearestInt(_ v: V) -> I {
        let t = v + V(repeating: 12582912)
        return (unsafeBitCast(t, to: I.self) & 0x007f_ffff) &- 0x0040_0000
    }

    /// Scalar `nearestInt`.
    @inline(__always)
    static func nearestInt(_ v: Float) -> Int32 {
        let t = v + 12582912
        return Int32(bitPattern: t.bitPattern & 0x007f_ffff) &- 0x0040_0000
    }

    @inline(__always)
    static func clamp(_ v: I, _ lo: Int32, _ hi: Int32) -> I {
        // min(v, hi) then max(·, lo) in integer arithmetic (no masks: |v| < 2^30).
        let h = I(repeating: hi), l = I(repeating: lo)
        let dh = h &- v
        let r = v &+ (dh & (dh &>> 31))
        let dl = r &- l
        return r &- (dl & (dl &>> 31))
    }

    @inline(__always)
    static func float(_ v: I) -> V { V(v) }

    /// |v| per lane (`fabsf`: the sign bit cleared).
    @inline(__always)
    static func magnitude(_ v: V) -> V {
        unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7fff_ffff, to: V.self)
    }

    /// `make_qkx2_quants` / `make_qkx3_quants` (asymmetric: scale and min) for 16 lanes of `n` elements
    /// with weights `w`: quants 0...nmax into `L` (as floats), returns (scale, the_min). The two
    /// references differ only in the empty test: `max == min` (qkx2) or `max <= min` (qkx3).
    /// `laux` is scratch of `n` vectors.
    @inline(__always)
    static func searchScaleMin(n: Int, nmax: Int32, x: UnsafePointer<V>, w: UnsafePointer<V>, L: UnsafeMutablePointer<V>,
                               laux: UnsafeMutablePointer<V>, rmin: Float, rdelta: Float, nstep: Int, useMad: Bool,
                               emptyWhenNotGreater: Bool) -> (scale: V, theMin: V) {
        var mn = x[0], mx = x[0]
        var sumW = w[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            let xi = x[i]
            mn = select(mask(xi .< mn), xi, mn)
            mx = select(mask(xi .> mx), xi, mx)
            sumW += w[i]
            sumX += w[i] * xi
        }
        mn = zeroing(mask(mn .> 0), mn)
        let empty = mask(emptyWhenNotGreater ? (mx .<= mn) : (mx .== mn))
        let nm = Float(nmax)
        var iscale = V(repeating: nm) / (mx - mn)
        var scale = 1 / iscale
        var best = V()
        for i in 0..<n {
            let l = float(clamp(nearestInt(iscale * (x[i] - mn)), 0, nmax))
            L[i] = l
            var diff = scale * l + mn - x[i]
            diff = useMad ? KQuantLanes.magnitude(diff) : diff * diff
            best += w[i] * diff
        }
        for step in 0...nstep {
            // The reference moves `min` when a step wins: later steps use the new one.
            iscale = V(repeating: rmin + rdelta * Float(step) + nm) / (mx - mn)
            var sumL = V(), sumL2 = V(), sumXL = V()
            for i in 0..<n {
                let l = float(clamp(nearestInt(iscale * (x[i] - mn)), 0, nmax))
                laux[i] = l
                let wl = w[i] * l
                sumL += wl
                sumL2 += wl * l
                sumXL += wl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            let ok = mask(D .> 0)
            if !any(ok) { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            let positive = mask(thisMin .> 0)
            if any(positive) {
                thisMin = zeroing(positive, thisMin)
                thisScale = select(positive, sumXL / sumL2, thisScale)
            }
            var cur = V()
            for i in 0..<n {
                var diff = thisScale * laux[i] + thisMin - x[i]
                diff = useMad ? KQuantLanes.magnitude(diff) : diff * diff
                cur += w[i] * diff
            }
            let take = ok & mask(cur .< best) & ~empty
            if !any(take) { continue }
            for i in 0..<n { L[i] = select(take, laux[i], L[i]) }
            best = select(take, cur, best)
            scale = select(take, thisScale, scale)
            mn = select(take, thisMin, mn)
        }
        if any(empty) {
            for i in 0..<n { L[i] = zeroing(empty, L[i]) }
            scale = zeroing(empty, scale)
        }
        return (scale, -mn)
    }

    /// `make_qx_quants` with `rmse_type` 1 (symmetric, 2·nmax levels) for 16 lanes of 16 elements:
    /// quants 0..<2·nmax into `L` (as floats), returns the scale. `w` nil: the weights are x².
    /// Runs `scalpel_kq_search_symmetric16` (CScalpelKernels: AVX2 when the CPU has it, same bits).
    @inline(__always)
    static func searchSymmetric(n: Int, nmax: Int32, x: UnsafePointer<V>, w: UnsafePointer<V>?, L: UnsafeMutablePointer<V>,
                                portable: Bool = false) -> V {
        precondition(n == 16)
        var scale = V()
        withUnsafeMutablePointer(to: &scale) { sp in
            scalpel_kq_search_symmetric16(floats(x), w.map(floats), nmax, floats(L), floats(sp), portable ? 1 : 0)
        }
        return scale
    }

    /// `make_q3_quants` with `do_rmse` (weights x², up to five passes moving one quant at a time) for 16
    /// lanes of 16 elements: quants 0..<2·nmax into `L` (as floats), returns the scale.
    /// Runs `scalpel_kq_search_q3_16` (CScalpelKernels: AVX2 when the CPU has it, same bits).
    @inline(__always)
    static func searchQ3(n: Int, nmax: Int32, x: UnsafePointer<V>, L: UnsafeMutablePointer<V>, portable: Bool = false) -> V {
        precondition(n == 16)
        var scale = V()
        withUnsafeMutablePointer(to: &scale) { sp in
            scalpel_kq_search_q3_16(floats(x), nmax, floats(L), floats(sp), portable ? 1 : 0)
        }
        return scale
    }

    @inline(__always)
    private static func floats(_ p: UnsafePointer<V>) -> UnsafePointer<Float> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
    }

    @inline(__always)
    private static func floats(_ p: UnsafeMutablePointer<V>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }
}
