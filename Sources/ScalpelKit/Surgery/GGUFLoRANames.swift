/// Hugging Face <-> llama.cpp names and layouts of LoRA modules, for `convert-adapter --to gguf` and GGUF
/// LoRA inputs.
///
/// Llama-family names: `model.embed_tokens` <-> `token_embd`, `lm_head` <-> `output`,
/// `model.layers.N.self_attn.{q,k,v,o}_proj` <-> `blk.N.attn_{q,k,v,output}`,
/// `model.layers.N.mlp.{gate,up,down}_proj` <-> `blk.N.ffn_{gate,up,down}`. For the `llama` architecture
/// llama.cpp's converter reorders the rows of q_proj and k_proj for its rotary layout (`permute` in
/// convert_hf_to_gguf.py: rows viewed as [heads, 2, head_dim / 2] have their last two axes swapped, with
/// the KV head count for k_proj); a LoRA's B factor, whose rows are those output rows, is reordered the
/// same way (convert_lora_to_gguf.py) and back. Head counts come from the base GGUF
/// (`<arch>.attention.head_count`, `head_count_kv`).
enum GGUFLoRANames {
    private static let attention = [("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output")]
    private static let mlp = [("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")]

    /// The GGUF tensor name (without ".weight") of a Hugging Face module path, or nil.
    static func ggufName(_ path: String) -> String? {
        let p = path.hasPrefix("model.") ? String(path.dropFirst(6)) : path
        if p == "embed_tokens" { return "token_embd" }
        if path == "lm_head" { return "output" }
        let parts = p.split(separator: ".").map(String.init)
        guard parts.count == 4, parts[0] == "layers", let layer = Int(parts[1]) else { return nil }
        let table = parts[2] == "self_attn" ? attention : parts[2] == "mlp" ? mlp : []
        guard let gguf = table.first(where: { $0.0 == parts[3] })?.1 else { return nil }
        return "blk.\(layer).\(gguf)"
    }

    /// The Hugging Face module path of a GGUF tensor name (without ".weight"), or nil.
    static func hfPath(_ name: String) -> String? {
        if name == "token_embd" { return "model.embed_tokens" }
        if name == "output" { return "lm_head" }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        if let hf = attention.first(where: { $0.1 == parts[2] })?.0 { return "model.layers.\(layer).self_attn.\(hf)" }
        if let hf = mlp.first(where: { $0.1 == parts[2] })?.0 { return "model.layers.\(layer).mlp.\(hf)" }
        return nil
    }

    /// The head count llama.cpp permutes a module's rows with (nil: no permutation).
    private static func permutationHeads(_ ggufName: String, arch: String, base: Checkpoint?) throws -> Int? {
        guard arch == "llama", ggufName.hasSuffix(".attn_q") || ggufName.hasSuffix(".attn_k") else { return nil }
        guard let base, let heads = base.metadata["\(arch).attention.head_count"]?.intValue else {
            throw ScalpelError.invalid(file: base?.path, tensor: ggufName, reason: "llama.cpp reorders q/k rows by attention head: give --base, the GGUF model (its \(arch).attention.head_count)")
        }
        let kv = base.metadata["\(arch).attention.head_count_kv"]?.intValue ?? heads
        return ggufName.hasSuffix(".attn_k") ? kv : heads
    }

