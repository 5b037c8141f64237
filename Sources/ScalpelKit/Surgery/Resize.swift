import Foundation

/// Lowering an adapter's rank, module by module, by the SVD of its update (no base needed): the `resize`
/// command's transform.
///
/// For each module the delta `D = scaling * B @ A` (for AdaLoRA, LoHa and LoKr the exact factors of their
/// delta, `AdapterDeltaModule`) is decomposed exactly from its factors (`StackSVD.ofProduct`), a rank k is
/// chosen by the rule, and the module is written as `B' = U_k S_k`, `A' = Vt_k` with scaling 1
/// (r = lora_alpha = k). The relative Frobenius error `sqrt(sum_{i>k} s_i^2) / sqrt(sum s_i^2)` is
/// reported per module.
public enum Resize {
    /// How the kept rank of a module is chosen. `maxRank` caps every rule.
    public enum Rule: Sendable, Equatable {
        /// k = min(R, available).
        case fixed(Int)
        /// kohya's sv_ratio: k = #{s_i > s_1 / X} + 1.
        case svRatio(Double)
        /// kohya's sv_cumulative: k = (first i with cumsum(s)/sum(s) >= X) + 1.
        case svCumulative(Double)
        /// kohya's sv_fro: k = (first i with cumsum(s^2)/sum(s^2) >= X^2) + 1.
        case svFro(Double)
        /// mergekit's sv_epsilon: k = #{s_i > eps} (at least 1).
        case svEpsilon(Double)
    }

    /// One module's outcome.
    public struct Entry: Sendable {
        public var module: String
        public var oldRank: Int
        public var rank: Int
        /// `||D - B'A'||_F / ||D||_F`.
        public var relativeError: Double
        public var singularValues: [Float]
    }

    /// The result: what to write and what each module kept.
    public struct Result {
        public var modules: [AdapterOutputModule]
        public var entries: [Entry]
        public var config: AdapterConfig
        public var carried: [OutputTensor]
    }

    /// Resizes `adapter` (any family but DoRA and prompt learning; IA3 once resolved against its base with
    /// `LoRAAdapter.resolvingScaledModules`).
    /// - Throws: `ScalpelError.invalid` for those, an unresolved IA3 adapter, and a GGUF input.
    public static func resize(_ adapter: LoRAAdapter, rule: Rule, maxRank: Int?) throws -> Result {
        if !adapter.scaledModules.isEmpty {
            throw ScalpelError.invalid(file: adapter.path, tensor: adapter.scaledModules[0].weightName, reason: "module \(adapter.scaledModules[0].path) is IA3: its change W * (l - 1) depends on the base weight; resolve it against the base first (LoRAAdapter.resolvingScaledModules, the CLI's --base MODEL)")
        }
        if adapter.usesDoRA {
            throw ScalpelError.invalid(file: adapter.path, tensor: nil, reason: "is a DoRA adapter: its magnitudes renormalize the base weight, so its update cannot be resized without the base")
        }
        if adapter.format == .gguf {
            throw ScalpelError.invalid(file: adapter.path, tensor: nil, reason: "is a GGUF LoRA: convert it with convert-adapter --to peft first")
        }
        var modules: [AdapterOutputModule] = []
        var entries: [Entry] = []
        for m in adapter.modules {
            let a = Matrix(rows: m.rank, cols: m.productShape[1], values: try FloatConversion.floats(try adapter.checkpoint.view(m.aName)).map { $0 * Float(m.scaling) })
            let b = Matrix(rows: m.productShape[0], cols: m.rank, values: try FloatConversion.floats(try adapter.checkpoint.view(m.bName)))
            let svd = try StackSVD.ofProduct(b: b, a: a)
            let k = chooseRank(svd.singularValues, rows: m.productShape[0], cols: m.productShape[1], rule: rule, maxRank: maxRank)
            let kept = svd.truncated(to: k)
            let oldRank = adapter.familyModules.first { $0.path == m.path }?.rank ?? m.rank
            entries.append(Entry(module: m.path, oldRank: oldRank, rank: k, relativeError: relativeError(svd.singularValues, kept: k),
                                 singularValues: svd.singularValues))
            var out = AdapterOutputModule.factors(path: m.path, kind: m.kind, kept.loraFactors(split: .intoB))
            if let bias = m.biasName {
                let s = Float(m.scaling), values = try FloatConversion.floats(try adapter.checkpoint.view(bias)).map { $0 * s }
                out.bias = OutputTensor(name: "", type: .plain(.f32), shape: [values.count], content: .filling { o in values.withUnsafeBytes { o.copyMemory(from: $0) } })
            }
            modules.append(out)
        }
        let carried = try adapter.replacements.map { OutputTensor(copying: try adapter.checkpoint.view($0.source)) }
        let config = try AdapterOutput.peftConfig(
            modules, like: adapter.config, targetModules: adapter.family == .lora ? adapter.config?.targetModules : nil,
            fanInFanOut: adapter.modules.contains { $0.transposed && $0.kind == .linear }, modulesToSave: adapter.config?.modulesToSave ?? [])
        return Result(modules: modules, entries: entries, config: config, carried: carried)
    }

