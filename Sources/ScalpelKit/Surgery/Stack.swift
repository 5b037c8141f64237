/// Stacking LoRA adapters into one PEFT adapter whose update is a combination of theirs: the `stack`
/// command's transform. The definitions are docs/methods.md's ("Combining adapters"), with
/// `tau_i = w_i * s_i * B_i @ A_i` (w_i the input's weight, s_i its scaling).
///
/// The output has scaling 1 in every module: `r` and `lora_alpha` equal the most common rank, and
/// `rank_pattern` / `alpha_pattern` give every other module its rank as both values. Factors are written
/// as F32. Targets are the union of the inputs'; a module present in only some inputs combines those.
public enum Stack {
    public enum Method: String, CaseIterable, Sendable {
        /// Exact: A' = rows w_i s_i A_i stacked, B' = columns B_i side by side; rank = sum of ranks.
        case cat
        /// The exact weighted sum of the updates (no cross terms B_i A_j, unlike PEFT's `linear`).
        case linear
        /// The exact weighted sum, truncated to `rank` by its SVD (computed from the factors).
        case svd
        /// Magnitude-prune each tau_i to `density`, sum.
        case magnitudePrune = "magnitude_prune"
        case magnitudePruneSVD = "magnitude_prune_svd"
        /// Magnitude-prune, elect signs, disjoint mean.
        case ties
        case tiesSVD = "ties_svd"
        /// DARE masks (seeded), rescale by 1/density, sum.
        case dareLinear = "dare_linear"
        case dareLinearSVD = "dare_linear_svd"
        /// DARE masks, then TIES' sign election and disjoint mean.
        case dareTies = "dare_ties"
        case dareTiesSVD = "dare_ties_svd"

        /// True for the methods with the SVD step (they need `rank`); the `*_svd` variants truncate the
        /// dense combination with the randomized SVD.
        public var usesSVD: Bool { rawValue.hasSuffix("svd") }
        /// The method without its SVD step.
        public var withoutSVD: Method {
            switch self {
            case .svd: return .linear
            case .magnitudePruneSVD: return .magnitudePrune
            case .tiesSVD: return .ties
            case .dareLinearSVD: return .dareLinear
            case .dareTiesSVD: return .dareTies
            default: return self
            }
        }
        /// True for the methods that sparsify (need `density`).
        public var usesDensity: Bool { withoutSVD != .cat && withoutSVD != .linear }
        /// True for the methods with TIES' sign election.
        public var usesMajoritySign: Bool { withoutSVD == .ties || withoutSVD == .dareTies }
        /// True for the methods with a random mask.
        public var usesSeed: Bool { withoutSVD == .dareLinear || withoutSVD == .dareTies }
    }

    /// TIES' sign election.
    public enum MajoritySign: String, CaseIterable, Sendable {
        /// sign(sum_i tau_i).
        case total
        /// sign(sum_i sign(tau_i)).
        case frequency
    }

    public struct Options: Sendable {
        public var method: Method
        /// Fraction of entries kept by the sparsifying methods, in (0, 1].
        public var density: Double?
        public var majoritySign: MajoritySign
        /// Seed of DARE's masks and of the randomized SVD's test matrix.
        public var seed: UInt64
        /// The rank R of the SVD step (required by the methods that have it).
        public var rank: Int?

        public init(method: Method = .cat, density: Double? = nil, majoritySign: MajoritySign = .total, seed: UInt64 = 0, rank: Int? = nil) {
            self.method = method
            self.density = density
            self.majoritySign = majoritySign
            self.seed = seed
            self.rank = rank
        }
    }

    /// What a stack produces.
    public struct Summary: Sendable {
        public var adapters = 0
        public var modules = 0
        /// Smallest and largest module rank of the output.
        public var minRank = 0
        public var maxRank = 0
        /// Elements of all output factors.
        public var parameters = 0
        /// Full tensors carried over from the inputs (modules_to_save, embedding base layers).
        public var carried = 0
        public var bytesWritten = 0
        /// What the SVD step lost in each module (after writing; empty for the methods without it).
        public var truncations: [ModuleTruncation] = []

