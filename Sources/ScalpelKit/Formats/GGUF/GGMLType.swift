/// A ggml tensor type: its id in GGUF files, its name, and its block geometry.
///
/// Every type that current ggml defines is listed, so that any GGUF file can be inspected even where
/// Scalpel cannot compute on the type. Sizes match gguf-py's `GGML_QUANT_SIZES` except Q8_1, whose ggml
/// block is 36 bytes (two f16 and 32 int8).
public struct GGMLType: Sendable, Hashable {
    /// The type id stored in a GGUF tensor info.
    public let id: UInt32
    /// ggml's name for the type ("Q4_0").
    public let name: String
    /// Elements per block (1 for plain types).
    public let blockSize: Int
    /// Bytes per block.
    public let typeSize: Int

    /// Every known type, by id.
    public static let all: [GGMLType] = [
        .init(id: 0, name: "F32", blockSize: 1, typeSize: 4),
        .init(id: 1, name: "F16", blockSize: 1, typeSize: 2),
        .init(id: 2, name: "Q4_0", blockSize: 32, typeSize: 18),
        .init(id: 3, name: "Q4_1", blockSize: 32, typeSize: 20),
        .init(id: 6, name: "Q5_0", blockSize: 32, typeSize: 22),
        .init(id: 7, name: "Q5_1", blockSize: 32, typeSize: 24),
        .init(id: 8, name: "Q8_0", blockSize: 32, typeSize: 34),
        .init(id: 9, name: "Q8_1", blockSize: 32, typeSize: 36),
        .init(id: 10, name: "Q2_K", blockSize: 256, typeSize: 84),
        .init(id: 11, name: "Q3_K", blockSize: 256, typeSize: 110),
        .init(id: 12, name: "Q4_K", blockSize: 256, typeSize: 144),
        .init(id: 13, name: "Q5_K", blockSize: 256, typeSize: 176),
        .init(id: 14, name: "Q6_K", blockSize: 256, typeSize: 210),
        .init(id: 15, name: "Q8_K", blockSize: 256, typeSize: 292),
        .init(id: 16, name: "IQ2_XXS", blockSize: 256, typeSize: 66),
        .init(id: 17, name: "IQ2_XS", blockSize: 256, typeSize: 74),
        .init(id: 18, name: "IQ3_XXS", blockSize: 256, typeSize: 98),
        .init(id: 19, name: "IQ1_S", blockSize: 256, typeSize: 50),
        .init(id: 20, name: "IQ4_NL", blockSize: 32, typeSize: 18),
        .init(id: 21, name: "IQ3_S", blockSize: 256, typeSize: 110),
        .init(id: 22, name: "IQ2_S", blockSize: 256, typeSize: 82),
        .init(id: 23, name: "IQ4_XS", blockSize: 256, typeSize: 136),
        .init(id: 24, name: "I8", blockSize: 1, typeSize: 1),
        .init(id: 25, name: "I16", blockSize: 1, typeSize: 2),
        .init(id: 26, name: "I32", blockSize: 1, typeSize: 4),
        .init(id: 27, name: "I64", blockSize: 1, typeSize: 8),
        .init(id: 28, name: "F64", blockSize: 1, typeSize: 8),
        .init(id: 29, name: "IQ1_M", blockSize: 256, typeSize: 56),
        .init(id: 30, name: "BF16", blockSize: 1, typeSize: 2),
        .init(id: 34, name: "TQ1_0", blockSize: 256, typeSize: 54),
        .init(id: 35, name: "TQ2_0", blockSize: 256, typeSize: 66),
        .init(id: 39, name: "MXFP4", blockSize: 32, typeSize: 17),
        .init(id: 40, name: "NVFP4", blockSize: 64, typeSize: 36),
        .init(id: 41, name: "Q1_0", blockSize: 128, typeSize: 18),
    ]

    private static let byID: [UInt32: GGMLType] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })

    /// The type with this id, or nil for an unknown or retired id.
    public init?(id: UInt32) {
        guard let t = GGMLType.byID[id] else { return nil }
        self = t
    }

    /// The type with this name, case-insensitive ("q8_0").
    public init?(name: String) {
        let upper = name.uppercased()
        guard let t = GGMLType.all.first(where: { $0.name == upper }) else { return nil }
        self = t
    }

    private init(id: UInt32, name: String, blockSize: Int, typeSize: Int) {
        self.id = id
        self.name = name
        self.blockSize = blockSize
        self.typeSize = typeSize
    }

    public static let f32 = GGMLType(id: 0)!
    public static let f16 = GGMLType(id: 1)!
    public static let q4_0 = GGMLType(id: 2)!
    public static let q4_1 = GGMLType(id: 3)!
    public static let q5_0 = GGMLType(id: 6)!
    public static let q5_1 = GGMLType(id: 7)!
    public static let q8_0 = GGMLType(id: 8)!
    public static let q4_K = GGMLType(id: 12)!
    public static let q5_K = GGMLType(id: 13)!
    public static let q6_K = GGMLType(id: 14)!
    public static let bf16 = GGMLType(id: 30)!

    /// The safetensors dtype with the same meaning, for the plain (one element per block) types.
    public var plainDType: DType? {
        switch name {
        case "F32": return .f32
        case "F16": return .f16
        case "BF16": return .bf16
        case "F64": return .f64
        case "I8": return .i8
        case "I16": return .i16
        case "I32": return .i32
        case "I64": return .i64
        default: return nil
        }
    }

    /// The ggml type for a plain dtype, or nil when GGUF has no such type (U8, BOOL, F8...).
    public init?(plain dtype: DType) {
        guard let t = GGMLType.all.first(where: { $0.plainDType == dtype }) else { return nil }
        self = t
    }
}
