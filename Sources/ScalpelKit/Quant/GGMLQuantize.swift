/// ggml's reference quantizers (`quantize_row_*_ref`), bit for bit, for the 32-element block types.
///
/// Same bytes as ggml (x86-64) and gguf-py's `gguf.quants.quantize` for finite inputs. All arithmetic is
/// f32 as in the reference: `x * id` is rounded before any constant is added (no fused multiply-add); the
/// scale `d` (and Q4_1/Q5_1's minimum `m`) is stored as f16 rounded to nearest even, while the quants use
/// the unrounded f32 inverse `id = d != 0 ? 1 / d : 0`.
///
/// - Q8_0: `amax = max |x|`, `d = amax / 127`, `q = roundf(x * id)` (halves away from zero).
/// - Q4_0 / Q5_0: `max` = the first element with the largest `|x|` (+0 when all are zero),
///   `d = max / -8` (`/ -16`), `q = min(15, trunc(x * id + 8.5))` (`min(31, trunc(x * id + 16.5))`).
/// - Q4_1 / Q5_1: `min`, `max` = the first smallest and largest elements (this decides the sign of zero),
///   `d = (max - min) / 15` (`/ 31`), `q = trunc((x - min) * id + 0.5)`, clamped to 15 for Q4_1.
/// - Packing: element j in the low nibble of byte j, element j + 16 in the high nibble; for Q5 types bit 4
///   of element j is bit j of the little-endian u32 `qh`.
///
/// Where the reference converts a non-finite or out-of-range float to an integer (possible only when `id`
/// overflows to infinity, for blocks whose largest magnitude is below about 1e-37), the quant is 0, which
/// is what ggml's x86-64 code produces.
///
/// Inputs containing NaN or infinity are rejected: the reference's result is undefined for them.
public enum GGMLQuantize {
    /// The types `quantize` produces.
    public static let supportedTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    /// Quantizes `src` (a whole number of 32-value blocks, in order) into `dst`, in parallel over fixed
    /// chunks of blocks.
    ///
    /// - Parameter dst: exactly `src.count / 32 * type.typeSize` bytes (any alignment).
    /// - Throws: `ScalpelError.invalid` for an unsupported type, mismatched sizes, or a non-finite input
    ///   (naming its index; `dst` is then partly written).
    public static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer) throws {
        try quantize(type, src, into: dst, blocksPerChunk: GGMLBlockChunks.blocksPerChunk)
    }

    /// `quantize` with a chosen chunk size (tests use small chunks).
    static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer,
                         blocksPerChunk: Int) throws {
        guard let kernel = kernel(for: type) else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "quantizing to \(type.name) is not supported (supported: \(supportedTypes.map(\.name).joined(separator: ", ")))")
        }
        guard src.count % type.blockSize == 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(src.count) values are not a whole number of \(type.blockSize)-value \(type.name) blocks")
        }
        let blocks = src.count / type.blockSize
        guard dst.count == blocks * type.typeSize else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(blocks) \(type.name) blocks take \(blocks * type.typeSize) bytes, but the output has \(dst.count)")
        }
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let finite = GGMLBlockChunks.allSatisfy(blocks: blocks, blocksPerChunk: blocksPerChunk) { kernel(UnsafeRawPointer(s), d, $0) }
        if !finite, let i = src.firstIndex(where: { !$0.isFinite }) {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "value \(src[i]) at index \(i) is not finite; \(type.name) quantization needs finite values")
        }
    }

    /// Quantizes the blocks of a range; false when an input was not finite.
    private typealias Kernel = (UnsafeRawPointer, UnsafeMutableRawPointer, Range<Int>) -> Bool

    private static func kernel(for type: GGMLType) -> Kernel? {
        switch type {
        case .q8_0: return { run(Q8_0.self, $0, $1, $2) }
        case .q4_0: return { run(Q4_0.self, $0, $1, $2) }
        case .q4_1: return { run(Q4_1.self, $0, $1, $2) }
        case .q5_0: return { run(Q5_0.self, $0, $1, $2) }
        case .q5_1: return { run(Q5_1.self, $0, $1, $2) }
        default: return nil
        }
    }

    private typealias F = SIMD16<Float>
    private typealias F4 = SIMD4<Float>
    private typealias I = SIMD16<Int32>
    private typealias U = SIMD16<UInt32>

    /// One block type: its layout and how one block is quantized.
    private protocol BlockKernel {
        /// Bytes per block.
        static var typeSize: Int { get }
        /// The f16 fields at byte offsets 0 (d) and, when 2, 2 (m).
        static var halfFields: Int { get }
        /// Quantizes the block `x` (`v0` = elements 0..<16, `v1` = 16..<32) into `out`, except its f16
        /// fields, whose f32 values it returns (d, m).
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float)
    }

    /// Block: f16 d, int8 qs[32].
    private enum Q8_0: BlockKernel {
        static let typeSize = 34, halfFields = 1
        @inline(__always)
        static func block(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) -> (Float, Float) {
            let amax = Swift.max(across(max4(fold(v0, max4), fold(v1, max4)), max4),
                                 -across(min4(fold(v0, min4), fold(v1, min4)), min4))
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            guard id.isFinite else { return zeroQuants(out + 2, 32, d: d) }
            out.storeBytes(of: SIMD16<Int8>(truncatingIfNeeded: roundHalfAwayFromZero(v0 * id)), toByteOffset: 2, as: SIMD16<Int8>.self)
            out.storeBytes(of: SIMD16<Int8>(truncatingIfNeeded: roundHalfAwayFromZero(v1 * id)), toByteOffset: 18, as: SIMD16<Int8>.self)
            return (d, 0)
        }
    }

    /// Block: f16 d, qs[16].
    private enum Q4_0: BlockKernel {
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
    private enum Q4_1: BlockKernel {
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
    private enum Q5_0: BlockKernel {
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
    private enum Q5_1: BlockKernel {
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

    // MARK: block loop

    /// Quantizes the blocks of `range` with `K`, storing the f16 fields in batches. Returns false when an
    /// input may not be finite (a running sum that overflows also says so; the caller then looks).
    private static func run<K: BlockKernel>(_: K.Type, _ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _ range: Range<Int>) -> Bool {
        let n = GGMLBlockChunks.scaleBatch
        var sum = F()  // stays finite unless an input is NaN or infinite (or the sum overflows)
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: n) { halves in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * n) { fields in
                let h = halves.baseAddress!, f = fields.baseAddress!
                GGMLBlockChunks.batches(range) { r in
                    for (k, b) in r.enumerated() {
                        let v0 = src.loadUnaligned(fromByteOffset: b * 128, as: F.self)
                        let v1 = src.loadUnaligned(fromByteOffset: b * 128 + 64, as: F.self)
                        sum += v0 + v1
                        let (d, m) = K.block(v0, v1, (src + b * 128).assumingMemoryBound(to: Float.self), dst + b * K.typeSize)
                        f[k] = d
                        f[n + k] = m
                    }
                    GGMLBlockChunks.storeHalves(f, halves: h, into: dst, typeSize: K.typeSize, fieldOffset: 0, r)
                    if K.halfFields == 2 {
                        GGMLBlockChunks.storeHalves(f + n, halves: h, into: dst, typeSize: K.typeSize, fieldOffset: 2, r)
                    }
                }
            }
        }
        return !any((sum - sum) .!= 0)  // inf - inf and NaN - NaN are NaN
    }

    /// Quants of a block whose `id` overflowed to infinity (`x * id` is infinite or NaN): ggml's x86-64
    /// conversions give 0 for every element. Returns the block's f16 field values.
    @inline(__always)
    private static func zeroQuants(_ p: UnsafeMutableRawPointer, _ count: Int, d: Float, m: Float = 0) -> (Float, Float) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        return (d, m)
    }

    // MARK: reductions (on 4-lane vectors, which compile to single max/min instructions)

    /// `|v|` (clears the sign bits).
    @inline(__always)
    private static func absolute(_ v: F) -> F {
        unsafeBitCast(unsafeBitCast(v, to: U.self) & 0x7FFF_FFFF, to: F.self)
    }

    @inline(__always)
    private static func max4(_ a: F4, _ b: F4) -> F4 { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    private static func min4(_ a: F4, _ b: F4) -> F4 { a.replacing(with: b, where: b .< a) }

    /// Combines the four 4-lane quarters of `v` with `op`.
    @inline(__always)
    private static func fold(_ v: F, _ op: (F4, F4) -> F4) -> F4 {
        op(op(v.lowHalf.lowHalf, v.lowHalf.highHalf), op(v.highHalf.lowHalf, v.highHalf.highHalf))
    }

    /// Combines the lanes of `v` with `op` (a max or min: the order does not matter).
    @inline(__always)
    private static func across(_ v: F4, _ op: (F4, F4) -> F4) -> Float {
        let a = op(v, F4(v[2], v[3], v[0], v[1]))
        return op(a, F4(a[1], a[0], a[3], a[2]))[0]
    }

    /// `min(v, limit)` lane-wise.
    @inline(__always)
    private static func minimum(_ v: F, _ limit: Float) -> F {
        let c = F4(repeating: limit)
        return F(lowHalf: SIMD8(lowHalf: min4(v.lowHalf.lowHalf, c), highHalf: min4(v.lowHalf.highHalf, c)),
                 highHalf: SIMD8(lowHalf: min4(v.highHalf.lowHalf, c), highHalf: min4(v.highHalf.highHalf, c)))
    }

    /// Bit j set where lane j of `mask` is (lanes of the second half: bits 16..<32).
    @inline(__always)
    private static func laneBits(_ first: SIMDMask<I>, _ second: SIMDMask<I>) -> UInt32 {
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
    private static func signedAbsMax(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>) -> Float {
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
    private static func minAndMax(_ v0: F, _ v1: F, _ x: UnsafePointer<Float>) -> (Float, Float) {
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
    private static func floorNonNegative(_ t: F) -> I {
        let shifted = t + 8_388_608
        let nearestEven = shifted - 8_388_608
        return unsafeBitCast(shifted, to: I.self) &- 0x4B00_0000 &- I(repeating: 0).replacing(with: 1, where: nearestEven .> t)
    }

    /// `roundf(y)` (halves away from zero) for |y| < 2^23: `trunc(|y| + 0.49999997)` with y's sign, where
    /// 0.49999997 is the float just below one half (exact on every tie and next to it).
    @inline(__always)
    private static func roundHalfAwayFromZero(_ y: F) -> I {
        let q = floorNonNegative(absolute(y) + 0.49999997)
        let sign = unsafeBitCast(y, to: I.self) &>> 31
        return (q ^ sign) &- sign
    }

    // MARK: packing

    /// Stores 5-bit quants `floor(y)` (y already clamped to 0..<32): low nibbles packed into `qs` (element j
    /// low, j + 16 high), bit 4 of element j into bit j of the u32 at `qh`.
    @inline(__always)
    private static func storeFiveBit(_ y0: F, _ y1: F, qh: UnsafeMutableRawPointer, qs: UnsafeMutableRawPointer) {
        let nibble = I(repeating: 0x0F)
        let q0 = floorNonNegative(y0), q1 = floorNonNegative(y1)
        qs.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: (q0 & nibble) | (q1 & nibble) &<< 4), as: SIMD16<UInt8>.self)
        qh.storeBytes(of: laneBits(y0 .>= 16, y1 .>= 16).littleEndian, as: UInt32.self)
    }
}
