import Foundation

/// Phi-3 (`Phi3ForCausalLM`) -> llama.cpp's `phi3`, as `convert_hf_to_gguf.py`'s Phi3MiniModel: the fused
/// `qkv_proj` and `gate_up_proj` are kept fused, as the reference writes them (`attn_qkv`, and `ffn_up`
/// holding gate and up, which llama.cpp splits at run time); no Q/K permutation. Hyperparameters are the
/// class's own list: context length, the original context length (`original_max_position_embeddings`,
/// required), rope dimensions `int(partial_rotary_factor * hidden) // heads`, rope base, and the sliding
/// window (0 when absent). LongRoPE models (`rope_scaling` with `long_factor`: Phi-3 128k, Phi-3.5) get the
/// factors as `rope_factors_long/short` F32 tensors and `rope.scaling.attn_factor`, as the reference writes
/// them; GGUF -> Hugging Face folds them back into `rope_scaling`.
///
/// The tokenizer is SentencePiece with Phi-3's own rules for added tokens (`tokenizer_config.json`'s
/// `added_tokens_decoder` and `tokenizer.json`'s `added_tokens` become user-defined, or control when
/// special, score -1000, text as is), or byte-level BPE when `tokenizer_class` is `GPT2Tokenizer` (Phi-4).
enum HFPhi3 {
    static let phi3 = HFArchitecture(
        hfNames: ["Phi3ForCausalLM"],
        gguf: "phi3",
        names: [
            "model.embed_tokens": "token_embd",
            "model.norm": "output_norm",
            "lm_head": "output",
            "model.layers.{bid}.input_layernorm": "blk.{bid}.attn_norm",
            "model.layers.{bid}.self_attn.qkv_proj": "blk.{bid}.attn_qkv",
            "model.layers.{bid}.self_attn.o_proj": "blk.{bid}.attn_output",
            "model.layers.{bid}.post_attention_layernorm": "blk.{bid}.ffn_norm",
            "model.layers.{bid}.mlp.gate_up_proj": "blk.{bid}.ffn_up",
            "model.layers.{bid}.mlp.down_proj": "blk.{bid}.ffn_down",
        ],
        commonParameters: false,
        parameters: { folder, m in
            let a = "phi3.", file = folder.path + "/config.json"
            let rope = folder.config["rope_parameters"] ?? folder.config["rope_scaling"]
            let ropeParams = rope == .null ? nil : rope
            if let long = try longRope(folder) { m[a + "rope.scaling.attn_factor"] = .float32(long.attnFactor) }
            let embd = try folder.int(["hidden_size", "n_embd"]), heads = try folder.int(["num_attention_heads", "n_head"])
            guard heads > 0 else { throw ScalpelError.invalid(file: file, tensor: nil, reason: "num_attention_heads is 0") }
            let pct = ropeParams?["partial_rotary_factor"]?.doubleValue ?? folder.hparam(["partial_rotary_factor", "rope_pct", "rope_percent"])?.doubleValue ?? 1.0
            guard let orig = ropeParams?["original_max_position_embeddings"]?.intValue ?? folder.config["original_max_position_embeddings"]?.intValue,
                  let origU = UInt32(exactly: orig) else {
                throw ScalpelError.invalid(file: file, tensor: nil, reason: "no original_max_position_embeddings in config.json (Phi-3 needs it)")
            }
            guard let theta = ropeParams?["rope_theta"]?.doubleValue ?? folder.hparam(["global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"])?.doubleValue else {
                throw ScalpelError.invalid(file: file, tensor: nil, reason: "no rope_theta in config.json")
            }
            m[a + "context_length"] = try folder.u32(["n_positions", "max_position_embeddings"])
            m[a + "rope.scaling.original_context_length"] = .uint32(origU)
            m[a + "embedding_length"] = try folder.u32(["hidden_size", "n_embd"])
            m[a + "feed_forward_length"] = try folder.u32(["intermediate_size"])
            m[a + "block_count"] = try folder.u32(["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
            m[a + "attention.head_count"] = try folder.u32(["num_attention_heads", "n_head"])
            m[a + "attention.head_count_kv"] = try folder.u32(["num_key_value_heads", "n_head_kv"])
            m[a + "attention.layer_norm_rms_epsilon"] = try folder.f32(["rms_norm_eps"])
            m[a + "rope.dimension_count"] = .uint32(UInt32(clamping: Int((pct * Double(embd)).rounded(.towardZero)) / heads))
            m[a + "rope.freq_base"] = .float32(Float(theta))
            m[a + "attention.sliding_window"] = .uint32(UInt32(clamping: folder.config["sliding_window"]?.intValue ?? 0))
        },
        vocab: { folder, m in
            if try folder.optionalJSON("tokenizer_config.json")?["tokenizer_class"]?.stringValue == "GPT2Tokenizer" {
                try HFTokenizer.byteLevelBPE(folder, into: &m)
            } else {
                guard folder.exists("tokenizer.model") else {
                    throw ScalpelError.invalid(file: folder.path, tensor: nil, reason: "no tokenizer.model (Phi-3 needs its SentencePiece model)")
                }
                try HFTokenizer.sentencePiece(folder, into: &m, phi3Rules: true)
            }
        },
        extraTensors: { folder in
            guard let long = try longRope(folder) else { return [] }
            return [("rope_factors_long.weight", long.long), ("rope_factors_short.weight", long.short)].map { name, values in
                OutputTensor(name: name, type: .plain(.f32), shape: [values.count], content: .filling { buf in
                    values.withUnsafeBytes { buf.copyMemory(from: $0) }
                }, action: "from config.json rope_scaling")
            }
        }
    )

    /// The tensors llama.cpp's Phi-3 reads its LongRoPE factors from, instead of config.json.
    static let ropeFactorTensors: Set<String> = ["rope_factors_long.weight", "rope_factors_short.weight"]

    /// LongRoPE (Phi-3 128k, Phi-3.5): `rope_scaling` with `long_factor` and `short_factor`, each of
    /// rope-dimensions/2 values, as the reference's `generate_extra_tensors`: the attention factor is
    /// sqrt(1 + ln(scale) / ln(original context)) for `su`/`longrope`, 0.1 ln(scale) + 1 for `yarn`
    /// (1 when scale = context / original context <= 1). Nil without long factors.
    static func longRope(_ folder: HFFolder) throws -> (attnFactor: Float, long: [Float], short: [Float])? {
        let file = folder.path + "/config.json"
        let rope = folder.config["rope_parameters"] ?? folder.config["rope_scaling"]
        guard let rope, rope != .null, let longJSON = rope["long_factor"]?.arrayValue, !longJSON.isEmpty else { return nil }
        let embd = try folder.int(["hidden_size", "n_embd"]), heads = try folder.int(["num_attention_heads", "n_head"])
        let ctx = try folder.int(["n_positions", "max_position_embeddings"])
        guard let orig = rope["original_max_position_embeddings"]?.intValue ?? folder.config["original_max_position_embeddings"]?.intValue, orig > 1, heads > 0 else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "no original_max_position_embeddings in config.json (Phi-3 needs it)")
        }
        let pct = rope["partial_rotary_factor"]?.doubleValue ?? folder.hparam(["partial_rotary_factor", "rope_pct", "rope_percent"])?.doubleValue ?? 1.0
        let ropeDims = Int((pct * Double(embd)).rounded(.towardZero)) / heads
        let scale = Double(ctx) / Double(orig)
        let type = (rope["rope_type"]?.stringValue ?? rope["type"]?.stringValue ?? "").lowercased()
        let attn: Double
        switch type {
        case "su", "longrope": attn = scale > 1 ? (1 + log(scale) / log(Double(orig))).squareRoot() : 1
        case "yarn": attn = scale > 1 ? 0.1 * log(scale) + 1 : 1
        case "": throw ScalpelError.invalid(file: file, tensor: nil, reason: "rope_scaling has long factors but no type")
        default: throw ScalpelError.invalid(file: file, tensor: nil, reason: "rope scaling type \(type) is not supported for Phi-3 (su, longrope and yarn are)")
        }
        let long = longJSON.compactMap(\.doubleValue).map(Float.init)
        let short = (rope["short_factor"]?.arrayValue ?? []).compactMap(\.doubleValue).map(Float.init)
        guard long.count == longJSON.count, short.count == long.count, long.count * 2 == ropeDims else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "rope_scaling long_factor and short_factor must be \(ropeDims / 2) numbers each")
        }
        return (Float(attn), long, short)
    }
}
