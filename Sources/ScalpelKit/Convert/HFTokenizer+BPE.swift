import Foundation

extension HFTokenizer {
    /// Byte-level BPE pre-tokenizers, recognised from `tokenizer.json`'s `pre_tokenizer` (the reference
    /// hashes the ids of a test text instead): a `Split` on one of these regexes followed by `ByteLevel`, or
    /// a lone `ByteLevel` with `use_regex` (GPT-2's built-in regex).
    static let bpePreTokenizers: [(regex: String, name: String)] = [
        (#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, "llama-bpe"),
        (#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, "qwen2"),
    ]

    /// The llama.cpp pre-tokenizer name of a byte-level BPE `tokenizer.json`, or nil.
    static func bpePreTokenizerName(_ tok: JSONValue) -> String? {
        guard let pre = tok["pre_tokenizer"], pre != .null else { return nil }
        let steps = pre["type"]?.stringValue == "Sequence" ? (pre["pretokenizers"]?.arrayValue ?? []) : [pre]
        if steps.count == 1, steps[0]["type"]?.stringValue == "ByteLevel", steps[0]["use_regex"]?.boolValue ?? true {
            return "gpt-2"
        }
        guard steps.count == 2, steps[0]["type"]?.stringValue == "Split", steps[1]["type"]?.stringValue == "ByteLevel",
              steps[1]["use_regex"]?.boolValue == false, let regex = steps[0]["pattern"]?["Regex"]?.stringValue else { return nil }
        return bpePreTokenizers.first(where: { $0.regex == regex })?.name
    }

    /// A byte-level BPE `tokenizer.json` as llama.cpp's "gpt2" tokenizer (the reference's `_set_vocab_gpt2`):
    /// tokens and types as `baseVocab`, the pre-tokenizer name, merges, special tokens.
    static func byteLevelBPE(_ folder: HFFolder, into m: inout Metadata) throws {
        let file = folder.path + "/tokenizer.json"
        guard let tok = try folder.optionalJSON("tokenizer.json") else {
            throw ScalpelError.invalid(file: folder.path, tensor: nil, reason: "no tokenizer.model or tokenizer.json")
        }
        guard tok["model"]?["type"]?.stringValue == "BPE", let vocab = tok["model"]?["vocab"]?.objectValue else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "model type \(tok["model"]?["type"]?.stringValue ?? "none") is not a byte-level BPE")
        }
        guard let pre = bpePreTokenizerName(tok) else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "pre_tokenizer is not one Scalpel can name for llama.cpp (known: llama-bpe, qwen2, gpt-2; see docs/convert.md)")
        }
        let (tokens, types) = try baseVocab(folder, tok: tok, vocab: vocab, file: file)
        m["tokenizer.ggml.model"] = .string("gpt2")
        m["tokenizer.ggml.pre"] = .string(pre)
        m["tokenizer.ggml.tokens"] = .array(elementType: 8, tokens.map { .string($0) })
        m["tokenizer.ggml.token_type"] = .array(elementType: 5, types.map { .int32($0) })
        try specialVocab(folder, tok: tok, nVocab: Int.max, loadMerges: true, into: &m)
    }
}
