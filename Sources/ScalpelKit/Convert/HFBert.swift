import Foundation

/// BERT (`BertModel`, `BertForMaskedLM`...) -> llama.cpp's `bert`, as `convert_hf_to_gguf.py`'s BertModel:
/// `bert.` prefixes stripped, `.gamma`/`.beta` renamed, the pooler, `position_ids` and the MLM/NSP heads
/// dropped; no causal attention; pooling type from sentence-transformers' `modules.json`; WordPiece vocab
/// in "phantom space" form (`##x` -> `x`, other non-control tokens prefixed with U+2581).
enum HFBert {
    static let bert = HFArchitecture(
        hfNames: ["BertModel", "BertForMaskedLM", "CamembertModel", "BertForSequenceClassification"],
        gguf: "bert",
        names: [
            "embeddings.word_embeddings": "token_embd",
            "embeddings.token_type_embeddings": "token_types",
            "embeddings.position_embeddings": "position_embd",
            "embeddings.LayerNorm": "token_embd_norm",
            "encoder.layer.{bid}.attention.self.query": "blk.{bid}.attn_q",
            "encoder.layer.{bid}.attention.self.key": "blk.{bid}.attn_k",
            "encoder.layer.{bid}.attention.self.value": "blk.{bid}.attn_v",
            "encoder.layer.{bid}.attention.output.dense": "blk.{bid}.attn_output",
            "encoder.layer.{bid}.attention.output.LayerNorm": "blk.{bid}.attn_output_norm",
            "encoder.layer.{bid}.intermediate.dense": "blk.{bid}.ffn_up",
            "encoder.layer.{bid}.output.dense": "blk.{bid}.ffn_down",
            "encoder.layer.{bid}.output.LayerNorm": "blk.{bid}.layer_output_norm",
        ],
        stripPrefixes: ["bert."],
        drop: { name in
            let n = name.hasPrefix("bert.") ? String(name.dropFirst(5)) : name
            return ["embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"].contains(n)
                || n.hasPrefix("cls.predictions") || n.hasPrefix("cls.seq_relationship")
        },
        alwaysF32: ["position_embd.weight", "token_types.weight"],
        parameters: { folder, m in
            m["bert.attention.causal"] = .bool(false)
            if let pooling = try poolingType(folder) { m["bert.pooling_type"] = .uint32(pooling) }
        },
        vocab: { folder, m in try HFTokenizer.wordPiece(folder, into: &m) }
    )

    /// llama.cpp's pooling type from sentence-transformers' `modules.json` (MEAN 1, CLS 2, LAST 3).
    static func poolingType(_ folder: HFFolder) throws -> UInt32? {
        guard let modules = try folder.optionalJSON("modules.json")?.arrayValue else { return nil }
        guard let pooling = modules.first(where: { $0["type"]?.stringValue?.hasSuffix("Pooling") == true }),
              let sub = pooling["path"]?.stringValue else { return nil }
        let configPath = sub + "/config.json"
        guard folder.exists(configPath) else {
            throw ScalpelError.invalid(file: folder.path + "/modules.json", tensor: nil,
                                       reason: "names the pooling module \(sub) but \(configPath) is missing")
        }
        let c = try HFFolder.readJSON(folder.path + "/" + configPath)
        if c["pooling_mode_mean_tokens"]?.boolValue == true { return 1 }
        if c["pooling_mode_cls_token"]?.boolValue == true { return 2 }
        if c["pooling_mode_lasttoken"]?.boolValue == true { return 3 }
        switch c["pooling_mode"]?.stringValue {
        case "mean": return 1
        case "cls": return 2
        case "lasttoken": return 3
        default:
            throw ScalpelError.invalid(file: folder.path + "/" + configPath, tensor: nil, reason: "only mean, cls and last-token pooling are supported")
        }
    }
}
