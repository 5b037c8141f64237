import Foundation

/// Phi-3 (`Phi3ForCausalLM`) -> llama.cpp's `phi3`, as `convert_hf_to_gguf.py`'s Phi3MiniModel: the fused
/// `qkv_proj` and `gate_up_proj` are kept fused, as the reference writes them (`attn_qkv`, and `ffn_up`
/// holding gate and up, which llama.cpp splits at run time); no Q/K permutation. Hyperparameters are the
/// class's own list: context length, the original context length (`original_max_position_embeddings`,
/// required), rope dimensions `int(partial_rotary_factor * hidden) // heads`, rope base, and the sliding
/// window (0 when absent). LongRoPE models (`rope_scaling` with `long_factor`, the 128k variants, for which
/// the reference adds `rope_factors_long/short` tensors) are refused.
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
            if let long = ropeParams?["long_factor"], long != .null, long.arrayValue?.isEmpty == false {
                let type = ropeParams?["rope_type"]?.stringValue ?? ropeParams?["type"]?.stringValue ?? "longrope"
                throw ScalpelError.invalid(file: file, tensor: nil, reason: "rope scaling \(type) with long/short factors (Phi-3 128k) is not supported yet")
            }
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
        }
    )
}
