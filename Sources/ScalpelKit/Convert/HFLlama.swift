import Foundation

/// Llama-family models -> llama.cpp's `llama`, as `convert_hf_to_gguf.py`'s LlamaModel (which also takes
/// Mistral): the Q and K projections' rows are permuted from Hugging Face's rotate-half RoPE layout back
/// to the interleaved one llama.cpp uses (per head, row `j*half + i` -> `i*2 + j`; K with the KV head
/// count); `llama.vocab_size` and `llama.rope.dimension_count` are added; a tied output (no `lm_head`) is
/// left to llama.cpp, which reuses `token_embd`. The tokenizer is SentencePiece (`tokenizer.model`) or,
/// without one, byte-level BPE (`tokenizer.json`, Llama 3). Qwen2 and Qwen3 share the names (Qwen3 adds
/// Q/K norms) without the permutation.
enum HFLlama {
    static let names: [String: String] = [
        "model.embed_tokens": "token_embd",
        "model.norm": "output_norm",
        "lm_head": "output",
        "model.layers.{bid}.input_layernorm": "blk.{bid}.attn_norm",
        "model.layers.{bid}.self_attn.q_proj": "blk.{bid}.attn_q",
        "model.layers.{bid}.self_attn.k_proj": "blk.{bid}.attn_k",
        "model.layers.{bid}.self_attn.v_proj": "blk.{bid}.attn_v",
        "model.layers.{bid}.self_attn.o_proj": "blk.{bid}.attn_output",
        "model.layers.{bid}.post_attention_layernorm": "blk.{bid}.ffn_norm",
        "model.layers.{bid}.mlp.gate_proj": "blk.{bid}.ffn_gate",
        "model.layers.{bid}.mlp.up_proj": "blk.{bid}.ffn_up",
        "model.layers.{bid}.mlp.down_proj": "blk.{bid}.ffn_down",
    ]

    static let llama = HFArchitecture(
        hfNames: ["LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM"],
        gguf: "llama",
        names: names,
        parameters: { folder, m in
            m["llama.vocab_size"] = .uint32(UInt32(try folder.int(["vocab_size"])))
            let rope = try folder.config["head_dim"]?.intValue ?? (folder.int(["hidden_size"]) / folder.int(["num_attention_heads"]))
            m["llama.rope.dimension_count"] = .uint32(UInt32(rope))
        },
        vocab: { folder, m in
            if let cfg = try folder.optionalJSON("tokenizer_config.json"), let p = cfg["add_prefix_space"]?.boolValue {
                m["tokenizer.ggml.add_space_prefix"] = .bool(p)
            }
            if folder.exists("tokenizer.model") { try HFTokenizer.sentencePiece(folder, into: &m) }
            else { try HFTokenizer.byteLevelBPE(folder, into: &m) }
        },
        transform: { folder, name, shape, _ in
            let isQ = name.hasSuffix(".attn_q.weight") || name.hasSuffix(".attn_q.bias")
            let isK = name.hasSuffix(".attn_k.weight") || name.hasSuffix(".attn_k.bias")
            guard isQ || isK else { return nil }
            let nHead = try folder.int(["n_heads", "num_attention_heads"])
            let nKV = folder.hparam(["n_kv_heads", "num_key_value_heads"])?.intValue ?? nHead
            return try permutation(name: name, shape: shape, heads: isK ? nKV : nHead, file: folder.path, inverse: false)
        },
        inverse: { file, m, name, shape in
            let isQ = name.hasSuffix(".attn_q.weight") || name.hasSuffix(".attn_q.bias")
            let isK = name.hasSuffix(".attn_k.weight") || name.hasSuffix(".attn_k.bias")
            guard isQ || isK else { return nil }
            let heads = m["llama.attention.head_count"]?.intValue ?? 0
            let kv = m["llama.attention.head_count_kv"]?.intValue ?? heads
            return try permutation(name: name, shape: shape, heads: isK ? kv : heads, file: file, inverse: true)
        }
    )

