/// PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, planned here and written by
/// `Pipeline` (in a temporary sibling folder renamed into place, so a failed run leaves nothing behind).
public enum PEFTAdapterWriter {
    /// The PEFT key of a module's A factor: `base_model.model.<path>.lora_A.weight`
    /// (`lora_embedding_A` for embeddings).
    public static func aKey(_ path: String, kind: LoRAModule.Kind = .linear) -> String {
        LoRAAdapter.peftPrefix + path + (kind == .linear ? ".lora_A.weight" : ".lora_embedding_A")
    }

    /// The PEFT key of a module's B factor: `base_model.model.<path>.lora_B.weight`
    /// (`lora_embedding_B` for embeddings).
    public static func bKey(_ path: String, kind: LoRAModule.Kind = .linear) -> String {
        LoRAAdapter.peftPrefix + path + (kind == .linear ? ".lora_B.weight" : ".lora_embedding_B")
    }

    /// The PEFT key of a module's `lora_B` bias.
    public static func biasKey(_ path: String) -> String {
        LoRAAdapter.peftPrefix + path + ".lora_B.bias"
    }

    /// The module path of a base weight tensor ("model.layers.0.mlp.up_proj.weight" ->
    /// "model.layers.0.mlp.up_proj"), for naming the factors of an adapter made from a base.
    public static func modulePath(ofBaseTensor name: String) -> String {
        name.hasSuffix(".weight") ? String(name.dropLast(7)) : name
    }

    /// The plan of a PEFT adapter folder `folder`: `adapter_model.safetensors` (with
    /// `__metadata__ = {"format": "pt"}` as PEFT writes it), `adapter_config.json`, and `README.md` when
    /// a model card is given.
    ///
    /// Before anything is written, each `lora_A.weight` / `lora_embedding_A` is checked against the
    /// config: its row count must be the rank `config.rank(for:)` gives the module, or PEFT would fail
    /// to load the file.
    /// - Throws: `ScalpelError.invalid` for a rank that disagrees with the config.
    public static func plan(tensors: [OutputTensor], config: AdapterConfig, to folder: String, inputs: [String],
                            modelCard: String? = nil) throws -> Plan {
        for t in tensors {
            guard t.name.hasPrefix(LoRAAdapter.peftPrefix) else { continue }
            let key = t.name.dropFirst(LoRAAdapter.peftPrefix.count)
            for suffix in [".lora_A.weight", ".lora_embedding_A"] where key.hasSuffix(suffix) {
                let path = String(key.dropLast(suffix.count))
                let want = config.rank(for: path)
                guard t.shape.count == 2, t.shape[0] == want else {
                    throw ScalpelError.invalid(file: folder, tensor: t.name, reason: "has shape \(t.shape) but the config gives module \(path) rank \(want)")
                }
            }
        }
        var companions: [FolderExtra] = [.write(name: PEFTAdapter.configFile, contents: Array((JSONWriter.string(config.json, style: .pretty) + "\n").utf8))]
        if let modelCard { companions.append(.write(name: "README.md", contents: Array(modelCard.utf8))) }
        return Plan(destination: Destination(adapterFolder: folder), tensors: tensors, metadata: Metadata([("format", .string("pt"))]),
                    companions: companions, inputs: inputs)
    }
}
