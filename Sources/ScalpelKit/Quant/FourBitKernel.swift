/// The per-block work of `FourBit.quantize`: absmax, scaling, bucket search and nibble packing over
/// raw pointers with SIMD16 lanes.
struct FourBitKernel: Sendable {
    let kind: FourBitKind
    /// The 15 sorted boundaries, each splatted across 16 lanes.
    private let bounds: [SIMD16<Float>]
    /// Code of each bucket.
    private let bucketCodes: [UInt8]
    /// Byte for a pair of buckets `(high << 4) | low` (FP4 maps buckets to codes through it).
    private let pairBytes: [UInt8]
    /// The code of a scaled 0.0: the padding nibble of an odd count.
    private let zeroCode: UInt8

    init(kind: FourBitKind) {
        self.kind = kind
        bounds = kind.boundaries.map { SIMD16<Float>(repeating: $0) }
        let codes = kind.bucketCodes
        bucketCodes = codes
        pairBytes = (0..<256).map { (codes[$0 >> 4] << 4) | codes[$0 & 15] }
        zeroCode = codes[Self.bucket(0, kind.boundaries)]
    }

    /// The bucket of one scaled value: the number of boundaries it is not `<=` to (NaN: all 15).
    @inline(__always)
    static func bucket(_ s: Float, _ boundaries: [Float]) -> Int {
        var below = 0
        for b in boundaries where s <= b { below += 1 }
        return 15 - below
    }

    /// Quantizes one block of `count` values at `x`, writing `(count + 1) / 2` bytes at `out`, and
    /// returns the absmax to store (see `FourBit` for the rules).
    @inline(__always)
    func quantizeBlock(_ x: UnsafePointer<Float>, count: Int, isLast: Bool, into out: UnsafeMutablePointer<UInt8>) -> Float {
        // max |x| over the bit patterns with the sign cleared: as integers they order like the floats,
        // and a NaN (above 0x7f800000) wins, which detects it in the same pass.
        let vectorEnd = count & ~15
        var m = SIMD16<Int32>(repeating: 0)
        var i = 0
        while i < vectorEnd {
            let a = unsafeBitCast(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self), to: SIMD16<Int32>.self) & 0x7fff_ffff
            let greater = (a .> m)._storage
            m = (a & greater) | (m & ~greater)
            i += 16
        }
        var amaxBits = m.max()
        while i < count {
            amaxBits = max(amaxBits, Int32(bitPattern: x[i].bitPattern & 0x7fff_ffff))
            i += 1
        }
        if amaxBits > 0x7f80_0000 {
            let nanByte = (bucketCodes[15] << 4) | bucketCodes[15]
            out.update(repeating: nanByte, count: count / 2)
            if count & 1 == 1 { out[count / 2] = (bucketCodes[15] << 4) | zeroCode }
            return .nan
        }
        let amax = Float(bitPattern: UInt32(amaxBits))
        let divisor = max(amax, FourBit.absmaxFloor)
        if isLast {
            encode(x, count: count, by: divisor, divide: true, into: out)
            return divisor
        }
        encode(x, count: count, by: 1 / divisor, divide: false, into: out)
        return amax
    }

    /// Scales each value by `x * scale` or, when `divide`, `x / scale`; finds buckets and packs.
    @inline(__always)
    private func encode(_ x: UnsafePointer<Float>, count: Int, by scale: Float, divide: Bool,
                        into out: UnsafeMutablePointer<UInt8>) {
        let vectorEnd = count & ~15
        let fifteen = SIMD16<Int32>(repeating: 15)
        let sv = SIMD16<Float>(repeating: scale)
        let nf4 = kind == .nf4
        bounds.withUnsafeBufferPointer { bnd in
            pairBytes.withUnsafeBufferPointer { pairs in
                var i = 0
                while i < vectorEnd {
                    let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
                    let s = divide ? v / sv : v * sv
                    var b = fifteen
                    for k in 0..<15 { b &+= (s .<= bnd[k])._storage }
                    let o = out + i / 2
                    let pair = (b.evenHalf &<< 4) | b.oddHalf
                    if nf4 {
                        UnsafeMutableRawPointer(o).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: pair), as: SIMD8<UInt8>.self)
                    } else {
                        for j in 0..<8 { o[j] = pairs[Int(pair[j])] }
                    }
                    i += 16
                }
                let boundaries = kind.boundaries
                func code(_ v: Float) -> UInt8 { bucketCodes[Self.bucket(divide ? v / scale : v * scale, boundaries)] }
                while i < count {
                    out[i / 2] = (code(x[i]) << 4) | (i + 1 < count ? code(x[i + 1]) : zeroCode)
                    i += 2
                }
            }
        }
    }
}