    /// Reorders the rows of B [rows, rank] as llama.cpp's permute (or its inverse).
    static func permuteRows(_ b: [Float], rows: Int, rank: Int, heads: Int, inverse: Bool) throws -> [Float] {
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "\(rows) rows cannot be split into \(heads) heads of even size")
        }
        let d = rows / heads, half = d / 2
        var out = [Float](repeating: 0, count: b.count)
        for h in 0..<heads {
            for j in 0..<half {
                for t in 0..<2 {
                    let permuted = h * d + j * 2 + t, original = h * d + t * half + j
                    let (dst, src) = inverse ? (original, permuted) : (permuted, original)
                    for c in 0..<rank { out[dst * rank + c] = b[src * rank + c] }
                }
            }
        }
        return out
    }

    private static func f32Tensor(_ name: String, shape: [Int], _ values: [Float]) -> OutputTensor {
        OutputTensor(name: name, type: .plain(.f32), shape: shape, content: .filling { out in values.withUnsafeBytes { out.copyMemory(from: $0) } })
    }

    /// The GGUF LoRA tensors and metadata of PEFT-named modules. One `adapter.lora.alpha` serves every
    /// module (llama.cpp's scale is alpha / r per pair): the most common module alpha; a module with
    /// another alpha has B multiplied by its alpha / that alpha (f32), which is noted.
    static func fromPEFT(_ modules: [AdapterOutputModule], base: Checkpoint?, adapter: LoRAAdapter) throws -> ([OutputTensor], Metadata, [String]) {
        guard let base, base.format == .gguf else {
            throw ScalpelError.invalid(file: adapter.path, tensor: nil, reason: "--to gguf needs --base, the GGUF model the LoRA is for (llama.cpp's tensor names and head counts)")
        }
        let arch = base.metadata["general.architecture"]?.stringValue ?? "llama"
        var counts: [Double: Int] = [:]
        for m in modules { counts[m.alpha, default: 0] += 1 }
        let alpha = counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key ?? 1
        var tensors: [OutputTensor] = []
        var folded = 0
        for m in modules {
            guard m.kind == .linear, m.bias == nil else {
                throw ScalpelError.invalid(file: adapter.path, tensor: m.path, reason: m.bias != nil ? "has a lora_B bias, which a GGUF LoRA cannot hold" : "is an embedding LoRA: llama.cpp's flipped token_embd layout is not written")
            }
            let name = adapter.format == .gguf ? m.path : ggufName(m.path)
            guard let name, let info = base.info(named: name + ".weight") else {
                throw ScalpelError.invalid(file: adapter.path, tensor: m.path, reason: "has no llama.cpp tensor in \(base.path) (expected \(ggufName(m.path).map { $0 + ".weight" } ?? "a Llama-family module"))")
            }
            let rows = m.b.shape[0], cols = m.a.shape[1]
            guard info.shape == [rows, cols] else {
                throw ScalpelError.invalid(file: adapter.path, tensor: m.path, reason: "update of shape [\(rows), \(cols)] does not fit \(info.name) of shape \(info.shape)")
            }
            let heads = adapter.format == .gguf ? nil : try permutationHeads(name, arch: arch, base: base)
            tensors.append(AdapterOutput.renamed(m.a, name + ".weight.lora_a"))
            if heads == nil && m.alpha == alpha {
                tensors.append(AdapterOutput.renamed(m.b, name + ".weight.lora_b"))
                continue
            }
            var b = try floats(m.b)
            if m.alpha != alpha {
                let f = Float(m.alpha / alpha)
                b = b.map { $0 * f }
                folded += 1
            }
            if let heads { b = try permuteRows(b, rows: rows, rank: m.rank, heads: heads, inverse: false) }
            tensors.append(f32Tensor(name + ".weight.lora_b", shape: [rows, m.rank], b))
        }
        let metadata = Metadata([
            ("general.architecture", .string(arch)),
            ("general.type", .string("adapter")),
            ("general.name", .string("LoRA converted by scalpel")),
            ("adapter.type", .string("lora")),
            ("adapter.lora.alpha", .float32(Float(alpha))),
        ])
        let notes = folded > 0 ? ["\(folded) modules with another alpha than \(alpha) have it folded into lora_b (f32)"] : []
        return (tensors, metadata, notes)
    }

    /// PEFT-named modules of a GGUF LoRA's modules: names mapped back, q/k rows restored.
    static func toPEFT(_ modules: [AdapterOutputModule], base: Checkpoint?, adapter: LoRAAdapter) throws -> [AdapterOutputModule] {
        let arch = adapter.checkpoint.metadata["general.architecture"]?.stringValue ?? "llama"
        return try modules.map { m in
            guard let path = hfPath(m.path) else {
                throw ScalpelError.invalid(file: adapter.path, tensor: m.path + ".lora_a", reason: "has no known Hugging Face module name (Llama-family names are mapped)")
            }
            var out = m
            out.path = path
            if let heads = try permutationHeads(m.path, arch: arch, base: base) {
                let b = try permuteRows(try floats(m.b), rows: m.b.shape[0], rank: m.rank, heads: heads, inverse: true)
                out.b = f32Tensor("", shape: m.b.shape, b)
            }
            return out
        }
    }

    /// The f32 values of a tensor to be written (a copied view or computed content).
    static func floats(_ t: OutputTensor) throws -> [Float] {
        switch t.content {
        case .view(let v):
            return try FloatConversion.floats(v)
        case .compute(let fill):
            var bytes = [UInt8](repeating: 0, count: t.byteCount)
            _ = try bytes.withUnsafeMutableBytes { try fill($0) }
            guard case .plain(let d) = t.type else { return [] }
            var out = [Float](repeating: 0, count: t.shape.reduce(1, *))
            try bytes.withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(d), src, into: $0) } }
            return out
        }
    }
}
