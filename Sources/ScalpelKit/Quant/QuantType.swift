/// A quantization target as named on the command line (`--type`).
public enum QuantType: String, CaseIterable, Sendable {
    case q8_0, q4_0, q4_1, q5_0, q5_1
    case q2_k, q3_k, q4_k, q5_k, q6_k
    case iq4_nl, iq4_xs
    case f32, f16, bf16
    case nf4, fp4, int8, int4

    /// The file layout a type is written in.
    public enum Family: String, Sendable {
        /// A GGUF file with ggml block types.
        case gguf
        /// bitsandbytes 4-bit (NF4/FP4) safetensors layout.
        case bitsandbytes4
        /// bitsandbytes LLM.int8 safetensors layout.
        case bitsandbytes8
        /// compressed-tensors `pack-quantized` safetensors layout.
        case compressedTensors = "compressed-tensors"
        /// Plain float tensors (no quantization).
        case plain
    }

    /// The ggml block type, for the GGUF types.
    public var ggmlType: GGMLType? {
        switch self {
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q2_k: return .q2_K
        case .q3_k: return .q3_K
        case .q4_k: return .q4_K
        case .q5_k: return .q5_K
        case .q6_k: return .q6_K
        case .iq4_nl: return .iq4_nl
        case .iq4_xs: return .iq4_xs
        default: return nil
        }
    }

    /// The plain dtype, for f32, f16, bf16.
    public var plainDType: DType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        default: return nil
        }
    }

    /// GGUF `general.file_type` when this is the model's main type.
    public var ggufFileType: UInt32? {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q2_k: return 10  // llama.cpp's MOSTLY_Q2_K, Q3_K_S, Q4_K_S, Q5_K_S, Q6_K
        case .q3_k: return 11
        case .q4_k: return 14
        case .q5_k: return 16
        case .q6_k: return 18
        case .iq4_nl: return 25  // llama.cpp's MOSTLY_IQ4_NL, MOSTLY_IQ4_XS
        case .iq4_xs: return 30
        case .bf16: return 32
        default: return nil
        }
    }
}
