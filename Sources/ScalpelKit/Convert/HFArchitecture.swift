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
    /// Prefixes tried in front of an HF name the table does not know (GPT-2's `transformer.`, for folders
    /// saved from the bare model).
    var tryPrefixes: [String] = []
    /// HF names (full, with suffix) that are dropped (e.g. BERT's pooler).
    var drop: @Sendable (String) -> Bool = { _ in false }
    /// GGUF names that stay F32 whatever the output type (besides 1-D tensors and `*_norm.weight`).
    var alwaysF32: Set<String> = []
    /// False when the reference's class writes its hyperparameters itself without the common ones
    /// (`TextModel.set_gguf_parameters`): Gemma 2, Phi-3, GPT-2.
    var commonParameters = true
    /// Architecture-specific hyperparameters, appended after the common ones.
    var parameters: @Sendable (HFFolder, inout Metadata) throws -> Void = { _, _ in }
    /// The tokenizer writer.
    var vocab: @Sendable (HFFolder, inout Metadata) throws -> Void
    /// A transform of a tensor's values given its GGUF name, shape and stored type (e.g. Q/K row
    /// permutation, Gemma's norm +1, GPT-2's Conv1D transpose); nil keeps them.
    var transform: (@Sendable (HFFolder, String, [Int], TensorType) throws -> HFTransform?)? = nil
    /// The inverse transform for GGUF -> Hugging Face, given the GGUF file, its metadata, a GGUF tensor name
    /// and shape.
    var inverse: (@Sendable (String, Metadata, String, [Int]) throws -> HFTransform?)? = nil
    /// Tensors made from config.json rather than read (the reference's `generate_extra_tensors`, e.g.
    /// Phi-3's LongRoPE factors), written before the model's own.
    var extraTensors: (@Sendable (HFFolder) throws -> [OutputTensor])? = nil

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
        let key = parts.joined(separator: ".")
        guard let target = names[key] ?? tryPrefixes.lazy.compactMap({ names[$0 + key] }).first else { return nil }
        return (bid.map { target.replacingOccurrences(of: "{bid}", with: $0) } ?? target) + suffix
    }
}

/// A change of a tensor's values (and shape) on the way between Hugging Face and GGUF.
struct HFTransform: Sendable {
    /// The shape after the transform (numpy order).
    var shape: [Int]
    /// What it does, for `--dry-run`/`--verbose` ("Q/K rows permuted").
    var label: String
    /// Applied in place to the tensor's values as f32 (same element count).
    var apply: @Sendable (UnsafeMutableBufferPointer<Float>) -> Void

    /// A 2-D transpose: rows x cols -> cols x rows.
    static func transpose(_ shape: [Int], label: String = "transposed") -> HFTransform? {
        guard shape.count == 2 else { return nil }
        let rows = shape[0], cols = shape[1]
        return HFTransform(shape: [cols, rows], label: label) { v in
            let copy = Array(v)
            for r in 0..<rows { for c in 0..<cols { v[c * rows + r] = copy[r * cols + c] } }
        }
    }

    /// Adds `delta` to every value; with `roundToF16`, each result rounded to f16 as torch computes an
    /// f16 tensor's `x + 1` (the reference adds in the stored dtype when it is f16 or f32).
    static func shift(_ shape: [Int], by delta: Float, roundToF16: Bool = false) -> HFTransform {
        HFTransform(shape: shape, label: delta > 0 ? "norm +\(Int(delta))" : "norm \(Int(delta))") { v in
            if roundToF16 {
                for i in v.indices { v[i] = Float(Float16(v[i] + delta)) }
            } else {
                for i in v.indices { v[i] += delta }
            }
        }
    }
}

/// The architectures Scalpel converts.
public enum HFArchitectures {
    public static let all: [HFArchitecture] = [HFBert.bert] + HFLlama.all + [HFGemma.gemma2, HFPhi3.phi3, HFGPT2.gpt2]

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
