import CScalpelKernels

/// IQ4_NL and IQ4_XS to f32, with the arithmetic of ggml's `dequantize_row_iq4_nl` /
/// `dequantize_row_iq4_xs` and gguf-py's `gguf.quants.dequantize` (one f32 product per value, the scale
/// exact from its f16):
///
/// - IQ4_NL (18 bytes: f16 d, qs[16]): `d · grid[q]`, q the low nibble of byte j for element j and the
///   high nibble for element j + 16.
/// - IQ4_XS (136 bytes: f16 d, u16 scales_h, scales_l[4], qs[128]): per sub-block ib of 32,
///   `ls = (scales_l[ib/2] >> 4·(ib%2)) & 15 | ((scales_h >> 2·ib) & 3) << 4`, `dl = d · (ls − 32)` (f32),
///   then `dl · grid[q]` with the IQ4_NL nibble order within the sub-block's 16 bytes.
///
/// `grid` is ggml's `kvalues_iq4nl` (`KQuantIQ4.grid`).
extension GGMLDequantize {
    /// Block: f16 d @0, qs[16] @2.
    static func iq4_nl(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withGrid { g in
            for b in range {
                let p = src + 18 * b
                subBlock(p + 2, scale: half(p, 0), g, dst + 32 * b)
            }
        }
    }

    /// Block: f16 d @0, u16 scales_h @2, scales_l[4] @4, qs[128] @8.
    static func iq4_xs(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withGrid { g in
            for b in range {
                let p = src + 136 * b
                let d = half(p, 0)
                let scalesH = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                for ib in 0..<8 {
                    let low = (p.load(fromByteOffset: 4 + ib / 2, as: UInt8.self) >> UInt8(4 * (ib % 2))) & 0xF
                    let ls = Int32(low) | Int32((scalesH >> UInt16(2 * ib)) & 3) << 4
                    subBlock(p + 8 + 16 * ib, scale: d * Float(ls - 32), g, dst + 256 * b + 32 * ib)
                }
            }
        }
    }

    /// 32 values `scale · grid[q]` from the 16 bytes at `qs` (low nibbles first, then high nibbles).
    @inline(__always)
    private static func subBlock(_ qs: UnsafeRawPointer, scale: Float, _ g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        for j in 0..<16 {
            let q = qs.load(fromByteOffset: j, as: UInt8.self)
            out[j] = scale * g[Int(q & 0xF)]
            out[j + 16] = scale * g[Int(q >> 4)]
        }
    }

    /// Calls `body` with the grid as floats.
    @inline(__always)
    private static func withGrid(_ body: (UnsafePointer<Float>) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { buf in
            for (i, v) in KQuantIQ4.grid.enumerated() { buf[i] = Float(v) }
            body(buf.baseAddress!)
        }
    }
}
