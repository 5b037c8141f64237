import CScalpelKernels

/// Rounding of SIMD lanes and scalars to the weight dtype (`DTypeRounding`), as a type so that the
/// kernel is specialized per dtype.
protocol CTRounder {
    static func r(_ v: SIMD16<Float>) -> SIMD16<Float>
    static func r(_ x: Float) -> Float
}

enum CTRoundF32: CTRounder {
    @inline(__always) static func r(_ v: SIMD16<Float>) -> SIMD16<Float> { v }
    @inline(__always) static func r(_ x: Float) -> Float { x }
}

enum CTRoundBF16: CTRounder {
    @inline(__always) static func r(_ v: SIMD16<Float>) -> SIMD16<Float> {
        let b = unsafeBitCast(v, to: SIMD16<UInt32>.self)
        let rounded = (b &+ 0x7fff &+ ((b &>> 16) & 1)) & 0xffff_0000
        return KQuantLanes.select(KQuantLanes.mask(v .!= v), v, unsafeBitCast(rounded, to: SIMD16<Float>.self))
    }
    @inline(__always) static func r(_ x: Float) -> Float { DTypeRounding(.bf16)!(x) }
}

enum CTRoundF16: CTRounder {
    @inline(__always) static func r(_ v: SIMD16<Float>) -> SIMD16<Float> {
        var out = SIMD16<Float>()
        for i in 0..<16 { out[i] = Float(Float16(v[i])) }
        return out
    }
    @inline(__always) static func r(_ x: Float) -> Float { Float(Float16(x)) }
}

/// The row kernel of `CompressedTensors.quantize`: the same arithmetic as its documentation, 16 lanes
/// at a time, codes written straight into the packed words (little-endian: a row's packed bytes are the
/// offset codes in order, two per byte for 4 bits).
enum CompressedTensorsKernel {
    struct Layout {
        var rows: Int, columns: Int, bits: Int, groupSize: Int, symmetric: Bool
        var qmin: Float { Float(-(1 << (bits - 1))) }
        var qmax: Float { Float((1 << (bits - 1)) - 1) }
        var groups: Int { columns / groupSize }
        var wordsPerRow: Int { (columns * bits + 31) / 32 }
    }

    /// Quantizes every row into `packed` / `scales` / `zeroPoints` (nil when symmetric); with `measure`,
    /// returns the round-trip error against `weights`.
    static func run(_ weights: UnsafePointer<Float>, _ l: Layout, dtype: DType, packed: UnsafeMutablePointer<Int32>,
                    scales: UnsafeMutablePointer<Float>, zeroPoints: UnsafeMutablePointer<Int8>?, measure: Bool) -> QuantError? {
        switch dtype {
        case .bf16: return run(CTRoundBF16.self, weights, l, packed, scales, zeroPoints, measure)
        case .f16: return run(CTRoundF16.self, weights, l, packed, scales, zeroPoints, measure)
        default: return run(CTRoundF32.self, weights, l, packed, scales, zeroPoints, measure)
        }
    }

