/// The two 4-bit data types of bitsandbytes (`bnb_4bit_quant_type`).
///
/// Each is a table of 16 values in [-1, 1]; a 4-bit code is an index into it, and an element
/// dequantizes to `quantMap[code] * absmax` of its block.
public enum FourBitKind: String, Sendable, CaseIterable {
    /// NormalFloat4: the 16 quantiles of N(0, 1) used by QLoRA, ascending (code 7 is exactly 0).
    case nf4
    /// bitsandbytes' FP4 (1 sign bit, 2 exponent bits, 1 mantissa bit), divided by its largest value 12.
    case fp4

    /// bitsandbytes' `get_4bit_type(kind)`: the value of each code, as stored in the `quant_map` tensor.
    ///
    /// FP4 lists `[0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3] / 12` rounded to
    /// f32; its code 8 holds +0.0 (bitsandbytes writes the Python integer `-0`, which is plain zero).
    public var quantMap: [Float] {
        switch self {
        case .nf4: return FourBitTables.nf4Map
        case .fp4: return FourBitTables.fp4Map
        }
    }

    /// The 15 decision boundaries between consecutive values of the SORTED code table, ascending:
    /// `(sorted[i] + sorted[i + 1]) / 2` computed in f32, as bitsandbytes' CPU backend does. For NF4
    /// they are bit-identical to the pivots of bitsandbytes' CUDA `dQuantizeNF4`.
    var boundaries: [Float] {
        switch self {
        case .nf4: return FourBitTables.nf4Boundaries
        case .fp4: return FourBitTables.fp4Boundaries
        }
    }

    /// The code of each bucket between boundaries (bucket 0 is below `boundaries[0]`): bitsandbytes'
    /// `argsort(quant_map)`. NF4 is sorted already. FP4's order puts +0 (code 0) before -0 (code 8), so a
    /// scaled value in [-0.0026, 0] gets code 0 and one in (0, 0.0026] gets code 8 (-0).
    var bucketCodes: [UInt8] {
        switch self {
        case .nf4: return Array(0..<16)
        case .fp4: return [11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3]
        }
    }
}

/// The constant tables behind `FourBitKind`, computed once.
enum FourBitTables {
    static let nf4Map: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]

    static let fp4Map: [Float] = [0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3].map {
        Float($0) / 12
    }

    static let nf4Boundaries = midpoints(nf4Map, order: FourBitKind.nf4.bucketCodes)
    static let fp4Boundaries = midpoints(fp4Map, order: FourBitKind.fp4.bucketCodes)

    private static func midpoints(_ map: [Float], order: [UInt8]) -> [Float] {
        (0..<15).map { (map[Int(order[$0])] + map[Int(order[$0 + 1])]) / 2 }
    }
}
