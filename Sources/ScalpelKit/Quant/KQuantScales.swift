/// The second-level searches of ggml's K-quants: quantizing a super-block's 8 or 16 sub-block scales (and
/// mins) to 4 or 6 bits. Scalar, in the reference's order (f32, no fused multiply-add), since there are
/// only 8 or 16 values per super-block.
enum KQuantScales {
    /// f32 -> f16 (round to nearest even) -> f32: the value a stored f16 field reads back as.
    @inline(__always)
    static func half(_ x: Float) -> Float { Float(Float16(x)) }

    /// The f16 bits of `x` (round to nearest even), little-endian order for storing.
    @inline(__always)
    static func halfBits(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// `make_qp_quants`: unsigned quants 0...nmax of the non-negative `x[0..<n]` with weights `qw`, a
    /// grid search over nine scales then up to five passes moving one quant at a time. Writes `L` (as the
    /// reference's `uint8_t`, wrapping) and returns the scale.
    static func searchUnsigned(n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<UInt8>,
                               qw: UnsafePointer<Float>) -> Float {
        var mx: Float = 0
        for i in 0..<n { mx = mx > x[i] ? mx : x[i] }
        if mx < 1e-15 {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let nm = Float(nmax)
        var iscale = nm / mx
        for i in 0..<n { L[i] = UInt8(truncatingIfNeeded: KQuantLanes.nearestInt(iscale * x[i])) }
        let scale = 1 / iscale
        var bestMSE: Float = 0
        for i in 0..<n {
            let diff = x[i] - scale * Float(L[i])
            bestMSE += qw[i] * diff * diff
        }
        for step in -4...4 where step != 0 {
            let iscaleStep = (0.1 * Float(step) + nm) / mx
            let scaleStep = 1 / iscaleStep
            var mse: Float = 0
            for i in 0..<n {
                let l = min(nmax, KQuantLanes.nearestInt(iscaleStep * x[i]))
                let diff = x[i] - scaleStep * Float(l)
                mse += qw[i] * diff * diff
            }
            if mse < bestMSE {
                bestMSE = mse
                iscale = iscaleStep
            }
        }
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0..<n {
            let l = min(nmax, KQuantLanes.nearestInt(iscale * x[i]))
            L[i] = UInt8(truncatingIfNeeded: l)
            let fl = Float(l)
            sumLX += qw[i] * x[i] * fl
            sumL2 += qw[i] * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = qw[i], li = Float(L[i])
                var slx = sumLX - w * x[i] * li
                var sl2 = sumL2 - w * li * li
                if slx > 0 && sl2 > 0 {
                    let newL = min(nmax, KQuantLanes.nearestInt(x[i] * sl2 / slx))
                    if newL != Int32(L[i]) {
                        let fl = Float(newL)
                        slx += w * x[i] * fl
                        sl2 += w * fl * fl
                        if slx * slx * sumL2 > sumLX * sumLX * sl2 {
                            L[i] = UInt8(truncatingIfNeeded: newL)
                            sumLX = slx
                            sumL2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        return sumL2 > 0 ? sumLX / sumL2 : 0
    }

    /// `make_qx_quants` with `rmse_type` 1 and weights `qw`, scalar: signed quants stored as
    /// nmax + l in 0..<2·nmax into `L`; returns the scale.
    static func searchSymmetric(n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<Int8>,
                                qw: UnsafePointer<Float>) -> Float {
        var mx: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax { amax = ax; mx = x[i] }
        }
        if amax < 1e-15 {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let nm = Float(nmax)
        @inline(__always) func q(_ iscale: Float, _ i: Int) -> Int32 {
            max(-nmax, min(nmax - 1, KQuantLanes.nearestInt(iscale * x[i])))
        }
        var iscale = Float(-nmax) / mx
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0..<n {
            let l = q(iscale, i)
            L[i] = Int8(truncatingIfNeeded: l + nmax)
            let fl = Float(l)
            sumLX += qw[i] * x[i] * fl
            sumL2 += qw[i] * fl * fl
        }
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            iscale = -(nm + 0.1 * Float(step)) / mx
            sumLX = 0; sumL2 = 0
            for i in 0..<n {
                let fl = Float(q(iscale, i))
                sumLX += qw[i] * x[i] * fl
                sumL2 += qw[i] * fl * fl
            }
            if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
                for i in 0..<n { L[i] = Int8(truncatingIfNeeded: nmax + q(iscale, i)) }
                scale = sumLX / sumL2
                best = scale * sumLX
            }
        }
        return scale
    }
}
