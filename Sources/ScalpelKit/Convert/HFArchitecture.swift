import Foundation

/// How one Hugging Face architecture becomes llama.cpp's GGUF, following llama.cpp's
/// `convert_hf_to_gguf.py` (the version vendored by llama-cpp-python 0.3.36, llama.cpp 0c1e57098).
///
/// Each family has its table in its own file (`HFBert.swift`, `HFLlama.swift`...). `HFArchitectures.find`
/// picks the table from `config.json`'s `architectures`; an architecture without a table is refused.
public struct HFArchitecture: Sendable {
    /// The `architectures` values of `config.json` this table handles.
    public let hfNames: [String]
    /// `general.architecture` (the key prefix of every hyperparameter).
    public let gguf: String
    /// HF tensor name (without `.weight`/`.bias`, block number replaced by `{bid}`) -> GGUF name.
    let names: [String: String]
    /// Prefixes stripped from HF names before lookup (e.g. `bert.`).
    var stripPrefixes: [String] = []
    /// HF names (full, with suffix) that are dropped (e.g. BERT's pooler).
    var drop: @Sendable (String) -> Bool = { _ in false }
    /// GGUF names that stay F32 whatever the output type (besides 1-D tensors and `*_norm.weight`).
    var alwaysF32: Set<String> = []
    /// Architecture-specific hyperparameters, appended after the common ones.
    var parameters: @Sendable (HFFolder, inout Metadata) throws -> Void = { _, _ in }
    /// The tokenizer writer.
    var vocab: @Sendable (HFFolder, inout Metadata) throws -> Void
    /// A transform of a tensor's values given its GGUF name (e.g. Q/K row permutation); nil keeps them.
    var transform: (@Sendable (HFFolder, String, [Int]) throws -> (@Sendable (UnsafeMutableBufferPointer<Float>) -> Void)?)? = nil

    /// The GGUF name of an HF tensor name, or nil when the table has none.
    func ggufName(_ hfName: String) -> String? {
        var name = hfName
        for p in stripPrefixes where name.hasPrefix(p) { name.removeFirst(p.count) }
        var suffix = ""
        for s in [".weight", ".bias"] where name.hasSuffix(s) { suffix = s; name.removeLast(s.count) }
        var parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var bid: String?
        if let i = parts.firstIndex(where: { !$0.isEmpty && $0.allSatisfy(\.isNumber) }) {
            bid = parts[i]
            parts[i] = "{bid}"
        }
        guard let target = names[parts.joined(separator: ".")] else { return nil }
        return (bid.map { target.replacingOccurrences(of: "{bid}", with: $0) } ?? target) + suffix
    }
}

/// The architectures Scalpel converts.
public enum HFArchitectures {
    public static let all: [HFArchitecture] = [HFBert.bert] + HFLlama.all

    /// The table for a folder's `config.json`.
    /// - Throws: `ScalpelError.invalid` naming the architecture when none is supported.
    static func find(_ folder: HFFolder) throws -> HFArchitecture {
        let names = folder.config["architectures"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard let first = names.first else {
            throw ScalpelError.invalid(file: folder.path + "/config.json", tensor: nil, reason: "no \"architectures\" list in config.json")
        }
        for n in names { if let a = all.first(where: { $0.hfNames.contains(n) }) { return a } }
        let known = all.flatMap(\.hfNames).sorted().joined(separator: ", ")
        throw ScalpelError.invalid(file: folder.path + "/config.json", tensor: nil,
                                   reason: "architecture \(first) is not supported for conversion to GGUF (supported: \(known))")
    }
}
