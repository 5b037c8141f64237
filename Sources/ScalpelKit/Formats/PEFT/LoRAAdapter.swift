/// A LoRA adapter read for merging or stacking: its low-rank modules and the full tensors it replaces, in
/// one vocabulary for PEFT adapter folders and llama.cpp GGUF LoRAs.
///
/// PEFT keys (prefix `base_model.model.`): `<path>.lora_A.weight` [r, in], `<path>.lora_B.weight` [out, r],
/// `<path>.lora_B.bias`, `<path>.lora_embedding_A` [r, vocab], `<path>.lora_embedding_B` [dim, r],
/// `<path>.lora_magnitude_vector` (also read with a trailing `.weight`); any other key is a full tensor
/// that replaces the base tensor of the same name (`modules_to_save` copies, and the `<path>.base_layer.weight`
/// that PEFT saves for targeted embeddings). Rank and alpha come from the config (rank_pattern and
/// alpha_pattern included); the stored rank must agree with it.
public struct LoRAAdapter: Sendable {
    /// A full tensor of the adapter that takes the place of a base tensor.
    public struct Replacement: Sendable, Equatable {
        /// The adapter tensor.
        public var source: String
        /// The base tensor it replaces, as the adapter names it.
        public var target: String
    }

    public let checkpoint: Checkpoint
    /// The PEFT config; nil for a GGUF LoRA.
    public let config: AdapterConfig?
    /// Modules in the order of their A tensors in the file.
    public let modules: [LoRAModule]
    public let replacements: [Replacement]
    /// The family the adapter was trained as. Additive families (AdaLoRA, LoHa, LoKr, kohya) are read as
    /// exact LoRA modules (`AdapterDeltaModule.factors`), so `modules` covers them too.
    public internal(set) var family: AdapterFamily = .lora
    /// IA3 modules, which scale base weights instead of adding to them.
    public internal(set) var scaledModules: [AdapterDeltaModule] = []
    /// The modules as the family stores them (empty for LoRA, GGUF and kohya), with their own ranks.
    public internal(set) var familyModules: [AdapterDeltaModule] = []

    /// The path the adapter was opened from.
    public var path: String { checkpoint.path }

    /// True when some module carries a DoRA magnitude.
    public var usesDoRA: Bool { modules.contains { $0.magnitudeName != nil } }

    /// Opens a PEFT adapter folder or a GGUF LoRA file.
    public static func open(_ path: String) throws -> LoRAAdapter {
        try LoRAAdapter(try CheckpointReader.open(path))
    }

    /// Reads the modules of an opened adapter checkpoint.
    /// - Throws: `ScalpelError.invalid` when the checkpoint is not a LoRA adapter, and
    ///   `ScalpelError.malformed` for missing or inconsistent factors.
    public init(_ checkpoint: Checkpoint) throws {
        if checkpoint.format == .peftAdapter, let json = checkpoint.adapterConfig, json["peft_type"]?.stringValue ?? "LORA" != "LORA" {
            self = try LoRAAdapter(family: checkpoint, config: try AdapterConfig(json: json, file: checkpoint.path))
            return
        }
        self.checkpoint = checkpoint
        switch checkpoint.format {
        case .peftAdapter:
            let config = try AdapterConfig(json: checkpoint.adapterConfig ?? .object([]), file: checkpoint.path)
            self.config = config
            (modules, replacements) = try LoRAAdapter.peftModules(checkpoint, config: config)
        case .gguf:
            config = nil
            modules = try LoRAAdapter.ggufModules(checkpoint)
            replacements = []
        case .safetensors where KohyaLoRA.isKohya(checkpoint):
            config = nil
            modules = try KohyaLoRA.modules(checkpoint)
            replacements = []
            family = .kohya
        default:
            throw ScalpelError.invalid(file: checkpoint.path, tensor: nil,
                                       reason: "is not a LoRA adapter (expected a PEFT adapter folder, a GGUF LoRA or a kohya LoRA file)")
        }
    }

    /// The key prefix of every PEFT adapter tensor.
    public static let peftPrefix = "base_model.model."

    /// The parts of one module collected from the PEFT keys.
    private struct Parts {
        enum Slot { case a, b, bias, magnitude }
        var a: String?, b: String?, bias: String?, magnitude: String?
        var kind: LoRAModule.Kind = .linear
        var order = 0

