import Foundation

/// Hugging Face tokenizers as llama.cpp's `tokenizer.ggml.*` keys, following `convert_hf_to_gguf.py` and
/// gguf-py's `SpecialVocab` (llama.cpp 0c1e57098).
///
/// Token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
///
/// Pre-tokenizer names. The reference encodes a fixed text with the tokenizer and looks the hash of the ids
/// up in a table. Scalpel derives the name from `tokenizer.json`'s `pre_tokenizer` definition instead:
/// | pre_tokenizer in tokenizer.json | tokenizer.ggml.pre |
/// |---|---|
/// | `BertPreTokenizer` (WordPiece) | `jina-v2-en` (the last of the two names the reference's table gives the BERT-uncased hash; llama.cpp treats `bert-bge` and `jina-v2-en` alike) |
public enum HFTokenizer {
    static let normal: Int32 = 1, unknown: Int32 = 2, control: Int32 = 3, userDefined: Int32 = 4, unused: Int32 = 5, byte: Int32 = 6

    /// BERT's WordPiece vocabulary (`tokenizer.json` with a `WordPiece` model).
    static func wordPiece(_ folder: HFFolder, into m: inout Metadata) throws {
        let file = folder.path + "/tokenizer.json"
        guard let tok = try folder.optionalJSON("tokenizer.json") else {
            throw ScalpelError.invalid(file: folder.path, tensor: nil, reason: "no tokenizer.json (a WordPiece tokenizer is needed for BERT; vocab.txt alone is not read)")
        }
        guard tok["model"]?["type"]?.stringValue == "WordPiece", let vocab = tok["model"]?["vocab"]?.objectValue else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "model type \(tok["model"]?["type"]?.stringValue ?? "none") is not supported for BERT (WordPiece is)")
        }
        let preType = tok["pre_tokenizer"]?["type"]?.stringValue ?? "none"
        guard preType == "BertPreTokenizer" else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "pre_tokenizer \(preType) has no known llama.cpp name for WordPiece (BertPreTokenizer has)")
        }
        var (tokens, types) = try baseVocab(folder, tok: tok, vocab: vocab, file: file)
        // "Phantom space" form: control tokens as they are, "##x" -> "x", others "\u{2581}" + token.
        for i in tokens.indices where types[i] != control {
            // Byte-wise: "##" followed by a combining mark is one grapheme, which String.hasPrefix misses.
            let t = tokens[i]
            tokens[i] = t.utf8.starts(with: "##".utf8) ? String(String.UnicodeScalarView(t.unicodeScalars.dropFirst(2))) : "\u{2581}" + t
        }
        m["tokenizer.ggml.token_type_count"] = .uint32(UInt32(folder.config["type_vocab_size"]?.intValue ?? 1))
        m["tokenizer.ggml.model"] = .string("bert")
        m["tokenizer.ggml.pre"] = .string("jina-v2-en")
        m["tokenizer.ggml.tokens"] = .array(elementType: 8, tokens.map { .string($0) })
        m["tokenizer.ggml.token_type"] = .array(elementType: 5, types.map { .int32($0) })
        try specialVocab(folder, tok: tok, nVocab: tokens.count, loadMerges: false, into: &m)
    }

    /// Tokens and types for ids 0..<vocab_size from a tokenizer.json model vocab and its added tokens
    /// (the reference's `get_vocab_base`): missing ids are `[PAD<i>]` (unused), added special tokens (or
    /// ones that look special) are control, other added tokens user-defined.
    static func baseVocab(_ folder: HFFolder, tok: JSONValue, vocab: [(String, JSONValue)], file: String) throws -> ([String], [Int32]) {
        var byId: [Int: String] = [:]
        for (t, id) in vocab {
            guard let i = id.intValue, i >= 0 else { throw ScalpelError.malformed(file: file, tensor: nil, reason: "vocab id of \(t) is not a non-negative integer") }
            byId[i] = t
        }
        var added: [Int: (String, Bool)] = [:]
        for a in tok["added_tokens"]?.arrayValue ?? [] {
            guard let i = a["id"]?.intValue, let c = a["content"]?.stringValue else { continue }
            added[i] = (c, a["special"]?.boolValue ?? false)
            byId[i] = c
        }
        let maxId = byId.keys.max() ?? -1
        let size = folder.config["vocab_size"]?.intValue ?? (maxId + 1)
        guard maxId < size else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "token id \(maxId) is not below config.json vocab_size \(size)")
        }
        guard size <= 10_000_000 else { throw ScalpelError.invalid(file: file, tensor: nil, reason: "vocab_size \(size) is too large") }
        var tokens: [String] = [], types: [Int32] = []
        tokens.reserveCapacity(size); types.reserveCapacity(size)
        for i in 0..<size {
            guard let t = byId[i] else { tokens.append("[PAD\(i)]"); types.append(unused); continue }
            if let (content, special) = added[i] {
                if special || looksSpecial(content) {
                    tokens.append(content); types.append(control)
                } else {
                    tokens.append(content.replacingOccurrences(of: "\u{2581}", with: " ")); types.append(userDefined)
                }
            } else {
                tokens.append(t); types.append(normal)
            }
        }
        return (tokens, types)
    }

    /// Added tokens that the reference treats as control although not marked special.
    static func looksSpecial(_ t: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t)
            || (t.hasPrefix("<|") && t.hasSuffix("|>")) || (t.hasPrefix("<\u{FF5C}") && t.hasSuffix("\u{FF5C}>"))
            || (t.hasPrefix("<unused") && t.hasSuffix(">"))
    }

    /// Special token ids, add_*_token flags, chat template and normalizer flags (gguf-py's SpecialVocab):
    /// from tokenizer.json's post-processor and added tokens, tokenizer_config.json, then config.json.
    static func specialVocab(_ folder: HFFolder, tok: JSONValue?, nVocab: Int, loadMerges: Bool, into m: inout Metadata) throws {
        var types = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
        var ids: [(String, Int)] = []
        var add: [(String, Bool)] = []
        func setAdd(_ k: String, _ v: Bool, overwrite: Bool) {
            if let i = add.firstIndex(where: { $0.0 == k }) { if overwrite { add[i].1 = v } } else { add.append((k, v)) }
        }
        func setID(_ typ: String, _ id: Int?) {
            guard let id, id >= 0, id < nVocab, !ids.contains(where: { $0.0 == typ }) else { return }
            ids.append((typ, id))
        }
        var merges: [String] = []
        var lowercase: Bool?, stripAccents: Bool?
        var config: [String: JSONValue]? = try folder.optionalJSON("tokenizer_config.json")?.objectValue.map { Dictionary($0, uniquingKeysWith: { a, _ in a }) }
        func cfgToken(_ k: String) -> String? {
            guard let v = config?[k] else { return nil }
            return v.stringValue ?? v["content"]?.stringValue
        }
        let addedTokens = tok?["added_tokens"]?.arrayValue ?? []
        if let tok {
            if loadMerges, let ms = tok["model"]?["merges"]?.arrayValue {
                merges = ms.compactMap { e -> String? in
                    if let s = e.stringValue { return s }
                    guard let pair = e.arrayValue?.compactMap(\.stringValue), pair.count == 2 else { return nil }
                    return pair.map { String($0.unicodeScalars.map { $0 == " " ? Character(Unicode.Scalar(0x120)!) : Character($0) }) }.joined(separator: " ")
                }
            }
            if let n = tok["normalizer"] { parseNormalizer(n, &lowercase, &stripAccents) }
            var bos = cfgToken("bos_token"), cls = cfgToken("cls_token"), eos = cfgToken("eos_token"), sep = cfgToken("sep_token")
            if bos == nil || bos == "", let c = cls, !c.isEmpty, config != nil { config?["bos_token"] = .string(c); bos = c }
            if eos == nil || eos == "", let s = sep, !s.isEmpty, config != nil { config?["eos_token"] = .string(s); eos = s }
            if let pp = tok["post_processor"], pp != .null {
                let processors = pp["processors"]?.arrayValue ?? [pp]
                for p in processors {
                    switch p["type"]?.stringValue {
                    case "ByteLevel":
                        setAdd("bos", false, overwrite: false); setAdd("eos", false, overwrite: false)
                    case "RobertaProcessing":
                        setAdd("bos", true, overwrite: true); setAdd("eos", true, overwrite: true); setAdd("sep", true, overwrite: true)
                        if cls == nil, config != nil { cls = p["cls"]?.arrayValue?.first?.stringValue ?? bos; config?["cls_token"] = cls.map { .string($0) } }
                        if sep == nil, config != nil { sep = p["sep"]?.arrayValue?.first?.stringValue ?? eos; config?["sep_token"] = sep.map { .string($0) } }
                    case "TemplateProcessing":
                        let single = p["single"]?.arrayValue ?? []
                        var pair = p["pair"]?.arrayValue ?? []
                        var first: String?, last: String?
                        if single.count > 1 {
                            first = single[0]["SpecialToken"]?["id"]?.stringValue
                            if let f = first, !f.isEmpty {
                                if config == nil { bos = f } else if f != bos && f != cls {
                                    if bos == nil || bos == "" { config?["bos_token"] = .string(f); bos = f }
                                    if cls == nil || cls == "" { config?["cls_token"] = .string(f); cls = f }
                                }
                                setAdd("bos", f == bos || f == cls, overwrite: true)
                            }
                            last = single[single.count - 1]["SpecialToken"]?["id"]?.stringValue
                            if let l = last, !l.isEmpty {
                                if config == nil { eos = l } else if l != eos {
                                    if !types.contains("eot") { types.append("eot"); config?["eot_token"] = eos.map { .string($0) } }
                                    else if !types.contains("eom") { types.append("eom"); config?["eom_token"] = eos.map { .string($0) } }
                                    config?["eos_token"] = .string(l); eos = l
                                }
                                setAdd("eos", l == eos, overwrite: true)
                            }
                        }
                        if !pair.isEmpty {
                            let f = first ?? "", l = last ?? ""
                            let start = !f.isEmpty && pair[0]["SpecialToken"]?["id"]?.stringValue == f ? 1 : 0
                            let stop = !l.isEmpty && pair[pair.count - 1]["SpecialToken"]?["id"]?.stringValue == l ? pair.count - 1 : pair.count
                            pair = start < stop ? Array(pair[start..<stop]) : []
                            if !pair.isEmpty {
                                let a = pair[0]["Sequence"]?["id"]?.stringValue, b = pair[pair.count - 1]["Sequence"]?["id"]?.stringValue
                                if a == "A", b == "B", pair.count > 2 {
                                    let middle = Array(pair[1..<(pair.count - 1)])
                                    var addSep = false
                                    if let e = middle[0]["SpecialToken"]?["id"]?.stringValue, !e.isEmpty {
                                        if (e == sep || e == eos) && l.isEmpty { addSep = true }
                                    }
                                    if middle.count == 2, let e = middle[1]["SpecialToken"]?["id"]?.stringValue, !e.isEmpty {
                                        if e == sep || e == eos { addSep = true }
                                    }
                                    setAdd("sep", addSep, overwrite: true)
                                    if addSep, sep == nil || sep == "", config != nil { config?["sep_token"] = eos.map { .string($0) } }
                                }
                            }
                        }
                    default:
                        break
                    }
                }
            }
        }
        var chatTemplate: MetadataValue?
        if let config {
            var alt: String?
            if folder.exists("chat_template.jinja") { alt = try readSmallFile(folder.path + "/chat_template.jinja") }
            else if let j = try folder.optionalJSON("chat_template.json") { alt = j["chat_template"]?.stringValue }
            if let t = config["chat_template"]?.stringValue ?? alt { chatTemplate = .string(t) }
            for typ in types {
                if let a = config["add_\(typ)_token"]?.boolValue { setAdd(typ, a, overwrite: false) }
                guard let content = cfgToken("\(typ)_token") else { continue }
                setID(typ, addedTokens.first(where: { $0["content"]?.stringValue == content })?["id"]?.intValue)
            }
        }
        for typ in types {
            setID(typ, folder.config["\(typ)_token_id"]?.intValue ?? folder.config["text_config"]?["\(typ)_token_id"]?.intValue)
        }
        if !merges.isEmpty { m["tokenizer.ggml.merges"] = .array(elementType: 8, merges.map { .string($0) }) }
        let idKeys = ["bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
                      "pad": "padding_token_id", "mask": "mask_token_id"]
        for (typ, id) in ids { if let k = idKeys[typ] { m["tokenizer.ggml." + k] = .uint32(UInt32(id)) } }
        for (typ, v) in add where ["bos", "eos", "sep"].contains(typ) { m["tokenizer.ggml.add_\(typ)_token"] = .bool(v) }
        if let chatTemplate { m["tokenizer.chat_template"] = chatTemplate }
        if let lowercase { m["tokenizer.ggml.normalizer.lowercase"] = .bool(lowercase) }
        if let stripAccents { m["tokenizer.ggml.normalizer.strip_accents"] = .bool(stripAccents) }
    }

    static func parseNormalizer(_ n: JSONValue, _ lower: inout Bool?, _ strip: inout Bool?) {
        switch n["type"]?.stringValue {
        case "Lowercase": lower = true
        case "StripAccents": strip = true
        case "BertNormalizer":
            if let l = n["lowercase"] { lower = l.boolValue }
            if let s = n["strip_accents"] { strip = s.boolValue }
        case "Sequence":
            for x in n["normalizers"]?.arrayValue ?? [] { parseNormalizer(x, &lower, &strip) }
        default: break
        }
    }
}