    /// The Q/K row permutation of one tensor (`inverse`: GGUF -> Hugging Face).
    static func permutation(name: String, shape: [Int], heads: Int, file: String, inverse: Bool) throws -> HFTransform {
        let rows = shape.first ?? 1, cols = shape.count > 1 ? shape[1...].reduce(1, *) : 1
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ScalpelError.invalid(file: file, tensor: name, reason: "\(rows) rows do not split into \(heads) heads of 2 halves")
        }
        return HFTransform(shape: shape, label: inverse ? "Q/K rows unpermuted" : "Q/K rows permuted") { values in
            permuteRows(values, rows: rows, cols: cols, heads: heads, inverse: inverse)
        }
    }

    /// llama.cpp's `permute`: rows reshaped (heads, 2, half, cols), axes 1 and 2 swapped; with
    /// `inverse`, the permutation undone (GGUF -> Hugging Face).
    static func permuteRows(_ v: UnsafeMutableBufferPointer<Float>, rows: Int, cols: Int, heads: Int, inverse: Bool = false) {
        let perHead = rows / heads, half = perHead / 2
        let copy = Array(v)
        copy.withUnsafeBufferPointer { src in
            for h in 0..<heads {
                for i in 0..<half {
                    for j in 0..<2 {
                        let interleaved = (h * perHead + i * 2 + j) * cols
                        let split = (h * perHead + j * half + i) * cols
                        let (to, from) = inverse ? (split, interleaved) : (interleaved, split)
                        for c in 0..<cols { v[to + c] = src[from + c] }
                    }
                }
            }
        }
    }

    /// Qwen2 (`qwen2`): Llama's names with Q/K/V biases, no permutation.
    static let qwen2 = HFArchitecture(hfNames: ["Qwen2ForCausalLM"], gguf: "qwen2", names: names, vocab: qwenVocab)

    /// Qwen3 (`qwen3`): Qwen2 plus per-head Q/K RMS norms.
    static let qwen3 = HFArchitecture(
        hfNames: ["Qwen3ForCausalLM"], gguf: "qwen3",
        names: names.merging(["model.layers.{bid}.self_attn.q_norm": "blk.{bid}.attn_q_norm",
                               "model.layers.{bid}.self_attn.k_norm": "blk.{bid}.attn_k_norm"]) { a, _ in a },
        vocab: qwenVocab)

    static let qwenVocab: @Sendable (HFFolder, inout Metadata) throws -> Void = { folder, m in
        if folder.exists("tokenizer.model") { try HFTokenizer.sentencePiece(folder, into: &m) }
        else { try HFTokenizer.byteLevelBPE(folder, into: &m) }
    }

    static let all = [llama, qwen2, qwen3]
}

extension HFTokenizer {
    /// A SentencePiece `tokenizer.model` as llama.cpp's "llama" tokenizer (the reference's
    /// `_create_vocab_sentencepiece`): ids up to config.json's vocab_size, missing ones `[PAD<i>]`
    /// (score -10000, unused); pieces typed unknown/control/unused/byte, all others normal; entries of
    /// `added_tokens.json` and `tokenizer_config.json`'s `added_tokens_decoder` override with score -1000,
    /// control when special (or looking special), else user-defined.
    ///
    /// `phi3Rules`: Phi-3's own variant (the reference's Phi3MiniModel.set_vocab): added tokens of
    /// `added_tokens_decoder`, then of `tokenizer.json`'s `added_tokens`, are control only when marked
    /// special (no look-alike rule) and keep their text as is.
    static func sentencePiece(_ folder: HFFolder, into m: inout Metadata, phi3Rules: Bool = false) throws {
        let sp = try SentencePieceModel(path: folder.path + "/tokenizer.model")
        let size = folder.hparam(["vocab_size_per_layer_input", "vocab_size"])?.intValue ?? sp.pieces.count
        guard size > 0, size <= 10_000_000 else { throw ScalpelError.invalid(file: folder.path + "/config.json", tensor: nil, reason: "vocab_size \(size) is out of range") }
        var tokens = (0..<size).map { "[PAD\($0)]" }
        var scores = [Float](repeating: -10000, count: size)
        var types = [Int32](repeating: unused, count: size)
        for (i, p) in sp.pieces.enumerated() where i < size {
            tokens[i] = p.text
            scores[i] = p.score
            switch p.type {
            case .unknown: types[i] = unknown
            case .control: types[i] = control
            case .unused: types[i] = unused
            case .byte: types[i] = byte
            default: types[i] = normal
            }
        }
        if let added = try folder.optionalJSON("added_tokens.json")?.objectValue {
            for (k, v) in added {
                guard let id = v.intValue, id >= 0, id < size else { continue }
                tokens[id] = k; scores[id] = -1000; types[id] = userDefined
            }
        }
        let tok = try folder.optionalJSON("tokenizer.json")
        if phi3Rules {
            var added: [(Int, JSONValue)] = []
            for (k, v) in try folder.optionalJSON("tokenizer_config.json")?["added_tokens_decoder"]?.objectValue ?? [] {
                if let id = Int(k) { added.append((id, v)) }
            }
            for v in tok?["added_tokens"]?.arrayValue ?? [] {
                if let id = v["id"]?.intValue { added.append((id, v)) }
            }
            for (id, v) in added {
                guard id >= 0, id < size, let content = v["content"]?.stringValue else { continue }
                tokens[id] = content; scores[id] = -1000
                types[id] = v["special"]?.boolValue == true ? control : userDefined
            }
        } else if let decoder = try folder.optionalJSON("tokenizer_config.json")?["added_tokens_decoder"]?.objectValue {
            for (k, v) in decoder {
                guard let id = Int(k), id >= 0, id < size, let content = v["content"]?.stringValue else { continue }
                if v["special"]?.boolValue == true || looksSpecial(content) {
                    tokens[id] = content; types[id] = control
                } else {
                    tokens[id] = content.replacingOccurrences(of: "\u{2581}", with: " "); types[id] = userDefined
                }
                scores[id] = -1000
            }
        }
        m["tokenizer.ggml.model"] = .string("llama")
        m["tokenizer.ggml.pre"] = .string("default")
        m["tokenizer.ggml.tokens"] = .array(elementType: 8, tokens.map { .string($0) })
        m["tokenizer.ggml.scores"] = .array(elementType: 6, scores.map { .float32($0) })
        m["tokenizer.ggml.token_type"] = .array(elementType: 5, types.map { .int32($0) })
        try specialVocab(folder, tok: tok, nVocab: size, loadMerges: false, into: &m)
    }
}
