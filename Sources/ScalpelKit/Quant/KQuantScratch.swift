/// Working memory of the K-quant kernels for one chunk of super-blocks, and the small helpers they share:
/// gathering sub-blocks into lanes, the f16 fields, the 6-bit scale packing of Q4_K/Q5_K.
struct KQuantScratch {
    typealias V = SIMD16<Float>
    /// Element i of each lane's sub-block (up to 32 elements).
    let x: UnsafeMutablePointer<V>
    /// Weights, same layout.
    let w: UnsafeMutablePointer<V>
    /// Quants of the scale search, same layout.
    let L: UnsafeMutablePointer<V>
    /// Scratch for the search.
    let laux: UnsafeMutablePointer<V>
    /// Importance weights gathered like `x` (weighted path).
    let qw: UnsafeMutablePointer<V>
    /// Final quants of a super-block in element order.
    let q: UnsafeMutablePointer<UInt8>

    init() {
        x = .allocate(capacity: 32)
        w = .allocate(capacity: 32)
        L = .allocate(capacity: 32)
        laux = .allocate(capacity: 32)
        qw = .allocate(capacity: 32)
        q = .allocate(capacity: 256)
    }

    func deallocate() {
        x.deallocate(); w.deallocate(); L.deallocate(); laux.deallocate(); qw.deallocate(); q.deallocate()
    }

    /// Gathers `lanes` sub-blocks of `n` elements starting at `src` (sub-block j at `src + n·j`) into
    /// lanes `first..<first + lanes` of `into[0..<n]`.
    @inline(__always)
    static func gather(_ src: UnsafePointer<Float>, n: Int, lanes: Int, first: Int, into out: UnsafeMutablePointer<V>) {
        let f = UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self)
        for j in 0..<lanes {
            let s = src + n * j
            for i in 0..<n { f[16 * i + first + j] = s[i] }
        }
    }

    /// Lane `lane` of `L[0..<n]` as quants into `q[0..<n]` (the search's quants of a sub-block).
    @inline(__always)
    func copyLane(_ lane: Int, n: Int, to out: UnsafeMutablePointer<UInt8>) {
        for i in 0..<n { out[i] = UInt8(truncatingIfNeeded: Int32(L[i][lane])) }
    }

    /// Σ x² over 256 values in order (the reference's running f32 sum).
    @inline(__always)
    static func sumOfSquares(_ x: UnsafePointer<Float>) -> Float {
        var s: Float = 0
        for l in 0..<256 { s += x[l] * x[l] }
        return s
    }

    /// Stores `v` as a little-endian f16 (round to nearest even) at `offset`.
    @inline(__always)
    static func storeHalf(_ v: Float, _ dst: UnsafeMutableRawPointer, _ offset: Int) {
        dst.storeBytes(of: KQuantScales.halfBits(v).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Packs eight 6-bit scales and mins (already reduced to bytes as the reference does) into the 12
    /// bytes of Q4_K/Q5_K.
    @inline(__always)
    static func packScaleMins(_ ls: UnsafePointer<UInt8>, _ lm: UnsafePointer<UInt8>, into s: UnsafeMutableRawPointer) {
        let b = s.assumingMemoryBound(to: UInt8.self)
        for j in 0..<4 { b[j] = ls[j]; b[j + 4] = lm[j] }
        for j in 4..<8 {
            b[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            b[j - 4] |= (ls[j] >> 4) << 6
            b[j] |= (lm[j] >> 4) << 6
        }
    }

    /// Scale and min of sub-block j from the 12 packed bytes (`get_scale_min_k4`).
    @inline(__always)
    static func scaleMin(_ j: Int, _ s: UnsafeRawPointer) -> (UInt8, UInt8) {
        let q = s.assumingMemoryBound(to: UInt8.self)
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }

    /// Requantizes `n` (16 or 32) elements with scale `d` and offset `m`: clamp(nearest((x + m) / d)).
    @inline(__always)
    static func requantize(_ x: UnsafePointer<Float>, n: Int, d: Float, m: Float, lo: Int32, hi: Int32, bias: Int32,
                           into q: UnsafeMutablePointer<UInt8>) {
        let dv = V(repeating: d), mv = V(repeating: m)
        var k = 0
        while k < n {
            let v = UnsafeRawPointer(x + k).loadUnaligned(as: V.self)
            let l = KQuantLanes.clamp(KQuantLanes.nearestInt((v + mv) / dv), lo, hi) &+ bias
            UnsafeMutableRawPointer(q + k).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: l), as: SIMD16<UInt8>.self)
            k += 16
        }
    }

    /// Packs 256 2-bit quants: byte 32h + l holds quants 128h + l + 32k in bits 2k (Q2_K and Q3_K).
    @inline(__always)
    static func pack2(_ q: UnsafePointer<UInt8>, into out: UnsafeMutableRawPointer) {
        for h in 0..<2 {
            for half in 0..<2 {
                let base = 128 * h + 16 * half
                func ld(_ o: Int) -> SIMD16<UInt8> { UnsafeRawPointer(q + base + o).loadUnaligned(as: SIMD16<UInt8>.self) }
                let v = ld(0) | (ld(32) &<< 2) | (ld(64) &<< 4) | (ld(96) &<< 6)
                out.storeBytes(of: v, toByteOffset: 32 * h + 16 * half, as: SIMD16<UInt8>.self)
            }
        }
    }
}
