/// What `inspect` reports about an adapter of any family: its type, its modules and their ranks, and its
/// parameter count. Built from the header only (a kohya alpha is read when the data is mapped).
public struct AdapterSummary: Sendable {
    public var family: AdapterFamily
    /// Modules with their rank (LoRA, AdaLoRA: rows of A; LoHa, LoKr: the config's r; IA3: 1).
    public var moduleRanks: [(String, Int)] = []
    /// Elements of all the adapter's tensors (what it stores).
    public var parameters: Int
    /// Full tensors that replace base tensors (modules_to_save).
    public var replacements = 0
    /// Prompt learning: virtual tokens.
    public var virtualTokens: Int?
    /// AdaLoRA: the rank every layer was created with (`init_r`, PEFT's ranknum).
    public var initialRank: Int?

    /// The summary of `ckpt`, or nil when it is not an adapter.
    public init?(_ ckpt: Checkpoint) throws {
        parameters = ckpt.parameterCount
        if ckpt.format == .peftAdapter, let json = ckpt.adapterConfig {
            let config = try AdapterConfig(json: json, file: ckpt.path + "/" + PEFTAdapter.configFile)
            family = AdapterFamily(peftType: config.peftType) ?? .lora
            switch family {
            case .lora:
                for t in ckpt.tensors {
                    for suffix in [".lora_A.weight", ".lora_embedding_A"] where t.name.hasSuffix(suffix) {
                        moduleRanks.append((String(t.name.dropFirst(LoRAAdapter.peftPrefix.count).dropLast(suffix.count)), t.shape.first ?? 0))
                    }
                }
                replacements = ckpt.tensors.filter { !$0.name.contains(".lora_") }.count
            default:
                let reader = try AdapterFamilyReader(ckpt, config: config)
                moduleRanks = reader.modules.map { ($0.path, $0.rank) }
                replacements = reader.replacements.count
                virtualTokens = reader.promptLearning?.virtualTokens
                if family == .adalora { initialRank = config.json["init_r"]?.intValue ?? 12 }
            }
        } else if ckpt.format == .safetensors, KohyaLoRA.isKohya(ckpt) {
            family = .kohya
            for t in ckpt.tensors where t.name.hasSuffix(KohyaLoRA.downSuffix) {
                moduleRanks.append((String(t.name.dropLast(KohyaLoRA.downSuffix.count)), t.shape.first ?? 0))
            }
        } else {
            return nil
        }
    }

    /// Module count per rank, by rank.
    public var rankHistogram: [(Int, Int)] {
        var counts: [Int: Int] = [:]
        for (_, r) in moduleRanks { counts[r, default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// One line for the text report.
    public var line: String {
        if let tokens = virtualTokens {
            return "\(family.displayName) (\(family.rawValue)): \(tokens) virtual tokens, \(Format.grouped(parameters)) parameters; not mergeable"
        }
        var s = "\(family.displayName)"
        if family != .kohya { s += " (\(family.rawValue))" }
        s += ": \(moduleRanks.count) modules"
        if family != .ia3 {
            s += ", ranks " + rankHistogram.map { "r=\($0.0) x\($0.1)" }.joined(separator: ", ")
        }
        if let r = initialRank { s += " (init_r \(r))" }
        s += ", \(Format.grouped(parameters)) parameters"
        if replacements > 0 { s += ", \(replacements) full tensors" }
        return s
    }

    /// The JSON keys added to inspect's `adapter` object.
    public var jsonPairs: [(String, JSONValue)] {
        var pairs: [(String, JSONValue)] = [
            ("family", .string(family.rawValue)),
            ("modules", .int(moduleRanks.count)),
            ("parameters", .int(parameters)),
            ("module_ranks", .object(moduleRanks.map { ($0.0, .int($0.1)) })),
        ]
        if let v = virtualTokens { pairs.append(("num_virtual_tokens", .int(v))) }
        if let r = initialRank { pairs.append(("init_r", .int(r))) }
        return pairs
    }
}
