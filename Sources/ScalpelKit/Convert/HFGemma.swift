import Foundation

/// Gemma 2 (`Gemma2ForCausalLM`) -> llama.cpp's `gemma2`, as `convert_hf_to_gguf.py`'s Gemma2Model: Llama's
/// names plus the post-attention and pre/post-feed-forward norms; every `*norm.weight` shifted by +1
/// (Hugging Face's Gemma RMSNorm multiplies by `1 + w`, llama.cpp by `w`); `lm_head` dropped (the output
/// is tied to `token_embd`); the hyperparameters are the class's own list (no rope base: llama.cpp uses
/// 10000), with the attention and final logit softcapping and the sliding window. The tokenizer is
/// SentencePiece (`tokenizer.model`) with `add_space_prefix` false.
enum HFGemma {
    static let gemma2 = HFArchitecture(
        hfNames: ["Gemma2ForCausalLM"],
        gguf: "gemma2",
        names: [
            "model.embed_tokens": "token_embd",
            "model.norm": "output_norm",
            "model.layers.{bid}.input_layernorm": "blk.{bid}.attn_norm",
            "model.layers.{bid}.self_attn.q_proj": "blk.{bid}.attn_q",
            "model.layers.{bid}.self_attn.k_proj": "blk.{bid}.attn_k",
            "model.layers.{bid}.self_attn.v_proj": "blk.{bid}.attn_v",
            "model.layers.{bid}.self_attn.o_proj": "blk.{bid}.attn_output",
            "model.layers.{bid}.post_attention_layernorm": "blk.{bid}.post_attention_norm",
            "model.layers.{bid}.pre_feedforward_layernorm": "blk.{bid}.ffn_norm",
            "model.layers.{bid}.post_feedforward_layernorm": "blk.{bid}.post_ffw_norm",
            "model.layers.{bid}.mlp.gate_proj": "blk.{bid}.ffn_gate",
            "model.layers.{bid}.mlp.up_proj": "blk.{bid}.ffn_up",
            "model.layers.{bid}.mlp.down_proj": "blk.{bid}.ffn_down",
        ],
        drop: { $0 == "lm_head.weight" },
        commonParameters: false,
        parameters: { folder, m in
            let a = "gemma2."
            m[a + "context_length"] = try folder.u32(["max_position_embeddings"])
            m[a + "embedding_length"] = try folder.u32(["hidden_size"])
            m[a + "block_count"] = try folder.u32(["num_hidden_layers"])
            m[a + "feed_forward_length"] = try folder.u32(["intermediate_size"])
            m[a + "attention.head_count"] = try folder.u32(["num_attention_heads"])
            m[a + "attention.head_count_kv"] = try folder.u32(folder.config["num_key_value_heads"] != nil ? ["num_key_value_heads"] : ["num_attention_heads"])
            m[a + "attention.layer_norm_rms_epsilon"] = try folder.f32(["rms_norm_eps"])
            m[a + "attention.key_length"] = try folder.u32(["head_dim"])
            m[a + "attention.value_length"] = try folder.u32(["head_dim"])
            m[a + "attn_logit_softcapping"] = try folder.f32(["attn_logit_softcapping"])
            m[a + "final_logit_softcapping"] = try folder.f32(["final_logit_softcapping"])
            m[a + "attention.sliding_window"] = try folder.u32(["sliding_window"])
        },
        vocab: { folder, m in
            guard folder.exists("tokenizer.model") else {
                throw ScalpelError.invalid(file: folder.path, tensor: nil, reason: "no tokenizer.model (Gemma 2 needs its SentencePiece model)")
            }
            try HFTokenizer.sentencePiece(folder, into: &m)
            m["tokenizer.ggml.add_space_prefix"] = .bool(false)
        },
        transform: { _, name, shape, type in
            // The reference shifts names ending in "norm.weight" after reading f16/f32 as stored (others as f32).
            guard name.hasSuffix("norm.weight") else { return nil }
            return .shift(shape, by: 1, roundToF16: type == .plain(.f16))
        },
        inverse: { _, _, name, shape in name.hasSuffix("norm.weight") ? .shift(shape, by: -1) : nil }
    )
}