        /// `sqrt(sum lost / sum energy)` over all modules (nil without an SVD step).
        public var overallRelativeError: Double? {
            guard !truncations.isEmpty else { return nil }
            let energy = truncations.reduce(0) { $0 + $1.energy }, lost = truncations.reduce(0) { $0 + $1.lostEnergy }
            return energy > 0 ? (lost / energy).squareRoot() : 0
        }
    }

    /// How much the SVD step of a stack lost in one module.
    public struct ModuleTruncation: Sendable {
        public var module: String
        public var rank: Int
        /// `||D||_F^2` of the module's combined update D, and `||D - B' A'||_F^2`.
        public var energy: Double
        public var lostEnergy: Double

        /// `||D - B' A'||_F / ||D||_F` (0 for D = 0).
        public var relativeError: Double { energy > 0 ? (lostEnergy / energy).squareRoot() : 0 }
    }

    /// Plans the stacked adapter folder `folder` of `inputs`: factors computed while written,
    /// `adapter_config.json` (task_type kept when the inputs agree on it) and a README.md model card.
    /// The report gives modules, ranks, parameters and, for the SVD methods, what truncation lost; a
    /// warning says when the output is much larger than the inputs (the sparsifying methods store
    /// full-rank updates).
    ///
    /// - Throws: `ScalpelError.invalid` for fewer than one input, a missing or out-of-range density, a
    ///   GGUF or DoRA input, a kohya input whose module paths are unknown, an IA3 input not resolved against
    ///   its base (`LoRAAdapter.resolvingScaledModules`), inputs that disagree on a module's geometry or on `fan_in_fan_out`,
    ///   replacement tensors for the same target that differ between inputs, and `lora_bias` inputs
    ///   together with an embedding module (which PEFT cannot load).
    public static func plan(_ inputs: [WeightedAdapter], options: Options, to folder: String) throws -> Plan {
        try check(inputs, options)
        let modules = try StackModule.union(inputs)
        var tensors: [OutputTensor] = []
        var ranks: [(String, Int)] = []
        var summary = Summary()
        let anyBias = modules.contains { $0.hasBias }
        if anyBias, let embedding = modules.first(where: { $0.kind == .embedding }) {
            throw ScalpelError.invalid(file: embedding.members[0].adapter.path, tensor: embedding.members[0].module.aName, reason: "an adapter with lora_bias cannot also hold an embedding LoRA (PEFT has no lora_bias for embeddings); stack these inputs separately")
        }
        let svdOptions = RandomizedSVDOptions(seed: options.seed)
        for module in modules {
            let factors = StackFactors(module, rule: rule(options), svdRank: options.method.usesSVD ? options.rank : nil,
                                       svdOptions: svdOptions)
            tensors += factors.outputs(includeBias: anyBias)
            ranks.append((module.path, factors.rank))
            summary.parameters += factors.rank * (module.rows + module.cols)
        }
        let carried = try carriedTensors(inputs)
        tensors += carried.map { OutputTensor(copying: $0) }
        let config = try outputConfig(inputs, modules: modules, ranks: ranks, bias: anyBias, carried: !carried.isEmpty)
        summary.adapters = inputs.count
        summary.modules = modules.count
        summary.minRank = ranks.map(\.1).min() ?? 0
        summary.maxRank = ranks.map(\.1).max() ?? 0
        summary.carried = carried.count
        summary.bytesWritten = tensors.reduce(0) { $0 + $1.byteCount }
        let card = ModelCard.adapter(title: "Stacked LoRA adapter", baseModel: config.json["base_model_name_or_path"]?.stringValue,
                                     lines: ["Made by `scalpel stack --method \(options.method.rawValue)` from:"]
                                        + inputs.map { "- `\($0.adapter.path)` (weight \($0.weight))" })
        var plan = try PEFTAdapterWriter.plan(tensors: tensors, config: config, to: folder,
                                              inputs: inputs.flatMap { $0.adapter.checkpoint.sourcePaths }, modelCard: card)
        let inputBytes = inputs.reduce(0) { $0 + $1.adapter.checkpoint.dataBytes }
        let inputRank = inputs.map { $0.adapter.modules.map(\.rank).max() ?? 0 }.reduce(0, +)
        if summary.maxRank > max(inputRank, options.rank ?? 0) || summary.bytesWritten > 4 * max(inputBytes, 1) {
            plan.warnings.append("the stacked adapter has rank up to \(summary.maxRank) and \(Format.bytes(summary.bytesWritten)) of factors, from inputs of \(Format.bytes(inputBytes)) (\(options.method.rawValue) stores each combined update at full rank; add --method \(options.method.usesSVD ? options.method.rawValue : options.method.rawValue + "_svd") --rank R to truncate it)")
        }
        let planned = summary, method = options.method, paths = modules.map { (path: $0.path, a: PEFTAdapterWriter.aKey($0.path, kind: $0.kind)) }
        plan.report = { result in
            var done = planned
            done.truncations = paths.compactMap { p in
                result.outcomes[p.a]?.truncation.map { ModuleTruncation(module: p.path, rank: $0.rank, energy: $0.energy, lostEnergy: $0.lostEnergy) }
            }
            return report(done, method: method)
        }
        return plan
    }