    private static func run<R: CTRounder>(_: R.Type, _ weights: UnsafePointer<Float>, _ l: Layout, _ packed: UnsafeMutablePointer<Int32>,
                                          _ scales: UnsafeMutablePointer<Float>, _ zeroPoints: UnsafeMutablePointer<Int8>?, _ measure: Bool) -> QuantError? {
        let io = UncheckedBox((weights, packed, scales, zeroPoints))
        let error = try? QuantError.inChunks(count: l.rows, chunk: max(1, 65536 / max(1, l.columns))) { range in
            let (w, packed, scales, zps) = io.value
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: l.columns + 32) { codes in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: measure ? l.columns : 0) { back in
                    var signal = 0.0, err = 0.0, maxAbs: Float = 0
                    var sums = scalpel_error_sums_t()
                    for r in range {
                        let row = w + r * l.columns
                        for g in 0..<l.groups {
                            let (scale, zp) = group(R.self, row + g * l.groupSize, l, codes.baseAddress! + g * l.groupSize)
                            scales[r * l.groups + g] = scale
                            zps?[r * l.groups + g] = Int8(zp)
                            if measure {
                                dequantize(R.self, codes.baseAddress! + g * l.groupSize, count: l.groupSize, bits: l.bits, scale: scale, zp: zp,
                                           into: back.baseAddress! + g * l.groupSize)
                            }
                        }
                        pack(codes.baseAddress!, l, into: UnsafeMutableRawPointer(packed + r * l.wordsPerRow))
                        if measure {
                            scalpel_error_sums(row, back.baseAddress!, l.columns, &sums)
                            signal += sums.signal
                            err += sums.error
                            let m = Float(bitPattern: sums.max_abs_bits)
                            maxAbs = m.isNaN || maxAbs.isNaN ? .nan : max(maxAbs, m)
                        }
                    }
                    return QuantError(count: range.count * l.columns, signalEnergy: signal, errorEnergy: err, maxAbsError: Double(maxAbs))
                }
            }
        }
        return measure ? error : nil
    }

    /// One group: writes its offset codes (`q + 2^(bits-1)`) and returns its scale and zero point.
    @inline(__always)
    private static func group<R: CTRounder>(_: R.Type, _ w: UnsafePointer<Float>, _ l: Layout, _ out: UnsafeMutablePointer<UInt8>) -> (Float, Float) {
        typealias V = SIMD16<Float>
        let n = l.groupSize, raw = UnsafeRawPointer(w)
        var mnV = V(), mxV = V(), nanV = SIMD16<Int32>()
        var i = 0
        while i + 16 <= n {
            let v = R.r(raw.loadUnaligned(fromByteOffset: 4 * i, as: V.self))
            let isNaN = KQuantLanes.mask(v .!= v)
            nanV |= isNaN
            let c = KQuantLanes.zeroing(isNaN, v)
            mnV = FastLanes.min(mnV, c)
            mxV = FastLanes.max(mxV, c)
            i += 16
        }
        var mn = mnV.min(), mx = mxV.max(), hasNaN = KQuantLanes.any(nanV)
        while i < n {
            let v = R.r(w[i])
            if v.isNaN { hasNaN = true } else { mn = min(mn, v); mx = max(mx, v) }
            i += 1
        }
        let qmin = l.qmin, qmax = l.qmax
        var scale: Float
        var zp: Float = 0
        if hasNaN {
            scale = .nan
        } else if l.symmetric {
            scale = R.r(max(-mn, mx) / R.r((qmax - qmin) / 2))
        } else {
            scale = R.r(R.r(mx - mn) / (qmax - qmin))
            let z = R.r(qmin - R.r(mn / scale))
            zp = z.isNaN ? 0 : min(max(z, qmin), qmax).rounded(.toNearestOrEven)
        }
        if scale == 0 { scale = epsilon(R.self) }
        let offset = Int32(1 << (l.bits - 1))
        let lo = V(repeating: qmin), hi = V(repeating: qmax), zpV = V(repeating: zp), scaleV = V(repeating: scale)
        let dst = UnsafeMutableRawPointer(out)
        i = 0
        while i + 16 <= n {
            var s = R.r(R.r(raw.loadUnaligned(fromByteOffset: 4 * i, as: V.self)) / scaleV)
            if !l.symmetric { s = R.r(s + zpV) }
            let c = KQuantLanes.zeroing(KQuantLanes.mask(s .!= s), FastLanes.min(FastLanes.max(s, lo), hi))
            let q = FastLanes.nearestInt(c) &+ offset
            dst.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: q), toByteOffset: i, as: SIMD16<UInt8>.self)
            i += 16
        }
        while i < n {
            var s = R.r(R.r(w[i]) / scale)
            if !l.symmetric { s = R.r(s + zp) }
            let q = s.isNaN ? 0 : Int32(min(max(s, qmin), qmax).rounded(.toNearestOrEven))
            out[i] = UInt8(truncatingIfNeeded: q + offset)
            i += 1
        }
        return (scale, zp)
    }

    private static func epsilon<R: CTRounder>(_: R.Type) -> Float {
        if R.self == CTRoundBF16.self { return 0x1p-7 }
        if R.self == CTRoundF16.self { return 0x1p-10 }
        return .ulpOfOne
    }

    /// `R((q - zp) * scale)` of a group's offset codes.
    @inline(__always)
    private static func dequantize<R: CTRounder>(_: R.Type, _ codes: UnsafePointer<UInt8>, count n: Int, bits: Int, scale: Float, zp: Float,
                                                 into out: UnsafeMutablePointer<Float>) {
        let src = UnsafeRawPointer(codes), dst = UnsafeMutableRawPointer(out)
        let shift = Int32(1 << (bits - 1)) &+ Int32(zp)
        var i = 0
        while i + 16 <= n {
            let q = SIMD16<Int32>(truncatingIfNeeded: src.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self)) &- shift
            dst.storeBytes(of: R.r(FastLanes.float(q) * scale), toByteOffset: 4 * i, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n {
            out[i] = R.r(Float(Int32(codes[i]) - shift) * scale)
            i += 1
        }
    }

    /// A row's offset codes into its packed words (zero bits pad the last word).
    @inline(__always)
    private static func pack(_ codes: UnsafeMutablePointer<UInt8>, _ l: Layout, into dst: UnsafeMutableRawPointer) {
        let bytes = l.wordsPerRow * 4
        if l.bits == 8 {
            dst.copyMemory(from: codes, byteCount: l.columns)
            if bytes > l.columns { (dst + l.columns).initializeMemory(as: UInt8.self, repeating: 0, count: bytes - l.columns) }
            return
        }
        // 4 bits: byte j = code[2j] | code[2j + 1] << 4.
        let src = UnsafeRawPointer(codes)
        var j = 0
        while 2 * j + 32 <= l.columns {
            let v = src.loadUnaligned(fromByteOffset: 2 * j, as: SIMD32<UInt8>.self)
            dst.storeBytes(of: v.evenHalf | (v.oddHalf &<< 4), toByteOffset: j, as: SIMD16<UInt8>.self)
            j += 16
        }
        while 2 * j < l.columns {
            let hi: UInt8 = 2 * j + 1 < l.columns ? codes[2 * j + 1] : 0
            dst.storeBytes(of: codes[2 * j] | hi << 4, toByteOffset: j, as: UInt8.self)
            j += 1
        }
        if bytes > j { (dst + j).initializeMemory(as: UInt8.self, repeating: 0, count: bytes - j) }
    }
}

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