        /// Stores `name` in `slot`; false when the slot is already taken.
        mutating func set(_ slot: Slot, _ name: String) -> Bool {
            switch slot {
            case .a: if a != nil { return false }; a = name
            case .b: if b != nil { return false }; b = name
            case .bias: if bias != nil { return false }; bias = name
            case .magnitude: if magnitude != nil { return false }; magnitude = name
            }
            return true
        }
    }

    private static let suffixes: [(String, Parts.Slot, LoRAModule.Kind?)] = [
        (".lora_A.weight", .a, .linear), (".lora_B.weight", .b, .linear), (".lora_B.bias", .bias, nil),
        (".lora_embedding_A", .a, .embedding), (".lora_embedding_B", .b, .embedding),
        (".lora_magnitude_vector", .magnitude, nil), (".lora_magnitude_vector.weight", .magnitude, nil),
    ]

    private static func peftModules(_ ckpt: Checkpoint, config: AdapterConfig) throws -> ([LoRAModule], [Replacement]) {
        var parts: [String: Parts] = [:]
        var replacements: [Replacement] = []
        for (order, t) in ckpt.tensors.enumerated() {
            guard t.name.hasPrefix(peftPrefix) else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "is not a PEFT adapter key (expected the prefix \(peftPrefix))")
            }
            let key = String(t.name.dropFirst(peftPrefix.count))
            if let (suffix, slot, kind) = suffixes.first(where: { key.hasSuffix($0.0) }) {
                let path = String(key.dropLast(suffix.count))
                var p = parts[path] ?? Parts(order: order)
                guard p.set(slot, t.name) else {
                    throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "module \(path) has this part twice")
                }
                if let kind { p.kind = kind }
                p.order = min(p.order, order)
                parts[path] = p
            } else if key.contains(".lora_") || key.hasPrefix("lora_") {
                throw ScalpelError.invalid(file: ckpt.path, tensor: t.name, reason: "is a LoRA tensor of a kind Scalpel does not merge")
            } else {
                replacements.append(Replacement(source: t.name, target: key.replacingOccurrences(of: ".base_layer.", with: ".")))
            }
        }
        var modules: [LoRAModule] = []
        for (path, p) in parts.sorted(by: { $0.value.order < $1.value.order }) {
            modules.append(try peftModule(path, p, ckpt, config))
        }
        return (modules, replacements)
    }

    private static func peftModule(_ path: String, _ p: Parts, _ ckpt: Checkpoint, _ config: AdapterConfig) throws -> LoRAModule {
        let someName = p.a ?? p.b ?? p.bias ?? p.magnitude ?? path
        guard let aName = p.a, let bName = p.b else {
            throw ScalpelError.malformed(file: ckpt.path, tensor: someName, reason: "module \(path) lacks its \(p.a == nil ? "A" : "B") factor")
        }
        let a = ckpt.info(named: aName)!, b = ckpt.info(named: bName)!
        guard a.shape.count == 2, b.shape.count == 2 else {
            throw ScalpelError.invalid(file: ckpt.path, tensor: aName, reason: "LoRA factors of shapes \(a.shape) and \(b.shape): only 2-D (linear and embedding) LoRAs are merged, not convolutions")
        }
        let rank = a.shape[0]
        guard b.shape[1] == rank else {
            throw ScalpelError.malformed(file: ckpt.path, tensor: bName, reason: "shape \(b.shape) does not chain with A of shape \(a.shape)")
        }
        let configRank = config.rank(for: path)
        guard configRank == rank else {
            throw ScalpelError.malformed(file: ckpt.path, tensor: aName, reason: "has rank \(rank) but the config gives this module r = \(configRank)")
        }
        let rows = b.shape[0]
        for name in [p.bias, p.magnitude].compactMap({ $0 }) {
            let shape = ckpt.info(named: name)!.shape
            guard shape == [rows] else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: name, reason: "has shape \(shape), expected [\(rows)]")
            }
        }
        if config.useDoRA && p.magnitude == nil {
            throw ScalpelError.malformed(file: ckpt.path, tensor: aName, reason: "use_dora is set but module \(path) has no lora_magnitude_vector")
        }
        return LoRAModule(
            path: path, kind: p.kind, weightName: path + ".weight", aName: aName, bName: bName,
            biasName: p.bias, magnitudeName: p.magnitude, rank: rank, alpha: config.alpha(for: path),
            scaling: config.scaling(for: path), productShape: [rows, a.shape[1]],
            transposed: p.kind == .embedding || config.fanInFanOut)
    }
}
