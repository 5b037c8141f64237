import CScalpelKernels

/// A float tensor's stored values, handed out block by block as f32 bit patterns, so that every
/// selection kernel works on one kind of key (`MagnitudeKey`) whatever the stored dtype.
///
/// F32 values are read in place. F16 and BF16 widen exactly to f32, which keeps their order and their
/// ties, so the magnitudes compared are exactly the stored ones. F64 values round to the nearest f32
/// first: two F64 values closer than an f32 step compare as equal (and tie by position).
///
/// `@unchecked Sendable`: the bytes are only read, and their owner (a mapped file or an array) outlives
/// every use.
public struct MagnitudeSource: @unchecked Sendable {
    /// The stored bytes: `count` elements of `dtype`.
    public let bytes: UnsafeRawBufferPointer
    /// F32, F16, BF16 or F64.
    public let dtype: DType
    /// Number of elements.
    public let count: Int

    /// Most elements a `withBits` call may ask for.
    public static let block = 4096

    /// The dtypes a source can hold.
    public static let dtypes: Set<DType> = [.f32, .f16, .bf16, .f64]

    /// A source over `count` elements of `dtype` stored in `bytes`.
    /// - Precondition: `dtype` is F32, F16, BF16 or F64 and `bytes` holds `count` elements of it.
    public init(bytes: UnsafeRawBufferPointer, dtype: DType, count: Int) {
        precondition(MagnitudeSource.dtypes.contains(dtype), "no magnitudes for dtype \(dtype.rawValue)")
        precondition(bytes.count >= count * dtype.bitWidth / 8, "too few bytes for \(count) elements")
        self.bytes = bytes
        self.dtype = dtype
        self.count = count
    }

    /// Bytes per stored element.
    public var width: Int { dtype.bitWidth / 8 }

    /// Calls `body` with the f32 bit patterns (sign included, possibly unaligned) of the elements in
    /// `range`, which holds at most `block` elements.
    @inline(__always)
    func withBits<R>(_ range: Range<Int>, _ body: (UnsafeRawPointer) -> R) -> R {
        let base = bytes.baseAddress!
        if dtype == .f32 { return body(base + 4 * range.lowerBound) }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: range.count) { tmp in
            let out = tmp.baseAddress!
            switch dtype {
            case .f16:
                scalpel_f16_to_f32((base + 2 * range.lowerBound).assumingMemoryBound(to: UInt16.self), out, range.count)
            case .bf16:
                scalpel_bf16_to_f32((base + 2 * range.lowerBound).assumingMemoryBound(to: UInt16.self), out, range.count)
            default:
                for i in 0..<range.count {
                    out[i] = Float(base.loadUnaligned(fromByteOffset: 8 * (range.lowerBound + i), as: Double.self))
                }
            }
            return body(UnsafeRawPointer(out))
        }
    }

    /// Calls `body` once per block of at most `block` elements of `range`, in order, with the block's
    /// range and its f32 bit patterns.
    @inline(__always)
    func forEachBlock(in range: Range<Int>, _ body: (Range<Int>, UnsafeRawPointer) -> Void) {
        var lo = range.lowerBound
        while lo < range.upperBound {
            let r = lo..<min(range.upperBound, lo + MagnitudeSource.block)
            withBits(r) { body(r, $0) }
            lo = r.upperBound
        }
    }

    /// The key of element `i` (for sampling and fix-ups; the passes use `withBits`).
    @inline(__always)
    func key(at i: Int) -> UInt32 {
        let base = bytes.baseAddress!
        switch dtype {
        case .f32: return MagnitudeKey.of(bits: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        case .bf16: return MagnitudeKey.of(bits: UInt32(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        case .f16: return withBits(i..<(i + 1)) { MagnitudeKey.of(bits: $0.loadUnaligned(as: UInt32.self)) }
        default: return MagnitudeKey.of(Float(base.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)))
        }
    }
}
