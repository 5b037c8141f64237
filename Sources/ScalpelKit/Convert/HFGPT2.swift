import Foundation

/// GPT-2 (`GPT2LMHeadModel`) -> llama.cpp's `gpt2`, as `convert_hf_to_gguf.py`'s GPT2Model: the Conv1D
/// weights (`c_attn`, `c_proj`, `c_fc`, stored in x out) transposed to llama.cpp's out x in, the fused
/// `c_attn` kept as `attn_qkv`; `wpe` (position_embd) always F32; a tied `lm_head` (absent from the file)
/// left to llama.cpp, which reuses `token_embd`. Hyperparameters are the class's own list: context length
/// from `n_ctx` (`n_positions` when absent; the reference requires `n_ctx`), feed-forward length written as
/// 4 x `n_embd` whatever `n_inner` says (as the reference does; llama.cpp reads the tensor shapes).
/// The tokenizer is byte-level BPE (`tokenizer.json`).
enum HFGPT2 {
    static let conv1D: Set<String> = ["attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight"]

    static let gpt2 = HFArchitecture(
        hfNames: ["GPT2LMHeadModel"],
        gguf: "gpt2",
        names: [
            "transformer.wte": "token_embd",
            "transformer.wpe": "position_embd",
            "transformer.ln_f": "output_norm",
            "lm_head": "output",
            "transformer.h.{bid}.ln_1": "blk.{bid}.attn_norm",
            "transformer.h.{bid}.attn.c_attn": "blk.{bid}.attn_qkv",
            "transformer.h.{bid}.attn.c_proj": "blk.{bid}.attn_output",
            "transformer.h.{bid}.ln_2": "blk.{bid}.ffn_norm",
            "transformer.h.{bid}.mlp.c_fc": "blk.{bid}.ffn_up",
            "transformer.h.{bid}.mlp.c_proj": "blk.{bid}.ffn_down",
        ],
        tryPrefixes: ["transformer."],
        drop: { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") },
        alwaysF32: ["position_embd.weight"],
        commonParameters: false,
        parameters: { folder, m in
            let a = "gpt2."
            m[a + "block_count"] = try folder.u32(["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
            m[a + "context_length"] = try folder.u32(["n_ctx", "n_positions"])
            let embd = try folder.int(["n_embd"])
            m[a + "embedding_length"] = try folder.u32(["n_embd"])
            guard let ff = UInt32(exactly: 4 * embd) else {
                throw ScalpelError.invalid(file: folder.path + "/config.json", tensor: nil, reason: "n_embd \(embd) is out of range")
            }
            m[a + "feed_forward_length"] = .uint32(ff)
            m[a + "attention.head_count"] = try folder.u32(["n_head"])
            m[a + "attention.layer_norm_epsilon"] = try folder.f32(["layer_norm_epsilon"])
        },
        vocab: { folder, m in try HFTokenizer.byteLevelBPE(folder, into: &m) },
        transform: { folder, name, shape, _ in
            guard conv1D.contains(where: { name.hasSuffix("." + $0) }) else { return nil }
            guard let t = HFTransform.transpose(shape, label: "Conv1D transposed") else {
                throw ScalpelError.invalid(file: folder.path, tensor: name, reason: "a Conv1D weight has 2 dimensions, not \(shape.count)")
            }
            return t
        },
        inverse: { _, _, name, shape in
            conv1D.contains(where: { name.hasSuffix("." + $0) }) ? .transpose(shape, label: "Conv1D transposed") : nil
        }
    )
}
