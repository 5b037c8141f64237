import Foundation

/// A GGUF model back to a Hugging Face folder: the inverse of `HFToGGUF` for the same architectures.
///
/// Tensor names go back through the architecture's table, Llama's Q/K row permutation is undone, every
/// tensor is dequantized or cast to the output dtype (F32 by default), and `config.json` is rebuilt from
/// the GGUF keys (a missing `output.weight` means tied embeddings). Tokenizers: BERT's WordPiece vocabulary
/// is rebuilt (`vocab.txt`, `tokenizer_config.json`, `special_tokens_map.json`), and a byte-level BPE with
/// GPT-2's pre-tokenizer (`vocab.json`, `merges.txt`, `tokenizer_config.json`); SentencePiece and other BPE
/// tokenizers are not rebuilt yet, which the plan's warnings say.
public enum GGUFToHF {


    /// True for a GGUF whose `general.architecture` Scalpel can turn back into a Hugging Face folder and
    /// whose every tensor has a Hugging Face name (other GGUFs are written to folders as plain shards).
    public static func supports(_ ckpt: Checkpoint) -> Bool {
        guard ckpt.format == .gguf, let a = ckpt.metadata["general.architecture"]?.stringValue,
              let arch = HFArchitectures.all.first(where: { $0.gguf == a }) else { return false }
        var inverse: [String: String] = [:]
        for (hf, g) in arch.names { inverse[g] = hf }
        return !ckpt.tensors.isEmpty && ckpt.tensors.allSatisfy {
            hfName($0.name, inverse: inverse) != nil || (a == "phi3" && HFPhi3.ropeFactorTensors.contains($0.name))
        }
    }

