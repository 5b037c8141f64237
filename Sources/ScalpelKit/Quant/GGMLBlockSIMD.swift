/// SIMD building blocks for ggml's block quantizers: reductions that keep ggml's sequential-scan
/// semantics, and float-to-integer rounding done with exact float arithmetic and bit patterns.
///
/// Swift compiles its 4-lane float selects to single max/min instructions and 16-lane arithmetic to plain
/// vector code, but has no vectorized float-to-integer conversion: the integers are read from the
/// mantissa bits after adding 2^23.
extension GGMLBlockQuantizer {
    typealias F = SIMD16<Float>
    typealias F4 = SIMD4<Float>
    typealias I = SIMD16<Int32>
    typealias U = SIMD16<UInt32>

    /// Quants of a block whose `id` overflowed to infinity (`x * id` is infinite or NaN): ggml's x86-64
    /// conversions give 0 for every element. Returns the block's f16 field values.
    @inline(__always)
    static func zeroQuants(_ p: UnsafeMutableRawPointer, _ count: Int, d: Float, m: Float = 0) -> (Float, Float) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        return (d, m)
    }

    // MARK: reductions (on 4-lane vectors, which compile to single max/min instructions)

    /// `|v|` (clears the sign bits).
    @inline(__always)
    static func absolute(_ v: F) -> F {
        unsafeBitCast(unsafeBitCast(v, to: U.self) & 0x7FFF_FFFF, to: F.self)
    }

    @inline(__always)
    static func max4(_ a: F4, _ b: F4) -> F4 { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    static func min4(_ a: F4, _ b: F4) -> F4 { a.replacing(with: b, where: b .< a) }

    /// Combines the four 4-lane quarters of `v` with `op`.
    @inline(__always)
    static func fold(_ v: F, _ op: (F4, F4) -> F4) -> F4 {
        op(op(v.lowHalf.lowHalf, v.lowHalf.highHalf), op(v.highHalf.lowHalf, v.highHalf.highHalf))
    }

    /// Combines the lanes of `v` with `op` (a max or min: the order does not matter).
    @inline(__always)
    static func across(_ v: F4, _ op: (F4, F4) -> F4) -> Float {
        let a = op(v, F4(v[2], v[3], v[0], v[1]))
        return op(a, F4(a[1], a[0], a[3], a[2]))[0]
    }

    /// `min(v, limit)` lane-wise.
    @inline(__always)
    static func minimum(_ v: F, _ limit: Float) -> F {
        let c = F4(repeating: limit)
        return F(lowHalf: SIMD8(lowHalf: min4(v.lowHalf.lowHalf, c), highHalf: min4(v.lowHalf.highHalf, c)),
                 highHalf: SIMD8(lowHalf: min4(v.highHalf.lowHalf, c), highHalf: min4(v.highHalf.highHalf, c)))
    }

    /// Bit j set where lane j of `mask` is (lanes of the second half: bits 16..<32).
    @inline(__always)
    static func laneBits(_ first: SIMDMask<I>, _ second: SIMDMask<I>) -> UInt32 {
        let bits = U(1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7,
                     1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15)
        let zero = U(repeating: 0)
        let v = zero.replacing(with: bits, where: first) | zero.replacing(with: bits &<< 16, where: second)
        let v8 = v.lowHalf | v.highHalf
        let v4 = v8.lowHalf | v8.highHalf
        return v4[0] | v4[1] | v4[2] | v4[3]
    }

    /// Q4_0/Q5_0's `max`: the first element with the largest magnitude, or +0 when all are zero. From the
    /// largest and smallest element, unless they have the same magnitude (then the first one counts).
    @inline(__always)
    static func signedAbsMax(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>) -> Float {
        let max = across(max4(fold(v0, max4), fold(v1, max4)), max4)
        let min = across(min4(fold(v0, min4), fold(v1, min4)), min4)
        if max > -min { return max }
        if max < -min { return min }
        guard max != 0 else { return 0 }
        return x[laneBits(absolute(v0) .== max, absolute(v1) .== max).trailingZeroBitCount]
    }

    /// Q4_1/Q5_1's `min` and `max`: the first smallest and the first largest element. Equal values have
    /// equal bits except for zeros, so only a zero extreme needs a look for the first zero.
    @inline(__always)
    static func minAndMax(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>) -> (Float, Float) {
        var min = across(min4(fold(v0, min4), fold(v1, min4)), min4)
        var max = across(max4(fold(v0, max4), fold(v1, max4)), max4)
        if min == 0 || max == 0 {
            let firstZero = x[laneBits(v0 .== 0, v1 .== 0).trailingZeroBitCount]
            if min == 0 { min = firstZero }
            if max == 0 { max = firstZero }
        }
        return (min, max)
    }

    // MARK: rounding (exact for the ranges the quantizers produce; no float-to-int conversion needed)

    /// `floor(t)` for 0 <= t < 2^23: adding 2^23 rounds to nearest even and leaves the integer in the low
    /// mantissa bits; one is taken back where that rounded up.
    @inline(__always)
    static func floorNonNegative(_ t: F) -> I {
        let shifted = t + 8_388_608
        let nearestEven = shifted - 8_388_608
        return unsafeBitCast(shifted, to: I.self) &- 0x4B00_0000 &- I(repeating: 0).replacing(with: 1, where: nearestEven .> t)
    }

    /// `roundf(y)` (halves away from zero) for |y| < 2^23: `trunc(|y| + 0.49999997)` with y's sign, where
    /// 0.49999997 is the float just below one half (exact on every tie and next to it).
    @inline(__always)
    static func roundHalfAwayFromZero(_ y: F) -> I {
        let q = floorNonNegative(absolute(y) + 0.49999997)
        let sign = unsafeBitCast(y, to: I.self) &>> 31
        return (q ^ sign) &- sign
    }

    // MARK: packing

    /// Stores 5-bit quants `floor(y)` (y already clamped to 0..<32): low nibbles packed into `qs` (element j
    /// low, j + 16 high), bit 4 of element j into bit j of the u32 at `qh`.
    @inline(__always)
    static func storeFiveBit(_ y0: F, _ y1: F, qh: UnsafeMutableRawPointer, qs: UnsafeMutableRawPointer) {
        let nibble = I(repeating: 0x0F)
        let q0 = floorNonNegative(y0), q1 = floorNonNegative(y1)
        qs.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: (q0 & nibble) | (q1 & nibble) &<< 4), as: SIMD16<UInt8>.self)
        qh.storeBytes(of: laneBits(y0 .>= 16, y1 .>= 16).littleEndian, as: UInt32.self)
    }
}
