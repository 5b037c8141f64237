import Foundation

/// Reads the modules of a PEFT adapter folder whose `peft_type` is not LORA.
///
/// Keys are `base_model.model.<path>.<part>` with PEFT's part names: AdaLoRA `lora_A`, `lora_E`, `lora_B`;
/// IA3 `ia3_l`; LoHa `hada_w1_a`, `hada_w1_b`, `hada_w2_a`, `hada_w2_b`; LoKr `lokr_w1` or `lokr_w1_a` +
/// `lokr_w1_b`, and `lokr_w2` or `lokr_w2_a` + `lokr_w2_b`. Any other key is a full replacement tensor
/// (`modules_to_save`). Config fields: AdaLoRA `init_r` (default 12), `lora_alpha` (8), `fan_in_fan_out`;
/// LoHa / LoKr `r` (8), `alpha` (8), `rank_pattern`, `alpha_pattern` (PEFT's regex keys); IA3
/// `feedforward_modules`, `fan_in_fan_out`. Prompt-learning adapters hold `prompt_embeddings`
/// [virtual tokens, width] and have no modules.
public struct AdapterFamilyReader {
    /// What a prompt-learning adapter holds.
    public struct PromptLearning: Sendable {
        public var virtualTokens: Int
        /// Elements of the saved tensors.
        public var parameters: Int
        /// Width of one virtual token's stored vector (prefix tuning: 2 * layers * hidden).
        public var width: Int
    }

    public var family: AdapterFamily
    public var modules: [AdapterDeltaModule] = []
    public var replacements: [LoRAAdapter.Replacement] = []
    public var promptLearning: PromptLearning?

    private static let parts: [AdapterFamily: [String]] = [
        .adalora: ["lora_A", "lora_E", "lora_B"],
        .ia3: ["ia3_l"],
        .loha: ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"],
        .lokr: ["lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"],
    ]

