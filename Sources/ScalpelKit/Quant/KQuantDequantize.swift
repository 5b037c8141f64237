import CScalpelKernels

/// Q2_K and Q3_K to f32, with the arithmetic of gguf-py's `gguf.quants.dequantize` and ggml's
/// `dequantize_row_q{2,3}_K` (f32 products, no fused multiply-add):
///
/// - Q2_K: `(d · (s & 15)) · q − dmin · (s >> 4)` per 16-element sub-block, q = bits 2k of qs[32h + l]
///   for element 128h + 32k + l.
/// - Q3_K: `(d · (scale − 32)) · (q − 4·(1 − h))`, q the two low bits as in Q2_K, h bit k of
///   hmask[l] for element 32k + l, scale the 6-bit value of sub-block element/16.
extension GGMLDequantize {
    /// Block: scales[16], qs[64], f16 d @80, f16 dmin @82.
    static func q2_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        for b in range {
            let p = src + 84 * b
            let d = half(p, 80), dmin = half(p, 82)
            for j in 0..<16 {
                let s = p.load(fromByteOffset: j, as: UInt8.self)
                let dl = SIMD16<Float>(repeating: d * Float(s & 0xF)), ml = SIMD16<Float>(repeating: dmin * Float(s >> 4))
                let h = j / 8, k = (j % 8) / 2, l0 = (j % 2) * 16
                let qs = p.loadUnaligned(fromByteOffset: 16 + 32 * h + l0, as: SIMD16<UInt8>.self)
                let q = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: (qs &>> UInt8(2 * k)) & 3))
                UnsafeMutableRawPointer(dst + 256 * b + 16 * j).storeBytes(of: dl * q - ml, as: SIMD16<Float>.self)
            }
        }
    }

    /// Block: hmask[32], qs[64], scales[12], f16 d @108.
    static func q3_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        for b in range {
            let p = src + 110 * b
            let d = half(p, 108)
            func byte(_ i: Int) -> UInt8 { p.load(fromByteOffset: 96 + i, as: UInt8.self) }
            for j in 0..<16 {
                let low = j < 8 ? byte(j) & 0xF : byte(j - 8) >> 4
                let scale = Int32(low | (((byte(8 + j % 4) >> UInt8(2 * (j / 4))) & 3) << 4)) - 32
                let dl = SIMD16<Float>(repeating: d * Float(scale))
                let h = j / 8, k = (j % 8) / 2, l0 = (j % 2) * 16
                let qs = p.loadUnaligned(fromByteOffset: 32 + 32 * h + l0, as: SIMD16<UInt8>.self)
                let m = (16 * j) / 32  // hmask bit of these elements
                let hm = p.loadUnaligned(fromByteOffset: l0, as: SIMD16<UInt8>.self)
                let high = SIMD16<Int32>(truncatingIfNeeded: (hm &>> UInt8(m)) & 1)
                let q = SIMD16<Int32>(truncatingIfNeeded: (qs &>> UInt8(2 * k)) & 3) &- ((1 &- high) &<< 2)
                UnsafeMutableRawPointer(dst + 256 * b + 16 * j).storeBytes(of: dl * SIMD16<Float>(q), as: SIMD16<Float>.self)
            }
        }
    }

    /// The little-endian f16 at `offset`, as f32.
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        var h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        var f: Float = 0
        scalpel_f16_to_f32(&h, &f, 1)
        return f
    }
}
