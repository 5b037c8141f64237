/// Rounding of f32 results to a weight dtype, as torch stores the result of each BF16/F16 operation:
/// round to nearest even, NaN kept, overflow to infinity.
struct DTypeRounding: Sendable {
    let dtype: DType

    /// nil for dtypes other than F32, F16 and BF16.
    init?(_ dtype: DType) {
        guard dtype == .f32 || dtype == .f16 || dtype == .bf16 else { return nil }
        self.dtype = dtype
    }

    /// `torch.finfo(dtype).eps`: 2^-23, 2^-10 or 2^-7.
    var epsilon: Float {
        switch dtype {
        case .f16: return 0x1p-10
        case .bf16: return 0x1p-7
        default: return .ulpOfOne
        }
    }

    /// `x` rounded to the dtype and widened back to f32.
    @inline(__always)
    func callAsFunction(_ x: Float) -> Float {
        switch dtype {
        case .bf16:
            if x.isNaN { return x }
            let b = x.bitPattern
            return Float(bitPattern: (b &+ 0x7fff &+ ((b >> 16) & 1)) & 0xffff_0000)
        case .f16:
            return Float(Float16(x))
        default:
            return x
        }
    }
}
