import Foundation

/// A llama.cpp file type (`llama_ftype`, what `llama-quantize` takes as its type argument): a name such
/// as `Q4_K_M`, the `general.file_type` id it writes, and the tensor type most tensors get.
public struct LlamaFileType: Sendable, Hashable, CustomStringConvertible {
    /// llama-quantize's name ("Q4_K_M").
    public let name: String
    /// `general.file_type` (`LLAMA_FTYPE_*`).
    public let id: UInt32
    /// `llama_ftype_get_default_type`: the type of the tensors no rule bumps.
    public let defaultType: GGMLType

    public var description: String { name }

    /// The presets Scalpel writes, in llama-quantize's order.
    public static let all: [LlamaFileType] = [
        .init("Q4_0", 2, .q4_0), .init("Q4_1", 3, .q4_1), .init("Q5_0", 8, .q5_0), .init("Q5_1", 9, .q5_1),
        .init("Q2_K", 10, GGMLType(name: "Q2_K")!),
        .init("Q3_K_S", 11, GGMLType(name: "Q3_K")!), .init("Q3_K_M", 12, GGMLType(name: "Q3_K")!),
        .init("Q3_K_L", 13, GGMLType(name: "Q3_K")!),
        .init("IQ4_NL", 25, .iq4_nl), .init("IQ4_XS", 30, .iq4_xs),
        .init("Q4_K_S", 14, .q4_K), .init("Q4_K_M", 15, .q4_K),
        .init("Q5_K_S", 16, .q5_K), .init("Q5_K_M", 17, .q5_K),
        .init("Q6_K", 18, .q6_K), .init("Q8_0", 7, .q8_0),
        .init("F16", 1, .f16), .init("BF16", 32, .bf16), .init("F32", 0, .f32),
    ]

    /// The preset with this name, case-insensitive ("q4_k_m").
    public init?(name: String) {
        let upper = name.uppercased()
        guard let t = LlamaFileType.all.first(where: { $0.name == upper }) else { return nil }
        self = t
    }

    /// The file type a single tensor type stands for when every tensor gets it (`--type q4_k`): the
    /// preset of that default type, the `_S` one for Q3_K, Q4_K and Q5_K (what `QuantType.ggufFileType`
    /// writes for them).
    public init?(mostly type: GGMLType) {
        let preferred = ["Q3_K": "Q3_K_S", "Q4_K": "Q4_K_S", "Q5_K": "Q5_K_S"]
        guard let t = LlamaFileType(name: preferred[type.name] ?? type.name), t.defaultType == type else { return nil }
        self = t
    }

    private init(_ name: String, _ id: UInt32, _ type: GGMLType) {
        self.name = name
        self.id = id
        self.defaultType = type
    }

    static let q2_K = LlamaFileType(name: "Q2_K")!
    static let q3_K_S = LlamaFileType(name: "Q3_K_S")!
    static let q3_K_M = LlamaFileType(name: "Q3_K_M")!
    static let q3_K_L = LlamaFileType(name: "Q3_K_L")!
    static let q4_K_S = LlamaFileType(name: "Q4_K_S")!
    static let q4_K_M = LlamaFileType(name: "Q4_K_M")!
    static let q5_K_M = LlamaFileType(name: "Q5_K_M")!
    static let q4_0 = LlamaFileType(name: "Q4_0")!
    static let q5_0 = LlamaFileType(name: "Q5_0")!
    static let iq4_NL = LlamaFileType(name: "IQ4_NL")!
    static let iq4_XS = LlamaFileType(name: "IQ4_XS")!

    /// IQ4_NL or IQ4_XS, which share their rules.
    var isIQ4: Bool { self == .iq4_NL || self == .iq4_XS }
}

