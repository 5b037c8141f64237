/// Dequantizes ggml block-quantized data to f32, with the arithmetic of gguf-py's
/// `gguf.quants.dequantize` (bit for bit: products and sums in f32, no fused multiply-add).
///
/// - Q8_0: `q * d`. Q4_0: `(q - 8) * d`. Q5_0: `(q - 16) * d`. Q4_1, Q5_1: `q * d + m`.
/// - Q4_K, Q5_K: `(d * scale) * q - (dmin * min)` per 32-element sub-block (6-bit scales and mins).
///   Q6_K: `(d * scale) * (q - 32)` per 16-element sub-block (int8 scales). Q2_K and Q3_K: see
///   `KQuantDequantize.swift`; IQ4_NL and IQ4_XS: `KQuantIQ4Dequantize.swift`.
///
/// The f16 scales convert exactly; an infinite or NaN scale gives what IEEE arithmetic gives (NaN for
/// `inf * 0`), as in gguf-py.
public enum GGMLDequantize {
    /// The types `dequantize` accepts.
    public static let supportedTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs]

    /// Dequantizes whole blocks from `src` into `dst`, in parallel over fixed chunks of blocks.
    ///
    /// - Parameters:
    ///   - src: a whole number of `type.typeSize`-byte blocks (any alignment).
    ///   - dst: exactly `type.blockSize` floats per block.
    /// - Throws: `ScalpelError.invalid` for an unsupported type or mismatched sizes.
    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) throws {
        try dequantize(type, src, into: dst, blocksPerChunk: GGMLBlockChunks.blocksPerChunk)
    }

    /// `dequantize` with a chosen chunk size (tests use small chunks).
    static func dequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>,
                           blocksPerChunk: Int) throws {
        guard let kernel = kernel(for: type) else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "dequantizing \(type.name) is not supported (supported: \(supportedTypes.map(\.name).joined(separator: ", ")))")
        }
        guard src.count % type.typeSize == 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(src.count) bytes are not a whole number of \(type.typeSize)-byte \(type.name) blocks")
        }
        let blocks = src.count / type.typeSize
        guard dst.count == blocks * type.blockSize else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(blocks) \(type.name) blocks hold \(blocks * type.blockSize) values, but the output has room for \(dst.count)")
        }
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        GGMLBlockChunks.forEach(blocks: blocks, blocksPerChunk: blocksPerChunk) { kernel(s, d, $0) }
    }

    private typealias Kernel = (UnsafeRawPointer, UnsafeMutablePointer<Float>, Range<Int>) -> Void

    private static func kernel(for type: GGMLType) -> Kernel? {
        switch type {
        case .q8_0: return q8_0
        case .q4_0: return q4_0
        case .q4_1: return q4_1
        case .q5_0: return q5_0
        case .q5_1: return q5_1
        case .q2_K: return q2_K
        case .q3_K: return q3_K
        case .q4_K: return q4_K
        case .q5_K: return q5_K
        case .q6_K: return q6_K
        case .iq4_nl: return iq4_nl
        case .iq4_xs: return iq4_xs
        default: return nil
        }
    }

    // MARK: 32-element blocks

    /// Block: f16 d, int8 qs[32].
    private static func q8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 34, fields: [0], range) { b, s in
            let p = src + b * 34 + 2
            let d = SIMD16<Float>(repeating: s[0])
            let q0 = p.loadUnaligned(as: SIMD16<Int8>.self), q1 = p.loadUnaligned(fromByteOffset: 16, as: SIMD16<Int8>.self)
            store(SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q0)) * d, dst + b * 32)
            store(SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q1)) * d, dst + b * 32 + 16)
        }
    }

    /// Block: f16 d, qs[16] (element j in the low nibble of byte j, element j+16 in the high nibble).
    private static func q4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 18, fields: [0], range) { b, s in
            let (lo, hi) = nibbles(src + b * 18 + 2)
            let d = SIMD16<Float>(repeating: s[0]), eight = SIMD16<Int32>(repeating: 8)
            store(SIMD16<Float>(lo &- eight) * d, dst + b * 32)
            store(SIMD16<Float>(hi &- eight) * d, dst + b * 32 + 16)
        }
    }

    /// Block: f16 d, f16 m, qs[16].
    private static func q4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 20, fields: [0, 2], range) { b, s in
            let (lo, hi) = nibbles(src + b * 20 + 4)
            let d = SIMD16<Float>(repeating: s[0]), m = SIMD16<Float>(repeating: s[1])
            store(SIMD16<Float>(lo) * d + m, dst + b * 32)
            store(SIMD16<Float>(hi) * d + m, dst + b * 32 + 16)
        }
    }

    /// Block: f16 d, u32 qh (bit j = fifth bit of element j), qs[16].
    private static func q5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 22, fields: [0], range) { b, s in
            let p = src + b * 22
            let (lo, hi) = fiveBit(p + 6, qh: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
            let d = SIMD16<Float>(repeating: s[0]), sixteen = SIMD16<Int32>(repeating: 16)
            store(SIMD16<Float>(lo &- sixteen) * d, dst + b * 32)
            store(SIMD16<Float>(hi &- sixteen) * d, dst + b * 32 + 16)
        }
    }

    /// Block: f16 d, f16 m, u32 qh, qs[16].
    private static func q5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 24, fields: [0, 2], range) { b, s in
            let p = src + b * 24
            let (lo, hi) = fiveBit(p + 8, qh: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
            let d = SIMD16<Float>(repeating: s[0]), m = SIMD16<Float>(repeating: s[1])
            store(SIMD16<Float>(lo) * d + m, dst + b * 32)
            store(SIMD16<Float>(hi) * d + m, dst + b * 32 + 16)
        }
    }

    // MARK: K-quants (256-element super-blocks)

    /// Block: f16 d, f16 dmin, scales[12] (eight 6-bit scale/min pairs), qs[128] (four 64-element
    /// groups: 32 low nibbles, then 32 high nibbles).
    private static func q4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 144, fields: [0, 2], range) { b, s in
            let p = src + b * 144
            let (sc, mn) = scalesAndMins(p + 4)
            for g in 0..<4 {
                let (lo, hi) = nibbles32(p + 16 + 32 * g)
                let out = dst + b * 256 + 64 * g
                kBlock(lo, d: s[0] * sc[2 * g], m: s[1] * mn[2 * g], out)
                kBlock(hi, d: s[0] * sc[2 * g + 1], m: s[1] * mn[2 * g + 1], out + 32)
            }
        }
    }

    /// Block: f16 d, f16 dmin, scales[12], qh[32] (bit 2g / 2g+1 of byte l: fifth bit of element l of
    /// sub-block 2g / 2g+1), qs[128].
    private static func q5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 176, fields: [0, 2], range) { b, s in
            let p = src + b * 176
            let (sc, mn) = scalesAndMins(p + 4)
            let qh0 = SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self))
            let qh1 = SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt8>.self))
            for g in 0..<4 {
                var (lo, hi) = nibbles32(p + 48 + 32 * g)
                let one = SIMD16<Int32>(repeating: 1)
                let sLo = Int32(2 * g), sHi = Int32(2 * g + 1)
                lo.0 |= ((qh0 &>> sLo) & one) &<< 4
                lo.1 |= ((qh1 &>> sLo) & one) &<< 4
                hi.0 |= ((qh0 &>> sHi) & one) &<< 4
                hi.1 |= ((qh1 &>> sHi) & one) &<< 4
                let out = dst + b * 256 + 64 * g
                kBlock(lo, d: s[0] * sc[2 * g], m: s[1] * mn[2 * g], out)
                kBlock(hi, d: s[0] * sc[2 * g + 1], m: s[1] * mn[2 * g + 1], out + 32)
            }
        }
    }

    /// Block: ql[128], qh[64], int8 scales[16], f16 d. Each 128-element half n uses ql[64n..<64n+64],
    /// qh[32n..<32n+32]: element l (0..<32) of quarter k takes nibble (k >= 2) of ql[l + 32(k & 1)] and
    /// bits 2k, 2k+1 of qh[l], minus 32; scale index 8n + 2k + l/16.
    private static func q6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        withScales(src, typeSize: 210, fields: [208], range) { b, s in
            let p = src + b * 210
            let d = s[0]
            for n in 0..<2 {
                let ql = p + 64 * n, qh = p + 128 + 32 * n, scales = p + 192 + 8 * n
                let (a, c) = nibbles32(ql)        // quarter 0 low nibbles, quarter 2 high nibbles
                let (a2, c2) = nibbles32(ql + 32) // quarter 1, quarter 3
                let h0 = SIMD16<Int32>(truncatingIfNeeded: qh.loadUnaligned(as: SIMD16<UInt8>.self))
                let h1 = SIMD16<Int32>(truncatingIfNeeded: qh.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self))
                func quarter(_ k: Int, _ low: (SIMD16<Int32>, SIMD16<Int32>)) {
                    let three = SIMD16<Int32>(repeating: 3), bias = SIMD16<Int32>(repeating: 32)
                    let shift = Int32(2 * k)
                    let q0 = (low.0 | (((h0 &>> shift) & three) &<< 4)) &- bias
                    let q1 = (low.1 | (((h1 &>> shift) & three) &<< 4)) &- bias
                    let s0 = Float(scales.load(fromByteOffset: 2 * k, as: Int8.self))
                    let s1 = Float(scales.load(fromByteOffset: 2 * k + 1, as: Int8.self))
                    let out = dst + b * 256 + 128 * n + 32 * k
                    store(SIMD16<Float>(q0) * SIMD16<Float>(repeating: d * s0), out)
                    store(SIMD16<Float>(q1) * SIMD16<Float>(repeating: d * s1), out + 16)
                }
                quarter(0, a)
                quarter(1, a2)
                quarter(2, c)
                quarter(3, c2)
            }
        }
    }

    // MARK: helpers

    /// Calls `body(block, scales)` for each block of `range`, with the block's f16 fields at byte offsets
    /// `fields` already converted to f32 (`scales[i]` for `fields[i]`).
    @inline(__always)
    private static func withScales(_ src: UnsafeRawPointer, typeSize: Int, fields: [Int], _ range: Range<Int>,
                                   _ body: (Int, UnsafePointer<Float>) -> Void) {
        let n = GGMLBlockChunks.scaleBatch
        let f = fields.count
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: n) { halves in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n * f) { values in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: f) { scales in
                    GGMLBlockChunks.batches(range) { r in
                        for (i, field) in fields.enumerated() {
                            GGMLBlockChunks.loadHalves(src, typeSize: typeSize, fieldOffset: field, r,
                                                       halves: halves.baseAddress!, into: values.baseAddress! + i * n)
                        }
                        for (k, b) in r.enumerated() {
                            for i in 0..<f { scales[i] = values[i * n + k] }
                            body(b, UnsafePointer(scales.baseAddress!))
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    /// The low and high nibbles of 16 bytes.
    @inline(__always)
    private static func nibbles(_ p: UnsafeRawPointer) -> (SIMD16<Int32>, SIMD16<Int32>) {
        let q = SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD16<UInt8>.self))
        return (q & 0x0F, q &>> 4)
    }

    /// The low and high nibbles of 32 bytes, 16 lanes at a time.
    @inline(__always)
    private static func nibbles32(_ p: UnsafeRawPointer) -> ((SIMD16<Int32>, SIMD16<Int32>), (SIMD16<Int32>, SIMD16<Int32>)) {
        let (lo0, hi0) = nibbles(p), (lo1, hi1) = nibbles(p + 16)
        return ((lo0, lo1), (hi0, hi1))
    }

    /// The 5-bit values of a Q5 block: nibbles from `qs`, bit j of `qh` as bit 4 of element j.
    @inline(__always)
    private static func fiveBit(_ qs: UnsafeRawPointer, qh: UInt32) -> (SIMD16<Int32>, SIMD16<Int32>) {
        let (lo, hi) = nibbles(qs)
        let bits = SIMD16<Int32>(repeating: Int32(bitPattern: qh))
        let lowBits = SIMD16<Int32>(1, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7,
                                    1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15)
        let highBits = lowBits &<< 16
        let zero = SIMD16<Int32>(repeating: 0)
        let h0 = zero.replacing(with: 16, where: (bits & lowBits) .== lowBits)
        let h1 = zero.replacing(with: 16, where: (bits & highBits) .== highBits)
        return (lo | h0, hi | h1)
    }

    /// The eight 6-bit scales and mins of a Q4_K/Q5_K block (ggml's `get_scale_min_k4`), as floats.
    @inline(__always)
    private static func scalesAndMins(_ q: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>) {
        var sc = SIMD8<Float>(), mn = SIMD8<Float>()
        func b(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        for j in 0..<8 {
            if j < 4 {
                sc[j] = Float(b(j) & 63)
                mn[j] = Float(b(j + 4) & 63)
            } else {
                sc[j] = Float((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4))
                mn[j] = Float((b(j + 4) >> 4) | ((b(j) >> 6) << 4))
            }
        }
        return (sc, mn)
    }

    /// 32 outputs `d * q - m`.
    @inline(__always)
    private static func kBlock(_ q: (SIMD16<Int32>, SIMD16<Int32>), d: Float, m: Float, _ out: UnsafeMutablePointer<Float>) {
        let dv = SIMD16<Float>(repeating: d), mv = SIMD16<Float>(repeating: m)
        store(dv * SIMD16<Float>(q.0) - mv, out)
        store(dv * SIMD16<Float>(q.1) - mv, out + 16)
    }
}
