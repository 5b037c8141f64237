/// The order in which magnitude pruning removes values, as one unsigned integer per value.
///
/// The key of a value is the bit pattern of its f32 magnitude `|w|` (the f32 bits with the sign
/// cleared). For non-negative floats the bit patterns order exactly as the numbers do, so comparing keys
/// compares magnitudes, and +0 and -0 share the key 0. Every NaN gets the one key `nan`, above +Inf:
/// NaN counts as the largest magnitude (it is pruned last, after every number), and NaNs tie with each
/// other whatever their payload, so ties among them are broken by position like any other tie.
public enum MagnitudeKey {
    /// The key of ±Inf.
    public static let infinity: UInt32 = 0x7F80_0000
    /// The key of every NaN (the largest key).
    public static let nan: UInt32 = 0x7FC0_0000

    /// The key of a value given as its f32 bit pattern.
    @inline(__always)
    public static func of(bits: UInt32) -> UInt32 {
        let a = bits & 0x7FFF_FFFF
        return a > infinity ? nan : a
    }

    /// The keys of 16 values given as f32 bit patterns.
    ///
    /// Written with lane-wise integer arithmetic only: the stdlib's `replacing(with:where:)` and mask
    /// comparisons compile to per-lane loops, these to vector instructions.
    @inline(__always)
    static func of(bits: SIMD16<UInt32>) -> SIMD16<UInt32> {
        let a = bits & 0x7FFF_FFFF
        return a ^ ((a ^ nan) & allOnes(below(SIMD16(repeating: infinity), a)))
    }

    /// 1 in the lanes where `a < b`, else 0, for keys (values below 2^31).
    @inline(__always)
    static func below(_ a: SIMD16<UInt32>, _ b: SIMD16<UInt32>) -> SIMD16<UInt32> {
        (a &- b) &>> 31
    }

    /// 1 in the lanes where `a == b`, else 0, for keys (values below 2^31).
    @inline(__always)
    static func equal(_ a: SIMD16<UInt32>, _ b: SIMD16<UInt32>) -> SIMD16<UInt32> {
        1 &- ((SIMD16(repeating: 0) &- (a ^ b)) &>> 31)
    }

    /// All ones in the lanes that hold 1, zero in the lanes that hold 0.
    @inline(__always)
    static func allOnes(_ bit: SIMD16<UInt32>) -> SIMD16<UInt32> {
        SIMD16(repeating: 0) &- bit
    }

    /// The magnitude a key stands for (NaN for the NaN key).
    @inline(__always)
    public static func magnitude(_ key: UInt32) -> Float { Float(bitPattern: key) }

    /// The key of an f32 value.
    public static func of(_ value: Float) -> UInt32 { of(bits: value.bitPattern) }
}
