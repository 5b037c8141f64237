import ArgumentParser
import ScalpelKit

extension Scalpel {
struct Resize: PlanningCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lower an adapter's rank per module by the SVD of its update (no base needed but for IA3).",
        discussion: """
        ADAPTER is a PEFT adapter folder of any additive family (LoRA, AdaLoRA, LoHa, LoKr) or a kohya \
        LoRA file, or an IA3 adapter with --base MODEL (its update W * (l - 1) is computed from the base \
        weights; the bias change of row-scaled modules is kept exactly as lora_B biases). Each module's \
        update is decomposed exactly from its factors and truncated to:
          --rank R                              R (also the cap of the rules below)
          --dynamic sv_ratio --dynamic-param X  kohya: #{s_i > s_1 / X} + 1
          --dynamic sv_cumulative ...X          kohya: first i with cumsum(s)/sum(s) >= X, + 1
          --dynamic sv_fro ...X                 kohya: first i with cumsum(s^2)/sum(s^2) >= X^2, + 1
          --sv-epsilon E                        mergekit: #{s_i > E}
        The output is a PEFT LoRA folder (r = lora_alpha = the most common rank, rank_pattern and \
        alpha_pattern for the others), or a kohya file when OUT ends in .safetensors. Every module's kept \
        rank and the relative Frobenius error of its update are printed.

        Examples:
          scalpel resize adapter/ -o small/ --rank 8
          scalpel resize loha/ -o lora/ --dynamic sv_fro --dynamic-param 0.99 --rank 32
          scalpel resize lora.safetensors -o small.safetensors --sv-epsilon 1e-3
          scalpel resize ia3/ -o lora/ --rank 16 --base model/
        """
    )

    @Argument(help: "The adapter (PEFT folder or kohya .safetensors).")
    var adapter: String

    @Option(name: .shortAndLong, help: "The output: a PEFT adapter folder, or a kohya file (*.safetensors).")
    var output: String

    @Option(help: "The rank to keep, or the maximum rank with --dynamic / --sv-epsilon.")
    var rank: Int?

    @Option(help: "kohya's per-module rule: sv_ratio, sv_fro or sv_cumulative (needs --dynamic-param).")
    var dynamic: DynamicArgument?

    @Option(help: "The parameter of --dynamic.")
    var dynamicParam: Double?

    @Option(help: "mergekit's rule: keep the singular values above this.")
    var svEpsilon: Double?

    @Option(help: "The base model: needed for IA3 (its change W * (l - 1) depends on the weights), and for a kohya input written as PEFT (its module names resolve the prefixes).")
    var base: String?

    @Option(help: "For a kohya input written as PEFT: a JSON object from kohya prefix to module path.")
    var map: String?

    @OptionGroup var writing: WriteOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if dynamic != nil && svEpsilon != nil { throw ValidationError("give --dynamic or --sv-epsilon, not both") }
        if (dynamic == nil) != (dynamicParam == nil) { throw ValidationError("--dynamic and --dynamic-param go together") }
        if dynamic == nil && svEpsilon == nil && rank == nil { throw ValidationError("give --rank, --dynamic with --dynamic-param, or --sv-epsilon") }
        if let rank, rank < 1 { throw ValidationError("--rank must be at least 1") }
        if let p = dynamicParam, !(p > 0) { throw ValidationError("--dynamic-param must be positive") }
        if let e = svEpsilon, !(e >= 0) { throw ValidationError("--sv-epsilon must be non-negative") }
    }

    func plan() throws -> Plan {
        let baseModel = try base.map { try CheckpointReader.open($0) }
        let input = try LoRAAdapter.open(adapter).resolvingKohyaNames(base: baseModel, map: try map.map(KohyaLoRA.readMap) ?? [:])
            .resolvingScaledModules(base: baseModel)
        if !output.hasSuffix(".safetensors") { try input.checkKohyaPathsKnown() }
        let rule: ScalpelKit.Resize.Rule
        switch (dynamic, svEpsilon) {
        case (.sv_ratio?, _): rule = .svRatio(dynamicParam!)
        case (.sv_fro?, _): rule = .svFro(dynamicParam!)
        case (.sv_cumulative?, _): rule = .svCumulative(dynamicParam!)
        case (nil, let e?): rule = .svEpsilon(e)
        case (nil, nil): rule = .fixed(rank!)
        }
        return try ScalpelKit.Resize.plan(input, rule: rule, maxRank: dynamic == nil && svEpsilon == nil ? nil : rank, output: output)
    }
}
}

/// `--dynamic` values.
enum DynamicArgument: String, ExpressibleByArgument, CaseIterable {
    case sv_ratio, sv_fro, sv_cumulative
}
