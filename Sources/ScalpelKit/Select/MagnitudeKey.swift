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
    @inline(__always)
    static func of(bits: SIMD16<UInt32>) -> SIMD16<UInt32> {
        let a = bits & 0x7FFF_FFFF
        return a.replacing(with: nan, where: a .> infinity)
    }

    /// The magnitude a key stands for (NaN for the NaN key).
    @inline(__always)
    public static func magnitude(_ key: UInt32) -> Float { Float(bitPattern: key) }

    /// The key of an f32 value.
    public static func of(_ value: Float) -> UInt32 { of(bits: value.bitPattern) }
}
