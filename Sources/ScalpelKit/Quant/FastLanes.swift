/// SIMD conversions the standard library leaves to slow generic code: exact for the small integers the
/// int8/int4 kernels produce (|v| < 2^22), by the float-magic-number method (the f32 addition rounds to
/// nearest even).
enum FastLanes {
    static let magic: Float = 12582912  // 1.5 * 2^23

    /// `Int32(v.rounded(.toNearestOrEven))` lane by lane, for |v| < 2^22.
    @inline(__always)
    static func nearestInt(_ v: SIMD16<Float>) -> SIMD16<Int32> {
        let t = v + SIMD16<Float>(repeating: magic)
        return (unsafeBitCast(t, to: SIMD16<Int32>.self) & 0x007f_ffff) &- 0x0040_0000
    }

    /// `Float(i)` lane by lane, for |i| < 2^22.
    @inline(__always)
    static func float(_ i: SIMD16<Int32>) -> SIMD16<Float> {
        unsafeBitCast(i &+ 0x4B40_0000, to: SIMD16<Float>.self) - SIMD16<Float>(repeating: magic)
    }

    @inline(__always)
    static func max(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { KQuantLanes.select(KQuantLanes.mask(b .> a), b, a) }

    @inline(__always)
    static func min(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { KQuantLanes.select(KQuantLanes.mask(b .< a), b, a) }
}