    /// Reads `ckpt` (a PEFT adapter folder) under `config`.
    /// - Throws: `ScalpelError.malformed` for missing parts, shapes that do not chain, or stored ranks
    ///   that disagree with the config; `ScalpelError.invalid` for forms Scalpel does not compute (LoHa's
    ///   and LoKr's CP decomposition of convolutions, AdaLoRA embeddings).
    public init(_ ckpt: Checkpoint, config: AdapterConfig) throws {
        guard let family = AdapterFamily(peftType: config.peftType) else {
            throw ScalpelError.invalid(file: ckpt.path, tensor: nil, reason: "peft_type \(config.peftType) is not supported")
        }
        self.family = family
        if family.isPromptLearning {
            let tokens = config.json["num_virtual_tokens"]?.intValue ?? ckpt.tensors.first?.shape.first ?? 0
            promptLearning = PromptLearning(virtualTokens: tokens, parameters: ckpt.parameterCount,
                                            width: ckpt.tensors.first.map { $0.shape.count > 1 ? $0.shape[1] : 0 } ?? 0)
            return
        }
        guard family != .lora, let names = AdapterFamilyReader.parts[family] else { return }
        var byPath: [String: [String: String]] = [:]
        var order: [String] = []
        for t in ckpt.tensors {
            guard t.name.hasPrefix(LoRAAdapter.peftPrefix) else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "is not a PEFT adapter key (expected the prefix \(LoRAAdapter.peftPrefix))")
            }
            let key = String(t.name.dropFirst(LoRAAdapter.peftPrefix.count))
            if let part = names.first(where: { key.hasSuffix("." + $0) || key.hasSuffix("." + $0 + ".weight") }) {
                let suffix = key.hasSuffix(".weight") && !key.hasSuffix("." + part) ? "." + part + ".weight" : "." + part
                let path = String(key.dropLast(suffix.count))
                if byPath[path] == nil { order.append(path) }
                guard byPath[path, default: [:]].updateValue(t.name, forKey: part) == nil else {
                    throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "module \(path) has this part twice")
                }
            } else if key.contains(".lora_") || key.contains(".hada_") || key.contains(".lokr_") || key.contains(".ia3_") {
                throw ScalpelError.invalid(file: ckpt.path, tensor: t.name, reason: "is a \(family.displayName) tensor of a kind Scalpel does not read")
            } else {
                replacements.append(LoRAAdapter.Replacement(source: t.name, target: key.replacingOccurrences(of: ".base_layer.", with: ".")))
            }
        }
        for path in order {
            modules.append(try AdapterFamilyReader.module(path, byPath[path]!, family, ckpt, config))
        }
    }

    private static func module(_ path: String, _ parts: [String: String], _ family: AdapterFamily, _ ckpt: Checkpoint, _ config: AdapterConfig) throws -> AdapterDeltaModule {
        func need(_ part: String) throws -> (String, [Int]) {
            guard let name = parts[part] else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: parts.values.sorted().first, reason: "module \(path) lacks its \(part)")
            }
            return (name, ckpt.info(named: name)!.shape)
        }
        func malformed(_ tensor: String, _ reason: String) -> ScalpelError { .malformed(file: ckpt.path, tensor: tensor, reason: reason) }
        let fifo = config.fanInFanOut
        let params = parts.values.reduce(0) { $0 + (ckpt.info(named: $1)?.elementCount ?? 0) }
        switch family {
        case .adalora:
            let (a, aShape) = try need("lora_A"), (e, eShape) = try need("lora_E"), (b, bShape) = try need("lora_B")
            guard aShape.count == 2, bShape.count == 2, eShape == [aShape[0], 1], bShape[1] == aShape[0] else {
                throw malformed(b, "AdaLoRA shapes A \(aShape), E \(eShape), B \(bShape) do not chain (A [r, in], E [r, 1], B [out, r])")
            }
            let initR = config.json["init_r"]?.intValue ?? 12
            let alpha = config.json["lora_alpha"]?.doubleValue ?? 8
            guard aShape[0] <= initR else { throw malformed(a, "has \(aShape[0]) triplets, more than init_r \(initR)") }
            // PEFT: scaling = lora_alpha (or r when lora_alpha is 0), divided by ranknum + 1e-5, ranknum = init_r.
            let scaling = alpha > 0 ? alpha : Double(initR)
            let scale = Double(Float(scaling) / (Float(initR) + 1e-5))
            return AdapterDeltaModule(path: path, family: family, rule: .svdTriplets(a: a, e: e, b: b), weightName: path + ".weight",
                                      productShape: [bShape[0], aShape[1]], transposed: fifo, rank: aShape[0], scale: scale, parameters: params)
        case .ia3:
            let (l, shape) = try need("ia3_l")
            guard shape.count == 2, shape[0] == 1 || shape[1] == 1 else {
                throw malformed(l, "has shape \(shape); an IA3 vector of a linear layer is [out, 1] or [1, in] (convolutions are not read)")
            }
            let columns = shape[0] == 1 && shape[1] != 1 || (shape == [1, 1] && isFeedforward(path, config))
            let n = columns ? shape[1] : shape[0]
            return AdapterDeltaModule(path: path, family: family, rule: .scaleVector(l, columns: columns), weightName: path + ".weight",
                                      productShape: columns ? [0, n] : [n, 0], transposed: fifo, rank: 1, scale: 1, parameters: params)
        case .loha:
            if parts["hada_t1"] != nil || parts["hada_t2"] != nil {
                throw ScalpelError.invalid(file: ckpt.path, tensor: parts["hada_t1"] ?? parts["hada_t2"], reason: "LoHa's CP decomposition of convolutions (use_effective_conv2d) is not supported")
            }
            let (w1a, s1a) = try need("hada_w1_a"), (w1b, s1b) = try need("hada_w1_b"), (w2a, s2a) = try need("hada_w2_a"), (w2b, s2b) = try need("hada_w2_b")
            guard [s1a, s1b, s2a, s2b].allSatisfy({ $0.count == 2 }), s1a[1] == s1b[0], s2a[1] == s2b[0], s1a[0] == s2a[0], s1b[1] == s2b[1] else {
                throw malformed(w1a, "LoHa shapes w1_a \(s1a), w1_b \(s1b), w2_a \(s2a), w2_b \(s2b) do not chain")
            }
            let (rank, scale) = try lycorisScale(path, stored: s1a[1], ckpt: ckpt, config: config, tensor: w1a)
            return AdapterDeltaModule(path: path, family: family, rule: .hadamard(w1a: w1a, w1b: w1b, w2a: w2a, w2b: w2b), weightName: path + ".weight",
                                      productShape: [s1a[0], s1b[1]], transposed: false, rank: rank, scale: scale, parameters: params)
        case .lokr:
            if let t2 = parts["lokr_t2"] {
                throw ScalpelError.invalid(file: ckpt.path, tensor: t2, reason: "LoKr's CP decomposition of convolutions (use_effective_conv2d) is not supported")
            }
            func factor(_ n: String) throws -> (AdapterDeltaModule.KronFactor, [Int], Int?) {
                if let full = parts["lokr_\(n)"] {
                    let shape = ckpt.info(named: full)!.shape
                    guard shape.count == 2 else { throw malformed(full, "has shape \(shape); a LoKr factor of a linear layer is 2-D") }
                    return (.full(full), shape, nil)
                }
                let (a, sa) = try need("lokr_\(n)_a"), (b, sb) = try need("lokr_\(n)_b")
                guard sa.count == 2, sb.count == 2, sa[1] == sb[0] else { throw malformed(b, "shapes \(sa) and \(sb) do not chain") }
                return (.product(a: a, b: b), [sa[0], sb[1]], sa[1])
            }
            let (w1, s1, r1) = try factor("w1"), (w2, s2, r2) = try factor("w2")
            let (rank, lycorisScaleValue) = try lycorisScale(path, stored: r2 ?? r1, ckpt: ckpt, config: config, tensor: parts.values.sorted()[0])
            let scale = lokrScale(configured: lycorisScaleValue, w1Full: r1 == nil, w2Full: r2 == nil)
            return AdapterDeltaModule(path: path, family: family, rule: .kronecker(w1: w1, w2: w2), weightName: path + ".weight",
                                      productShape: [s1[0] * s2[0], s1[1] * s2[1]], transposed: false, rank: rank, scale: scale, parameters: params)
        default:
            preconditionFailure("not a delta family")
        }
    }

    /// LoHa's and LoKr's rank and `alpha / r` from the config (rank_pattern, alpha_pattern, r, alpha); a
    /// stored rank, when the tensors show one, must agree.
    private static func lycorisScale(_ path: String, stored: Int?, ckpt: Checkpoint, config: AdapterConfig, tensor: String) throws -> (Int, Double) {
        let r = config.rank(for: path)
        let alpha = AdapterConfig.firstMatch(config.alphaPattern, modulePath: path) ?? config.json["alpha"]?.doubleValue ?? 8
        if let stored, stored != r {
            throw ScalpelError.malformed(file: ckpt.path, tensor: tensor, reason: "has rank \(stored) but the config gives module \(path) r = \(r)")
        }
        return (r, alpha / Double(r))
    }

    /// The scale PEFT applies to `kron(w1, w2)`: see docs/adapters.md ("LoKr").
    static func lokrScale(configured: Double, w1Full: Bool, w2Full: Bool) -> Double {
        configured
    }

    /// True when `path` matches `feedforward_modules` (a list of suffixes or a regex), as PEFT matches
    /// target modules.
    static func isFeedforward(_ path: String, _ config: AdapterConfig) -> Bool {
        switch config.json["feedforward_modules"] {
        case .string(let pattern)?:
            return (try? NSRegularExpression(pattern: "^(?:\(pattern))$"))?.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)) != nil
        case .array(let list)?:
            return list.compactMap(\.stringValue).contains { path == $0 || path.hasSuffix("." + $0) }
        default:
            return false
        }
    }
}