    /// The stack's summary lines and JSON fields.
    static func report(_ done: Summary, method: Method) -> Report {
        let ranks = done.minRank == done.maxRank ? "rank \(done.minRank)" : "ranks \(done.minRank)-\(done.maxRank)"
        var lines = ["stacked \(Format.counted(done.adapters, "adapter")) (\(method.rawValue)): \(Format.counted(done.modules, "module")), \(ranks), \(Format.counted(done.parameters, "parameter"))"
            + (done.carried > 0 ? ", \(Format.counted(done.carried, "full tensor")) carried" : "")]
        var fields: [(String, JSONValue)] = [
            ("method", .string(method.rawValue)), ("adapters", .int(done.adapters)), ("modules", .int(done.modules)),
            ("min_rank", .int(done.minRank)), ("max_rank", .int(done.maxRank)), ("parameters", .int(done.parameters)),
            ("carried", .int(done.carried)),
        ]
        if let overall = done.overallRelativeError, let worst = done.truncations.max(by: { $0.relativeError < $1.relativeError }) {
            lines.append("SVD truncation: relative Frobenius error \(Format.stat(overall)) overall, largest \(Format.stat(worst.relativeError)) in \(worst.module)")
            fields.append(("truncation", .object([
                ("relative_error", .double(overall)),
                ("modules", .array(done.truncations.map { .object([("module", .string($0.module)), ("rank", .int($0.rank)), ("relative_error", .double($0.relativeError))]) })),
            ])))
        }
        return Report(text: lines.joined(separator: "\n"), fields: fields, details: done)
    }

    private static func check(_ inputs: [WeightedAdapter], _ options: Options) throws {
        guard !inputs.isEmpty else { throw ScalpelError.invalid(file: nil, tensor: nil, reason: "stack needs at least one adapter") }
        for input in inputs {
            guard input.adapter.config != nil || input.adapter.family == .kohya else {
                throw ScalpelError.invalid(file: input.adapter.path, tensor: nil, reason: "stack reads PEFT adapter folders and kohya LoRA files, not GGUF LoRAs (convert-adapter --to peft first)")
            }
            try input.adapter.checkKohyaPathsKnown()
            if let m = input.adapter.scaledModules.first {
                throw ScalpelError.invalid(file: input.adapter.path, tensor: m.weightName, reason: "module \(m.path) is IA3: its change W * (l - 1) depends on the base weight; resolve it against the base first (LoRAAdapter.resolvingScaledModules, the CLI's --base MODEL)")
            }
            if input.adapter.usesDoRA || input.adapter.config?.useDoRA == true {
                throw ScalpelError.invalid(file: input.adapter.path, tensor: nil, reason: "is a DoRA adapter: its magnitudes renormalize the base weight and cannot be combined into a LoRA update")
            }
            guard input.weight.isFinite else {
                throw ScalpelError.invalid(file: input.adapter.path, tensor: nil, reason: "weight \(input.weight) is not finite")
            }
        }
        let fifo = Set(inputs.map { $0.adapter.config?.fanInFanOut ?? false })
        guard fifo.count == 1 else {
            throw ScalpelError.invalid(file: inputs[0].adapter.path, tensor: nil, reason: "the inputs disagree on fan_in_fan_out")
        }
        if options.method.usesDensity {
            guard let d = options.density, d > 0, d <= 1 else {
                throw ScalpelError.invalid(file: nil, tensor: nil, reason: "method \(options.method.rawValue) needs a density in (0, 1]")
            }
        }
        if options.method.usesSVD {
            guard let r = options.rank, r >= 1 else {
                throw ScalpelError.invalid(file: nil, tensor: nil, reason: "method \(options.method.rawValue) needs a rank >= 1")
            }
        }
    }