/// The per-tensor type rules of `llama-quantize`, followed from llama.cpp 0c1e57098 (the copy vendored
/// by the PyPI sdist `llama-cpp-python==0.3.36`): `src/llama-quant.cpp`'s `tensor_allows_quantization`,
/// `llama_tensor_get_type`, `llama_tensor_get_type_impl` and `tensor_type_fallback`, for the file types
/// in `LlamaFileType.all` (of the IQ mixes only IQ4_NL and IQ4_XS are offered; no TQ, MXFP4 or Q2_K_S).
///
/// - Never quantized: tensors of fewer than 2 dimensions (trailing 1s do not count), names not ending in
///   `weight`, `*_norm.weight`, `ffn_gate_inp`, `position_embd.weight`, `token_types.weight`, conv1d and
///   RWKV/T5/multimodal helpers (the list below), and `output.weight` under `--leave-output-tensor`.
/// - `output.weight` (and `token_embd.weight` when the model has no `output.weight`): Q6_K, or Q8_0 when
///   the row is not a multiple of the type's block or the model is Falcon; kept Q8_0 in a Q8_0 file.
/// - `attn_v` / `attn_qkv` / `attn_kv_b`, `ffn_down`, `attn_output`: bumped by file type, by position
///   among their kind (`use_more_bits`: the first and last eighth and every third layer between), by
///   the GQA ratio (`head_count / head_count_kv`) and by the expert count; Q4_0/Q5_0 files with an
///   importance matrix give the first eighth of `ffn_down` Q4_1/Q5_1. IQ4_NL/IQ4_XS files give `attn_v`
///   Q5_K when GQA >= 4, the first eighth of `ffn_down` Q5_K when there is no importance matrix, and
///   `attn_output` Q5_K with 8 experts.
/// - A row that is not a multiple of the block: Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,
///   Q6_K -> Q8_0, IQ4_XS -> IQ4_NL, and F16 when even that does not divide it.
/// - Tensors are visited in llama.cpp's order (by layer number, then by name), which decides the
///   position counters.
public enum LlamaQuantRules {
    /// What the rules need to know of the model (llama.cpp's hparams).
    public struct Model: Sendable, Equatable {
        /// `general.architecture` ("llama", "bert", "falcon", ...).
        public var architecture: String
        /// `{arch}.block_count`.
        public var layerCount: Int
        /// `{arch}.attention.head_count` of layer 0.
        public var headCount: Int
        /// `{arch}.attention.head_count_kv` of layer 0 (defaults to the head count).
        public var headCountKV: Int
        /// `{arch}.expert_count` (0 without experts).
        public var expertCount: Int

        public init(architecture: String, layerCount: Int, headCount: Int, headCountKV: Int, expertCount: Int = 0) {
            self.architecture = architecture
            self.layerCount = layerCount
            self.headCount = headCount
            self.headCountKV = headCountKV
            self.expertCount = expertCount
        }

        /// The model described by GGUF metadata (missing keys: 0 heads, no experts; the layer count
        /// falls back to the largest `blk.N` in `tensorNames` plus one).
        public init(gguf metadata: Metadata, tensorNames: [String]) {
            let arch = metadata["general.architecture"]?.stringValue ?? "unknown"
            func first(_ key: String) -> Int? {
                switch metadata["\(arch).\(key)"] {
                case .array(_, let items)?: return items.first?.intValue
                case let v?: return v.intValue
                case nil: return nil
                }
            }
            let heads = first("attention.head_count") ?? 0
            self.init(architecture: arch,
                      layerCount: first("block_count") ?? LlamaQuantRules.layerCount(tensorNames),
                      headCount: heads, headCountKV: first("attention.head_count_kv") ?? heads,
                      expertCount: first("expert_count") ?? 0)
        }

        /// `n_gqa()`: heads per KV head (0 when there are no KV heads).
        public var gqa: Int { headCountKV == 0 ? 0 : headCount / headCountKV }

        /// llama.cpp's `LLM_TYPE_70B`, the one model size the rules look at.
        var is70B: Bool {
            switch architecture {
            case "llama": return layerCount == 80 && headCount != headCountKV
            case "deci", "olmo", "qwen2": return layerCount == 80
            case "jais2": return layerCount == 68
            default: return false
            }
        }
    }

