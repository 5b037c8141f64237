/// A tensor quantized to bitsandbytes 4-bit (NF4 or FP4): what `bitsandbytes.functional.quantize_4bit`
/// returns, in the layout `Params4bit` serializes.
public struct FourBitQuantized: Sendable, Equatable {
    /// The 4-bit data type.
    public var kind: FourBitKind
    /// Elements per absmax block (a power of two, 32...4096).
    public var blockSize: Int
    /// Number of quantized elements (the product of the original shape).
    public var count: Int
    /// Packed codes, `(count + 1) / 2` bytes: element `2j` in the HIGH nibble of byte `j`, element
    /// `2j + 1` in the low nibble. With an odd count the last low nibble holds the code of 0.0
    /// (7 for NF4, 0 for FP4), as bitsandbytes pads the scaled values with a zero.
    /// Serialized as the U8 tensor `weight` of shape `[(count + 1) / 2, 1]`.
    public var codes: [UInt8]
    /// The f32 absmax of each block, `(count + blockSize - 1) / blockSize` values (a short last block
    /// has its own). Serialized as `weight.absmax` (F32) unless `nested` is used.
    public var absmax: [Float]
    /// The double-quantized absmax (`bnb_4bit_use_double_quant`), serialized instead of `absmax` as
    /// `weight.absmax` (U8 codes), `weight.nested_absmax`, `weight.nested_quant_map` and the
    /// `nested_offset` of the quant state.
    public var nested: NestedAbsmax?

    public init(kind: FourBitKind, blockSize: Int, count: Int, codes: [UInt8], absmax: [Float], nested: NestedAbsmax?) {
        self.kind = kind
        self.blockSize = blockSize
        self.count = count
        self.codes = codes
        self.absmax = absmax
        self.nested = nested
    }

    /// The per-block scales a loader uses: the dequantized nested absmax when double quantization is on
    /// (`code * nested_absmax + offset`), else `absmax`.
    public var blockScales: [Float] { nested?.dequantize() ?? absmax }
}
