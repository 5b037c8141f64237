extension LoRAAdapter {
    /// The modules of a llama.cpp GGUF LoRA (`general.type` "adapter", `adapter.type` "lora").
    ///
    /// Tensors `<base tensor>.lora_a` (numpy [r, in]) and `<base tensor>.lora_b` ([out, r]) change the
    /// base tensor named by the prefix. llama.cpp's scale is `adapter.lora.alpha / r` with r the rank of
    /// each pair, or 1 when alpha is 0 or absent.
    static func ggufModules(_ ckpt: Checkpoint) throws -> [LoRAModule] {
        let type = ckpt.metadata["general.type"]?.stringValue
        let adapterType = ckpt.metadata["adapter.type"]?.stringValue
        guard type == "adapter", adapterType == "lora" else {
            throw ScalpelError.invalid(file: ckpt.path, tensor: nil,
                                       reason: "is a GGUF \(type ?? "model") file, not a LoRA adapter (general.type \"adapter\", adapter.type \"lora\")")
        }
        let alpha = ckpt.metadata["adapter.lora.alpha"]?.doubleValue ?? 0
        var modules: [LoRAModule] = []
        for t in ckpt.tensors {
            if t.name.hasSuffix(".lora_b") {
                guard ckpt.info(named: String(t.name.dropLast(7)) + ".lora_a") != nil else {
                    throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "has no matching .lora_a")
                }
                continue
            }
            guard t.name.hasSuffix(".lora_a") else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: t.name, reason: "is not a .lora_a or .lora_b tensor")
            }
            let target = String(t.name.dropLast(7))
            guard let b = ckpt.info(named: target + ".lora_b") else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "has no matching .lora_b")
            }
            guard t.shape.count == 2, b.shape.count == 2, b.shape[1] == t.shape[0] else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: b.name, reason: "shape \(b.shape) does not chain with lora_a of shape \(t.shape)")
            }
            let rank = t.shape[0]
            let path = target.hasSuffix(".weight") ? String(target.dropLast(7)) : target
            modules.append(LoRAModule(
                path: path, kind: .linear, weightName: target, aName: t.name, bName: b.name, biasName: nil,
                magnitudeName: nil, rank: rank, alpha: alpha, scaling: alpha == 0 ? 1 : alpha / Double(rank),
                productShape: [b.shape[0], t.shape[1]], transposed: false))
        }
        return modules
    }
}
