/// The per-block arithmetic of ggml's reference quantizers (see `GGMLQuantize` for the rules), on SIMD
/// vectors. The exact rounding and the reductions are in `GGMLBlockSIMD.swift`.
extension GGMLQuantize {
    /// Block: f16 d, int8 qs[32].
    enum Q8_0: GGMLBlockQuantizer {
        static let typeSize = 34, halfFields = 1
        @inline(__always)
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float) {
            let amax = Swift.max(across(max4(fold(v0, max4), fold(v1, max4)), max4),
                                 -across(min4(fold(v0, min4), fold(v1, min4)), min4))
            let d = (amax == 0 ? 0 : amax) / 127  // +0 for an all-zero block, as ggml's fabsf gives
            let id: Float = d != 0 ? 1 / d : 0
            guard id.isFinite else { return zeroQuants(out + 2, 32, d: d) }
            out.storeBytes(of: SIMD16<Int8>(truncatingIfNeeded: roundHalfAwayFromZero(v0 * id)), toByteOffset: 2, as: SIMD16<Int8>.self)
            out.storeBytes(of: SIMD16<Int8>(truncatingIfNeeded: roundHalfAwayFromZero(v1 * id)), toByteOffset: 18, as: SIMD16<Int8>.self)
            return (d, 0)
        }
    }

    /// Block: f16 d, qs[16].
    enum Q4_0: GGMLBlockQuantizer {
        static let typeSize = 18, halfFields = 1
        @inline(__always)
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float) {
            let d = signedAbsMax(v0, v1, x) / -8
            let id: Float = d != 0 ? 1 / d : 0
            guard id.isFinite else { return zeroQuants(out + 2, 16, d: d) }
            let q0 = floorNonNegative(minimum(v0 * id + 8.5, 15))
            let q1 = floorNonNegative(minimum(v1 * id + 8.5, 15))
            out.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: q0 | q1 &<< 4), toByteOffset: 2, as: SIMD16<UInt8>.self)
            return (d, 0)
        }
    }

    /// Block: f16 d, f16 m, qs[16].
    enum Q4_1: GGMLBlockQuantizer {
        static let typeSize = 20, halfFields = 2
        @inline(__always)
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float) {
            let (min, max) = minAndMax(v0, v1, x)
            let d = (max - min) / 15
            let id: Float = d != 0 ? 1 / d : 0
            guard id.isFinite else { return zeroQuants(out + 4, 16, d: d, m: min) }
            let q0 = floorNonNegative(minimum((v0 - min) * id + 0.5, 15))
            let q1 = floorNonNegative(minimum((v1 - min) * id + 0.5, 15))
            out.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: q0 | q1 &<< 4), toByteOffset: 4, as: SIMD16<UInt8>.self)
            return (d, min)
        }
    }

    /// Block: f16 d, u32 qh, qs[16].
    enum Q5_0: GGMLBlockQuantizer {
        static let typeSize = 22, halfFields = 1
        @inline(__always)
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float) {
            let d = signedAbsMax(v0, v1, x) / -16
            let id: Float = d != 0 ? 1 / d : 0
            guard id.isFinite else { return zeroQuants(out + 2, 20, d: d) }
            storeFiveBit(minimum(v0 * id + 16.5, 31), minimum(v1 * id + 16.5, 31), qh: out + 2, qs: out + 6)
            return (d, 0)
        }
    }

    /// Block: f16 d, f16 m, u32 qh, qs[16].
    enum Q5_1: GGMLBlockQuantizer {
        static let typeSize = 24, halfFields = 2
        @inline(__always)
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float) {
            let (min, max) = minAndMax(v0, v1, x)
            let d = (max - min) / 31
            let id: Float = d != 0 ? 1 / d : 0
            guard id.isFinite else { return zeroQuants(out + 4, 20, d: d, m: min) }
            storeFiveBit((v0 - min) * id + 0.5, (v1 - min) * id + 0.5, qh: out + 4, qs: out + 8)
            return (d, min)
        }
    }
}