    /// The plan of writing `ckpt` as a Hugging Face folder at `destination` (a folder); what cannot be
    /// carried over (tokenizers other than WordPiece, BERT's pooler) is in the plan's warnings.
    public static func plan(_ ckpt: Checkpoint, dtype: DType = .f32, destination: Destination) throws -> Plan {
        guard destination.isFolder else {
            throw ScalpelError.invalid(file: destination.path, tensor: nil, reason: "a Hugging Face model is written to a folder")
        }
        let m = ckpt.metadata
        guard let a = m["general.architecture"]?.stringValue, let arch = HFArchitectures.all.first(where: { $0.gguf == a }) else {
            throw ScalpelError.invalid(file: ckpt.path, tensor: nil, reason: "general.architecture is not one Scalpel converts to Hugging Face")
        }
        var tensors: [OutputTensor] = []
        var inverse: [String: String] = [:]
        for (hf, g) in arch.names { inverse[g] = hf }
        for (i, info) in ckpt.tensors.enumerated() {
            if a == "phi3", HFPhi3.ropeFactorTensors.contains(info.name) { continue }  // into config.json's rope_scaling
            guard let hfName = hfName(info.name, inverse: inverse) else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: info.name, reason: "has no Hugging Face name for \(a)")
            }
            let view = try ckpt.view(at: i)
            let transform = try arch.inverse?(ckpt.path, m, info.name, info.shape)
            let count = info.elementCount, type = info.type
            tensors.append(OutputTensor(name: hfName, type: .plain(dtype), shape: transform?.shape ?? info.shape, content: .filling { buf in
                let f = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(count, 1))
                defer { f.deallocate() }
                let fv = UnsafeMutableBufferPointer(rebasing: f[0..<count])
                try FloatConversion.decode(type, view.bytes, into: fv, tensor: info.name)
                transform?.apply(fv)
                try FloatConversion.encode(UnsafeBufferPointer(fv), as: dtype, into: buf, tensor: hfName)
            }, action: "\(type) -> \(dtype.rawValue)" + (transform.map { " (\($0.label))" } ?? ""), onWritten: { ckpt.release(info.name) }))
        }
        var notes: [String] = []
        var extras: [FolderExtra] = [.write(name: "config.json", contents: Array(JSONWriter.string(try config(ckpt, arch: arch, dtype: dtype)).utf8) + [10])]
        if a == "bert" {
            extras += try bertTokenizer(ckpt)
            notes.append("BERT's pooler is not in the GGUF (llama.cpp's converter drops it): transformers initializes it anew")
        } else if m["tokenizer.ggml.model"]?.stringValue == "gpt2", m["tokenizer.ggml.pre"]?.stringValue == "gpt-2",
                  let files = try gpt2Tokenizer(ckpt) {
            extras += files
        } else {
            notes.append("the \(m["tokenizer.ggml.model"]?.stringValue ?? "unknown") tokenizer is not rebuilt (only BERT's WordPiece and GPT-2's byte-level BPE are); copy the tokenizer files from the original model")
        }
        var plan = Plan(destination: destination, tensors: tensors, metadata: Metadata([("format", .string("pt"))]),
                        companions: extras, inputs: ckpt.sourcePaths)
        plan.warnings = notes
        let n = tensors.count
        plan.report = { _ in
            Report(text: "converted to a Hugging Face \(a) folder: \(Format.counted(n, "tensor")), config.json",
                   fields: [("architecture", .string(a)), ("tensors", .int(n))])
        }
        return plan
    }

    static func hfName(_ name: String, inverse: [String: String]) -> String? {
        var base = name, suffix = ""
        for s in [".weight", ".bias"] where base.hasSuffix(s) { suffix = s; base.removeLast(s.count) }
        var parts = base.split(separator: ".").map(String.init)
        var bid: String?
        if let i = parts.firstIndex(where: { $0.allSatisfy(\.isNumber) }) { bid = parts[i]; parts[i] = "{bid}" }
        guard let hf = inverse[parts.joined(separator: ".")] else { return nil }
        return (bid.map { hf.replacingOccurrences(of: "{bid}", with: $0) } ?? hf) + suffix
    }

    /// config.json from the GGUF keys.
    static func config(_ ckpt: Checkpoint, arch: HFArchitecture, dtype: DType) throws -> JSONValue {
        let m = ckpt.metadata, a = arch.gguf
        func int(_ k: String) -> JSONValue? { m[a + "." + k]?.intValue.map { .int($0) } }
        func dbl(_ k: String) -> JSONValue? { m[a + "." + k]?.doubleValue.map { .double(Double(String(Float($0)))!) } }
        func tid(_ k: String) -> JSONValue? { m["tokenizer.ggml." + k]?.intValue.map { .int($0) } }
        func required(_ k: String) throws -> Int {
            guard let v = m[a + "." + k]?.intValue else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: nil, reason: "no \(a).\(k) to rebuild config.json from")
            }
            return v
        }
        let vocab = ckpt.info(named: "token_embd.weight")?.shape.first ?? (m["tokenizer.ggml.tokens"].flatMap { if case .array(_, let t) = $0 { return t.count }; return nil } ?? 0)
        let torchDType: JSONValue = .string(dtype == .f32 ? "float32" : dtype == .f16 ? "float16" : "bfloat16")
        let tied: JSONValue = .bool(ckpt.info(named: "output.weight") == nil)
        let ids: [(String, JSONValue?)] = [("bos_token_id", tid("bos_token_id")), ("eos_token_id", tid("eos_token_id")),
                                           ("pad_token_id", tid("padding_token_id") ?? .null)]
        if a == "gpt2" {
            // GPT-2's feed-forward length in the GGUF is always 4 x n_embd (the reference writes it so); the
            // tensor says what it is.
            let pairs: [(String, JSONValue?)] = [
                ("architectures", .array([.string(arch.hfNames[0])])), ("model_type", .string("gpt2")),
                ("n_embd", int("embedding_length")), ("n_layer", int("block_count")), ("n_head", int("attention.head_count")),
                ("n_positions", int("context_length")), ("n_ctx", int("context_length")),
                ("n_inner", ckpt.info(named: "blk.0.ffn_up.weight").map { .int($0.shape[0]) }),
                ("layer_norm_epsilon", dbl("attention.layer_norm_epsilon")), ("activation_function", .string("gelu_new")),
                ("vocab_size", .int(vocab)), ("tie_word_embeddings", tied), ("torch_dtype", torchDType),
            ] + ids
            return .object(pairs.compactMap { k, v in v.map { (k, $0) } })
        }
        var pairs: [(String, JSONValue?)] = [
            ("architectures", .array([.string(arch.hfNames[0])])),
            ("hidden_size", int("embedding_length")),
            ("intermediate_size", int("feed_forward_length")),
            ("num_hidden_layers", int("block_count")),
            ("num_attention_heads", int("attention.head_count")),
            ("max_position_embeddings", int("context_length")),
            ("vocab_size", .int(vocab)),
            ("torch_dtype", torchDType),
        ]
        switch a {
        case "bert":
            pairs += [("model_type", .string("bert")), ("layer_norm_eps", dbl("attention.layer_norm_epsilon")),
                      ("type_vocab_size", .int(ckpt.info(named: "token_types.weight")?.shape.first ?? 2)),
                      ("hidden_act", .string("gelu")), ("position_embedding_type", .string("absolute")),
                      ("pad_token_id", tid("padding_token_id") ?? .int(0))]
        case "gemma2":
            // llama.cpp scales queries by 1/sqrt(head_dim), or 1/sqrt(hidden/heads) for the 46-layer 27B
            // model: that is the query_pre_attn_scalar the GGUF implies. It uses rope base 10000 unless set.
            let headDim = try required("attention.key_length")
            let scalar = try required("block_count") == 46 ? try required("embedding_length") / max(try required("attention.head_count"), 1) : headDim
            pairs += [("model_type", .string("gemma2")),
                      ("num_key_value_heads", int("attention.head_count_kv") ?? int("attention.head_count")),
                      ("head_dim", .int(headDim)), ("query_pre_attn_scalar", .int(scalar)),
                      ("rms_norm_eps", dbl("attention.layer_norm_rms_epsilon")),
                      ("rope_theta", dbl("rope.freq_base") ?? .double(10000)),
                      ("attn_logit_softcapping", dbl("attn_logit_softcapping") ?? .null),
                      ("final_logit_softcapping", dbl("final_logit_softcapping") ?? .null),
                      ("sliding_window", int("attention.sliding_window")),
                      ("hidden_activation", .string("gelu_pytorch_tanh")), ("tie_word_embeddings", .bool(true))] + ids
        case "phi3":
            let hidden = try required("embedding_length"), heads = try required("attention.head_count")
            let ropeDims = m["phi3.rope.dimension_count"]?.intValue ?? hidden / max(heads, 1)
            let window = m["phi3.attention.sliding_window"]?.intValue ?? 0
            pairs += [("model_type", .string("phi3")),
                      ("num_key_value_heads", int("attention.head_count_kv") ?? int("attention.head_count")),
                      ("original_max_position_embeddings", int("rope.scaling.original_context_length") ?? int("context_length")),
                      ("rms_norm_eps", dbl("attention.layer_norm_rms_epsilon")),
                      ("rope_theta", dbl("rope.freq_base") ?? .double(10000)),
                      ("partial_rotary_factor", .double(Double(ropeDims * heads) / Double(hidden))),
                      ("sliding_window", window > 0 ? .int(window) : .null),
                      ("hidden_act", .string("silu")), ("tie_word_embeddings", tied)] + ids
            if let long = try floats(ckpt, "rope_factors_long.weight"), let short = try floats(ckpt, "rope_factors_short.weight") {
                pairs.append(("rope_scaling", .object([("type", .string("longrope")),
                                                       ("long_factor", .array(long.map { .double(Double(String($0))!) })),
                                                       ("short_factor", .array(short.map { .double(Double(String($0))!) }))])))
            }
        default:
            let modelType = ["llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"][a] ?? a
            pairs += [("model_type", .string(modelType)),
                      ("num_key_value_heads", int("attention.head_count_kv") ?? int("attention.head_count")),
                      ("rms_norm_eps", dbl("attention.layer_norm_rms_epsilon")),
                      ("rope_theta", dbl("rope.freq_base") ?? .double(10000)),
                      ("hidden_act", .string("silu")),
                      ("tie_word_embeddings", tied),
                      ("bos_token_id", tid("bos_token_id")), ("eos_token_id", tid("eos_token_id")),
                      ("attention_bias", .bool(ckpt.info(named: "blk.0.attn_q.bias") != nil)),
                      ("head_dim", int("attention.key_length"))]
            if let f = m[a + ".rope.scaling.factor"]?.doubleValue, m[a + ".rope.scaling.type"]?.stringValue == "linear" {
                pairs.append(("rope_scaling", .object([("rope_type", .string("linear")), ("factor", .double(f))])))
            }
        }
        return .object(pairs.compactMap { k, v in v.map { (k, $0) } })
    }

    /// A (small) tensor's values as f32, nil when the GGUF has no such tensor.
    static func floats(_ ckpt: Checkpoint, _ name: String) throws -> [Float]? {
        guard let i = ckpt.tensors.firstIndex(where: { $0.name == name }) else { return nil }
        let info = ckpt.tensors[i]
        guard info.elementCount <= 1 << 20 else {
            throw ScalpelError.invalid(file: ckpt.path, tensor: name, reason: "\(info.elementCount) values is too many for a config.json list")
        }
        var out = [Float](repeating: 0, count: info.elementCount)
        let view = try ckpt.view(at: i)
        try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(info.type, view.bytes, into: $0, tensor: name) }
        return out
    }

    /// GPT-2's tokenizer files (`vocab.json`, `merges.txt`, `tokenizer_config.json` for GPT2Tokenizer) from a
    /// "gpt2" tokenizer with the `gpt-2` pre-tokenizer: the tokens are already byte-level strings and the
    /// merges "a b" lines. Nil without tokens or merges.
    static func gpt2Tokenizer(_ ckpt: Checkpoint) throws -> [FolderExtra]? {
        let m = ckpt.metadata
        guard case .array(_, let items)? = m["tokenizer.ggml.tokens"], case .array(_, let mergeItems)? = m["tokenizer.ggml.merges"] else {
            return nil
        }
        let tokens = items.compactMap(\.stringValue), merges = mergeItems.compactMap(\.stringValue)
        guard tokens.count == items.count, merges.count == mergeItems.count, !tokens.isEmpty else { return nil }
        var seen = Set<String>()
        var vocab: [(String, JSONValue)] = []
        for (i, t) in tokens.enumerated() where seen.insert(t).inserted { vocab.append((t, .int(i))) }
        func tok(_ k: String) -> JSONValue? {
            m["tokenizer.ggml.\(k)_token_id"]?.intValue.flatMap { $0 >= 0 && $0 < tokens.count ? .string(tokens[$0]) : nil }
        }
        var config: [(String, JSONValue)] = [("tokenizer_class", .string("GPT2Tokenizer")), ("add_prefix_space", .bool(false))]
        for (k, key) in [("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("pad_token", "padding")] {
            if let t = tok(key) { config.append((k, t)) }
        }
        if let ctx = m[(m["general.architecture"]?.stringValue ?? "") + ".context_length"]?.intValue { config.append(("model_max_length", .int(ctx))) }
        return [.write(name: "vocab.json", contents: Array(JSONWriter.string(.object(vocab)).utf8) + [10]),
                .write(name: "merges.txt", contents: Array((["#version: 0.2"] + merges).joined(separator: "\n").utf8) + [10]),
                .write(name: "tokenizer_config.json", contents: Array(JSONWriter.string(.object(config)).utf8) + [10])]
    }

    /// BERT's WordPiece files from `tokenizer.ggml.tokens` (undoing the phantom-space form).
    static func bertTokenizer(_ ckpt: Checkpoint) throws -> [FolderExtra] {
        guard case .array(_, let items)? = ckpt.metadata["tokenizer.ggml.tokens"],
              case .array(_, let typeItems)? = ckpt.metadata["tokenizer.ggml.token_type"] else {
            throw ScalpelError.invalid(file: ckpt.path, tensor: nil, reason: "no tokenizer.ggml.tokens / token_type to rebuild vocab.txt from")
        }
        var lines: [String] = []
        for (t, ty) in zip(items, typeItems) {
            guard let s = t.stringValue else { continue }
            if ty.intValue == Int(HFTokenizer.control) { lines.append(s) }
            else if s.unicodeScalars.first == "\u{2581}" { lines.append(String(String.UnicodeScalarView(s.unicodeScalars.dropFirst()))) }
            else { lines.append("##" + s) }
        }
        func tok(_ k: String) -> String? {
            ckpt.metadata["tokenizer.ggml.\(k)_token_id"]?.intValue.flatMap { $0 < lines.count ? lines[$0] : nil }
        }
        var special: [(String, JSONValue)] = []
        for (k, key) in [("unk_token", "unknown"), ("sep_token", "seperator"), ("pad_token", "padding"), ("cls_token", "bos"), ("mask_token", "mask")] {
            if let t = tok(key) { special.append((k, .string(t))) }
        }
        let lower = ckpt.metadata["tokenizer.ggml.normalizer.lowercase"].map { if case .bool(let b) = $0 { return b }; return true } ?? true
        let config: JSONValue = .object([("tokenizer_class", .string("BertTokenizer")), ("do_lower_case", .bool(lower))] + special)
        return [.write(name: "vocab.txt", contents: Array((lines.joined(separator: "\n") + "\n").utf8)),
                .write(name: "tokenizer_config.json", contents: Array(JSONWriter.string(config).utf8) + [10]),
                .write(name: "special_tokens_map.json", contents: Array(JSONWriter.string(.object(special)).utf8) + [10])]
    }
}
