import Foundation

/// The llama.cpp name of a Hugging Face tensor, by its role, so that `LlamaQuantRules` can type a
/// safetensors checkpoint as llama.cpp would type the GGUF that `convert_hf_to_gguf.py` makes of it:
/// `model.layers.3.self_attn.q_proj.weight` is `blk.3.attn_q.weight`, `lm_head.weight` is
/// `output.weight`, BERT's `encoder.layer.0.attention.self.query.weight` is `blk.0.attn_q.weight`, ...
/// Names already in llama.cpp's form are kept; names with no known role get none (they are typed as
/// llama.cpp types "other" tensors).
public enum LlamaTensorNames {
    /// Whole-model tensors: a suffix of the HF name and the llama.cpp base name.
    static let global: [(String, String)] = [
        ("embed_tokens", "token_embd"), ("word_embeddings", "token_embd"), ("wte", "token_embd"),
        ("embed_in", "token_embd"), ("tok_embeddings", "token_embd"),
        ("lm_head", "output"), ("embed_out", "output"),
        ("position_embeddings", "position_embd"), ("wpe", "position_embd"),
        ("token_type_embeddings", "token_types"),
        ("embeddings.LayerNorm", "token_embd_norm"), ("emb_ln", "token_embd_norm"),
        ("model.norm", "output_norm"), ("final_layernorm", "output_norm"), ("ln_f", "output_norm"),
        ("final_layer_norm", "output_norm"),
    ]

    /// Layer tensors: the module path after the layer number and the llama.cpp name after `blk.N.`.
    static let layer: [(String, String)] = [
        ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"), ("self_attn.qkv_proj", "attn_qkv"), ("self_attn.dense", "attn_output"),
        ("self_attention.query_key_value", "attn_qkv"), ("self_attention.dense", "attn_output"),
        ("attention.query_key_value", "attn_qkv"), ("attention.dense", "attn_output"),
        ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
        ("attn.q_proj", "attn_q"), ("attn.k_proj", "attn_k"), ("attn.v_proj", "attn_v"), ("attn.out_proj", "attn_output"),
        ("attention.self.query", "attn_q"), ("attention.self.key", "attn_k"), ("attention.self.value", "attn_v"),
        ("attention.output.dense", "attn_output"), ("attention.output.LayerNorm", "attn_output_norm"),
        ("intermediate.dense", "ffn_up"), ("output.dense", "ffn_down"), ("output.LayerNorm", "layer_output_norm"),
        ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"),
        ("mlp.gate_up_proj", "ffn_up"), ("mlp.fc1", "ffn_up"), ("mlp.fc2", "ffn_down"),
        ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down"),
        ("mlp.dense_h_to_4h", "ffn_up"), ("mlp.dense_4h_to_h", "ffn_down"),
        ("feed_forward.w1", "ffn_gate"), ("feed_forward.w3", "ffn_up"), ("feed_forward.w2", "ffn_down"),
        ("attention.wq", "attn_q"), ("attention.wk", "attn_k"), ("attention.wv", "attn_v"), ("attention.wo", "attn_output"),
        ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm"),
        ("ln_1", "attn_norm"), ("ln_2", "ffn_norm"),
        ("mlp.gate", "ffn_gate_inp"), ("block_sparse_moe.gate", "ffn_gate_inp"),
    ]

    /// The llama.cpp name, or nil when the tensor has no known role (the name is then used as it is).
    public static func llamaName(_ hf: String) -> String? {
        if hf.hasPrefix("blk.") || ["token_embd.", "output.", "output_norm.", "position_embd.", "token_types."].contains(where: hf.hasPrefix) {
            return hf
        }
        let parts = hf.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let suffix = parts.last, parts.count >= 2 else { return nil }
        let module = parts.dropLast()
        // A layer: the first all-digit component after "layers"/"layer"/"h"/"blocks".
        if let i = module.indices.dropFirst().first(where: { k in
            Int(module[k]) != nil && ["layers", "layer", "h", "blocks", "block"].contains(module[k - 1])
        }) {
            let path = module[(i + 1)...].joined(separator: ".")
            if let (_, role) = layer.first(where: { path == $0.0 || path.hasSuffix("." + $0.0) }) {
                return "blk.\(module[i]).\(role).\(suffix)"
            }
            return nil
        }
        let path = module.joined(separator: ".")
        if let (_, role) = global.first(where: { path == $0.0 || path.hasSuffix("." + $0.0) }) {
            return "\(role).\(suffix)"
        }
        return nil
    }
}

extension LlamaQuantRules.Model {
    /// The model described by a Hugging Face `config.json` (as `convert_hf_to_gguf.py` names the
    /// architecture: Mistral and Mixtral are llama); fields it lacks fall back to the tensor names
    /// (layer count) and to no GQA and no experts.
    public init(huggingFaceConfig config: JSONValue?, llamaNames: [String]) {
        let c = config.map { $0["text_config"] ?? $0 } ?? .object([])
        let type = c["model_type"]?.stringValue ?? config?["model_type"]?.stringValue ?? "unknown"
        let arch: String
        switch type {
        case "mistral", "mixtral": arch = "llama"
        case "RefinedWeb", "RefinedWebModel": arch = "falcon"
        default: arch = type
        }
        let heads = c["num_attention_heads"]?.intValue ?? c["n_head"]?.intValue ?? 0
        self.init(architecture: arch,
                  layerCount: c["num_hidden_layers"]?.intValue ?? c["n_layer"]?.intValue ?? LlamaQuantRules.layerCount(llamaNames),
                  headCount: heads,
                  headCountKV: c["num_key_value_heads"]?.intValue ?? heads,
                  expertCount: c["num_local_experts"]?.intValue ?? c["num_experts"]?.intValue ?? 0)
    }
}