    private static func rule(_ o: Options) -> StackCombine.Rule? {
        let d = o.density ?? 1
        switch o.method.withoutSVD {
        case .cat, .linear, .svd: return nil
        case .magnitudePrune: return .magnitudePrune(density: d)
        case .ties: return .ties(density: d, sign: o.majoritySign)
        case .dareLinear: return .dareLinear(density: d, seed: o.seed)
        case .dareTies: return .dareTies(density: d, seed: o.seed, sign: o.majoritySign)
        case .magnitudePruneSVD, .tiesSVD, .dareLinearSVD, .dareTiesSVD: preconditionFailure("withoutSVD removes the SVD step")
        }
    }

    /// Full tensors of the inputs, one per target; inputs that replace the same target must hold the same
    /// bytes (PEFT saves the unchanged embedding table of every adapter with an embedding LoRA).
    private static func carriedTensors(_ inputs: [WeightedAdapter]) throws -> [TensorView] {
        var byTarget: [String: (TensorView, String)] = [:]
        var order: [String] = []
        for input in inputs {
            for r in input.adapter.replacements {
                let view = try input.adapter.checkpoint.view(r.source)
                if let (first, path) = byTarget[r.target] {
                    guard first.info.type == view.info.type, first.info.shape == view.info.shape, first.bytes.elementsEqual(view.bytes) else {
                        throw ScalpelError.invalid(file: input.adapter.path, tensor: r.source, reason: "replaces \(r.target) with different values than \(path) does; full tensors cannot be combined")
                    }
                    continue
                }
                byTarget[r.target] = (view, input.adapter.path)
                order.append(r.target)
            }
        }
        return order.map { byTarget[$0]!.0 }
    }

    /// The output config: scaling 1 everywhere (see the type's documentation).
    private static func outputConfig(_ inputs: [WeightedAdapter], modules: [StackModule], ranks: [(String, Int)], bias: Bool, carried: Bool) throws -> AdapterConfig {
        let configs = inputs.compactMap { $0.adapter.config }  // kohya files have none
        var counts: [Int: Int] = [:]
        for (_, r) in ranks { counts[r, default: 0] += 1 }
        let r = counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }?.key ?? 8
        let others = ranks.filter { $0.1 != r }.map { (AdapterConfig.modulePattern($0.0), $0.1) }
        let paths = Set(modules.map(\.path))
        let sameTargets = configs.count == inputs.count && configs.allSatisfy { Set($0.targetModuleNames) == Set(configs[0].targetModuleNames) }
            && inputs.allSatisfy { Set($0.adapter.modules.map(\.path)) == paths }
        let targets: JSONValue = sameTargets ? configs[0].targetModules : .array(paths.sorted().map { .string($0) })
        func common(_ key: String) -> String? {
            let values = Set(configs.map { $0.json[key]?.stringValue })
            return values.count == 1 ? values.first! : nil
        }
        var modulesToSave: [String] = []
        if carried {
            for c in configs { for m in c.modulesToSave where !modulesToSave.contains(m) { modulesToSave.append(m) } }
        }
        return try AdapterConfig(
            r: max(r, 1), loraAlpha: Double(max(r, 1)), targetModules: targets, rankPattern: others,
            alphaPattern: others.map { ($0.0, Double($0.1)) }, fanInFanOut: configs.first?.fanInFanOut ?? false, loraBias: bias,
            modulesToSave: modulesToSave, baseModelNameOrPath: common("base_model_name_or_path"), taskType: common("task_type"))
    }
}