    /// The plan of the resized adapter at `output`: a PEFT folder, or a kohya file when it ends in
    /// `.safetensors`. The report lists each module's kept rank and relative error.
    public static func plan(_ adapter: LoRAAdapter, rule: Rule, maxRank: Int?, output: String) throws -> Plan {
        let r = try resize(adapter, rule: rule, maxRank: maxRank)
        var plan = output.hasSuffix(".safetensors")
            ? try AdapterOutput.planKohya(r.modules, to: output, inputs: adapter.checkpoint.sourcePaths)
            : try AdapterOutput.planPEFT(r.modules, config: r.config, carried: r.carried, to: output, inputs: adapter.checkpoint.sourcePaths)
        let entries = r.entries
        plan.report = { _ in
            var table = TextTable(header: ["module", "rank", "relative error"], rightAligned: [1, 2])
            for x in entries { table.add([x.module, "\(x.oldRank) -> \(x.rank)", Format.stat(x.relativeError)]) }
            var text = table.render() + "\nresized \(entries.count) modules to ranks \(entries.map(\.rank).min() ?? 0)-\(entries.map(\.rank).max() ?? 0)"
            if let worst = entries.max(by: { $0.relativeError < $1.relativeError }) {
                text += "; largest relative error \(Format.stat(worst.relativeError)) in \(worst.module)"
            }
            let modules: [JSONValue] = entries.map {
                .object([("module", .string($0.module)), ("old_rank", .int($0.oldRank)), ("rank", .int($0.rank)),
                         ("relative_error", .double($0.relativeError))])
            }
            return Report(text: text, fields: [("modules", .array(modules))], details: entries)
        }
        return plan
    }

    /// `sqrt(sum_{i >= k} s_i^2 / sum s_i^2)` in Double (0 for a zero update).
    public static func relativeError(_ s: [Float], kept k: Int) -> Double {
        let total = s.reduce(0.0) { $0 + Double($1) * Double($1) }
        guard total > 0 else { return 0 }
        let tail = s.dropFirst(k).reduce(0.0) { $0 + Double($1) * Double($1) }
        return (tail / total).squareRoot()
    }

    /// The kept rank of a module whose non-zero spectrum is among `s` (non-increasing), of a rows x cols
    /// update. kohya's rules see the full spectrum of min(rows, cols) values (the rest zero) and clamp
    /// the index to it minus one, as `resize_lora.py` does; a spectrum with s_1 <= 1e-6 keeps rank 1.
    public static func chooseRank(_ s: [Float], rows: Int, cols: Int, rule: Rule, maxRank: Int?) -> Int {
        let n = min(rows, cols)
        var full = s
        if full.count < n { full += [Float](repeating: 0, count: n - full.count) }
        func clamp(_ index: Int) -> Int { max(0, min(index, n - 1)) }
        func searchsorted(_ cum: [Float], _ target: Float) -> Int { cum.firstIndex { $0 >= target } ?? cum.count }
        var k: Int
        switch rule {
        case .fixed(let r):
            k = r
        case .svRatio(let t):
            let minSV = full[0] / Float(t)
            k = clamp(full.filter { $0 > minSV }.count) + 1
        case .svCumulative(let t):
            let total = full.reduce(Float(0), +)
            var acc: Float = 0
            k = clamp(searchsorted(full.map { acc += $0; return acc / total }, Float(t))) + 1
        case .svFro(let t):
            let total = full.reduce(Float(0)) { $0 + $1 * $1 }
            var acc: Float = 0
            k = clamp(searchsorted(full.map { acc += $0 * $0; return acc / total }, Float(t * t))) + 1
        case .svEpsilon(let eps):
            k = max(1, full.filter { Double($0) > eps }.count)
        }
        if case .fixed = rule {} else if (full.first ?? 0) <= 1e-6 { k = 1 }
        if let maxRank { k = min(k, maxRank) }
        return max(1, min(k, s.count))
    }
}