    /// The controls of llama-quantize that change the types.
    public struct Params: Sendable {
        public var fileType: LlamaFileType
        /// `--pure`: every quantizable tensor gets the default type (and the row fallback).
        public var pure = false
        /// `--output-tensor-type`.
        public var outputTensorType: GGMLType?
        /// `--token-embedding-type`.
        public var tokenEmbeddingType: GGMLType?
        /// False under `--leave-output-tensor`.
        public var quantizeOutputTensor = true
        /// `--tensor-type PATTERN=TYPE`: the first pattern found in a name (a regular expression,
        /// lowercased as llama-quantize does) gives its type.
        public var tensorTypes: [(pattern: String, type: GGMLType)] = []
        /// An importance matrix is used (non-empty after `--include-weights`/`--exclude-weights`).
        public var hasImatrix = false

        public init(fileType: LlamaFileType) { self.fileType = fileType }
    }

    /// One tensor as the rules see it: its llama.cpp name, row-major shape and current type.
    public struct Tensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var type: GGMLType

        public init(name: String, shape: [Int], type: GGMLType) {
            self.name = name
            self.shape = shape
            self.type = type
        }

        /// ggml's `ne[0]`: the row length.
        var columns: Int { shape.last ?? 1 }
        /// `ggml_n_dims`: dimensions up to the last one larger than 1.
        var dimensionCount: Int {
            let ne = Array(shape.reversed())
            return (ne.lastIndex(where: { $0 > 1 }) ?? 0) + 1
        }
    }

    /// The type of each tensor (same order as `tensors`): the tensor's own type where llama-quantize
    /// keeps it.
    /// - Throws: `ScalpelError.invalid` for an invalid `--tensor-type` pattern, or, with experts, a
    ///   layer tensor whose name has no valid `blk.N.` (as llama.cpp).
    public static func targetTypes(_ tensors: [Tensor], model: Model, params: Params) throws -> [GGMLType] {
        var state = State(model: model, params: params)
        state.patterns = try params.tensorTypes.map { rule in
            do {
                return (try NSRegularExpression(pattern: rule.pattern.lowercased()), rule.type)
            } catch {
                throw ScalpelError.invalid(file: nil, tensor: nil, reason: "--tensor-type \(rule.pattern): not a valid regular expression")
            }
        }
        for t in tensors {
            let c = category(t.name)
            if isAttentionV(c) { state.attentionVCount += 1 }
            if c == .output { state.tiedEmbeddings = false }
        }
        state.ffnCount = model.layerCount
        var result = tensors.map(\.type)
        for i in order(tensors.map(\.name)) {
            result[i] = try state.type(for: tensors[i])
        }
        return result
    }

    /// llama.cpp's tensor order (`weight_name_comparer`): by `blk.N` number (others first), then by name.
    public static func order(_ names: [String]) -> [Int] {
        let keys = names.map { (layer: layerNumber($0) ?? -1, bytes: Array($0.utf8)) }
        return names.indices.sorted { a, b in
            if keys[a].layer != keys[b].layer { return keys[a].layer < keys[b].layer }
            return keys[a].bytes.lexicographicallyPrecedes(keys[b].bytes)
        }
    }

    /// `tensor_allows_quantization`: whether llama-quantize may change the tensor's type.
    public static func allowsQuantization(_ t: Tensor, architecture: String, quantizeOutputTensor: Bool = true) -> Bool {
        guard t.dimensionCount >= 2, t.name.hasSuffix("weight") else { return false }
        let name = t.name
        if !quantizeOutputTensor && name == "output.weight" { return false }
        if name == "position_embd.weight" || name == "token_types.weight" { return false }
        var never = neverQuantized
        if architecture == "glm5-next" || architecture == "glm5_next" { never += glm5NextNeverQuantized }
        return !never.contains(where: { name.contains($0) })
    }

    /// Substrings of names llama-quantize never quantizes.
    static let neverQuantized = [
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
        ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    ]
    static let glm5NextNeverQuantized = [
        "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate",
        "indexer_compressor_ape", "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight", "ssm_g_b.weight",
        "ssm_beta.weight", "attn_kv_a_mqa.weight", "attn_k_b.weight", "attn_v_b.weight",
    ]

    /// `tensor_type_fallback`: the type to use when `columns` is not a multiple of `type`'s block.
    public static func fallback(_ type: GGMLType, columns: Int) -> GGMLType {
        guard columns % type.blockSize != 0 else { return type }
        var result: GGMLType
        switch type.name {
        case "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS": result = GGMLType(name: "IQ4_NL")!
        case "Q2_0", "Q2_K", "Q3_K", "TQ1_0", "TQ2_0": result = .q4_0
        case "Q4_K": result = .q5_0
        case "Q5_K": result = .q5_1
        case "Q6_K": result = .q8_0
        default: result = type
        }
        if columns % result.blockSize != 0 { result = .f16 }
        return result
    }

    /// The largest `blk.N` number plus one (0 when there is none).
    static func layerCount(_ names: [String]) -> Int {
        (names.compactMap(layerNumber).max() ?? -1) + 1
    }

    /// N of a name starting with `blk.N.` (as `sscanf("blk.%d.")` reads it).
    static func layerNumber(_ name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        var rest = Substring(name.dropFirst(4))
        var sign = 1
        if let s = rest.first, s == "-" || s == "+" { sign = s == "-" ? -1 : 1; rest = rest.dropFirst() }
        let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, digits.count <= 9, let n = Int(digits) else { return nil }
        return sign * n
    }

    // MARK: - llama_tensor_get_type

    enum Category { case tokenEmbedding, attentionQ, attentionV, attentionK, attentionQKV, attentionKVB, attentionOutput, ffnUp, ffnGate, ffnDown, output, other }

    /// `tensor_get_category`.
    static func category(_ name: String) -> Category {
        if name == "output.weight" { return .output }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { return .tokenEmbedding }
        let table: [(String, Category)] = [
            ("attn_qkv.weight", .attentionQKV), ("attn_kv_b.weight", .attentionKVB), ("attn_v.weight", .attentionV),
            ("attn_k.weight", .attentionK), ("attn_q.weight", .attentionQ), ("attn_output.weight", .attentionOutput),
            ("ffn_up", .ffnUp), ("ffn_gate", .ffnGate), ("ffn_down", .ffnDown),
        ]
        return table.first(where: { name.contains($0.0) })?.1 ?? .other
    }

    static func isAttentionV(_ c: Category) -> Bool { c == .attentionV || c == .attentionQKV || c == .attentionKVB }

    /// `use_more_bits`: the first and last eighth of the layers and every third one between.
    static func useMoreBits(_ i: Int, _ n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    /// `quantize_state_impl`: the counters that make a tensor's type depend on the ones before it.
    struct State {
        let model: Model
        let params: Params
        var patterns: [(NSRegularExpression, GGMLType)] = []
        var attentionVCount = 0, ffnCount = 0
        var attentionV = 0, ffnDown = 0, ffnGate = 0, ffnUp = 0
        var tiedEmbeddings = true

        init(model: Model, params: Params) {
            self.model = model
            self.params = params
        }

        /// `llama_tensor_get_type`.
        mutating func type(for t: Tensor) throws -> GGMLType {
            guard allowsQuantization(t, architecture: model.architecture, quantizeOutputTensor: params.quantizeOutputTensor) else { return t.type }
            let c = category(t.name)
            if let e = params.tokenEmbeddingType, c == .tokenEmbedding {
                if !(t.name == "per_layer_token_embd.weight" && matchingPattern(t.name) != nil) { return e }
            }
            if let o = params.outputTensorType, c == .output { return o }
            var type = params.fileType.defaultType
            guard type.blockSize > 1 else { return type }
            if let manual = matchingPattern(t.name) {
                type = manual
            } else if !params.pure {
                type = try impl(type, t, c)
            }
            return fallback(type, columns: t.columns)
        }

        func matchingPattern(_ name: String) -> GGMLType? {
            let range = NSRange(name.startIndex..., in: name)
            return patterns.first(where: { $0.0.firstMatch(in: name, range: range) != nil })?.1
        }

        /// `layer_info`: the layer of a tensor, from the counter, or from its name with experts.
        func layer(_ counter: Int, _ name: String) throws -> (Int, Int) {
            guard max(1, model.expertCount) > 1 else { return (counter, ffnCount) }
            guard let i = layerNumber(name) else {
                throw ScalpelError.invalid(file: nil, tensor: name, reason: "failed to determine the layer of an expert tensor (no blk.N. prefix)")
            }
            guard i >= 0 && i < ffnCount else {
                throw ScalpelError.invalid(file: nil, tensor: name, reason: "bad layer \(i): must be in [0, \(ffnCount))")
            }
            return (i, ffnCount)
        }

        /// `llama_tensor_get_type_impl` for the file types Scalpel offers.
        mutating func impl(_ start: GGMLType, _ t: Tensor, _ c: Category) throws -> GGMLType {
            var type = start
            let ft = params.fileType, arch = model.architecture, falcon = arch == "falcon"
            let q3 = GGMLType(name: "Q3_K")!
            if (arch == "glm5-next" || arch == "glm5_next") && ["attn_q_a", "attn_q_b", "nextn.eh_proj"].contains(where: { t.name.contains($0) }) {
                if type.blockSize > 1 { return .q8_0 }
            }
            if c == .output || (tiedEmbeddings && c == .tokenEmbedding) {
                if let o = params.outputTensorType {
                    type = o
                } else if falcon || t.columns % type.blockSize != 0 {
                    type = .q8_0
                } else if type != .q8_0 {
                    type = .q6_K
                }
            } else if c == .tokenEmbedding {
                if let e = params.tokenEmbeddingType { type = e }
            } else if isAttentionV(c) {
                if ft == .q2_K {
                    type = model.gqa >= 4 ? .q4_K : q3
                } else if ft == .q3_K_M {
                    type = attentionV < 2 ? .q5_K : .q4_K
                } else if ft == .q3_K_L {
                    type = .q5_K
                } else if ft.isIQ4 && model.gqa >= 4 {
                    type = .q5_K
                } else if (ft == .q4_K_M || ft == .q5_K_M) && useMoreBits(attentionV, attentionVCount) {
                    type = .q6_K
                } else if ft == .q4_K_S && attentionV < 4 {
                    type = .q5_K
                }
                if model.is70B && (type == q3 || type == .q4_K) { type = .q5_K }
                if model.expertCount == 8 { type = .q8_0 }
                attentionV += 1
            } else if c == .attentionK {
                if model.expertCount == 8 { type = .q8_0 }
            } else if c == .ffnDown {
                let (i, n) = try layer(ffnDown, t.name)
                if ft == .q2_K {
                    type = q3
                } else if ft == .q3_K_M {
                    type = i < n / 16 ? .q5_K : (!falcon || useMoreBits(i, n)) ? .q4_K : q3
                } else if ft == .q3_K_L {
                    type = falcon ? .q4_K : .q5_K
                } else if ft == .q4_K_M {
                    if falcon {
                        type = i < n / 16 ? .q6_K : useMoreBits(i, n) ? .q5_K : .q4_K
                    } else if useMoreBits(i, n) {
                        type = .q6_K
                    }
                } else if i < n / 8 && ft.isIQ4 && !params.hasImatrix {
                    type = .q5_K
                } else if ft == .q5_K_M && useMoreBits(i, n) {
                    type = .q6_K
                } else if ft == .q4_K_S && !falcon && i < n / 8 {
                    type = .q5_K
                } else if (ft == .q4_0 || ft == .q5_0) && params.hasImatrix && i < n / 8 {
                    type = ft == .q4_0 ? .q4_1 : .q5_1
                }
                ffnDown += 1
            } else if c == .attentionOutput {
                if !falcon {
                    if model.expertCount == 8 {
                        if [.q2_K, .q3_K_S, .q3_K_M, .q4_K_S, .q4_K_M, .iq4_NL, .iq4_XS].contains(ft) { type = .q5_K }
                    } else if ft == .q2_K {
                        type = q3
                    } else if ft == .q3_K_M {
                        type = .q4_K
                    } else if ft == .q3_K_L {
                        type = .q5_K
                    }
                } else if ft == .q3_K_L {
                    type = .q4_K
                }
            } else if c == .ffnGate {
                _ = try layer(ffnGate, t.name)
                ffnGate += 1
            } else if c == .ffnUp {
                _ = try layer(ffnUp, t.name)
                ffnUp += 1
            }
            return type
        }
    }
}
