import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Stack: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Combine LoRA adapters into one PEFT adapter.",
            discussion: """
            Each ADAPTER is a PEFT adapter folder (any additive family: LoRA, AdaLoRA, LoHa, LoKr; IA3 with \
            --base) or a kohya LoRA file (module paths from its record, --map or --base), optionally \
            ADAPTER:WEIGHT (or --weight). With \
            tau_i = weight_i * scaling_i * B_i @ A_i, the output's update is:
              cat (default)    sum_i tau_i, exactly: A' = rows weight_i*scaling_i*A_i, B' = columns B_i; \
            rank = sum of ranks
              linear           the same exact weighted sum (not PEFT's linear, which mixes B_i with A_j)
              magnitude_prune  each tau_i pruned to its top --density fraction by |value|, summed
              ties             magnitude-pruned, then per entry the mean of the tau_i agreeing with the \
            elected sign (--majority-sign total|frequency)
              dare_linear      each entry of each tau_i kept with probability --density (seeded by --seed) \
            and divided by it, summed
              dare_ties        DARE's masks, then TIES' election and mean
              svd              the exact weighted sum truncated to --rank by its SVD (the optimal rank-R \
            approximation, computed from the factors)
              ties_svd, dare_linear_svd, dare_ties_svd, magnitude_prune_svd: the dense result truncated to \
            --rank by the randomized SVD (seeded by --seed)
            Without the SVD step the sparsifying methods store the dense result exactly, as factors of rank \
            min(out, in). The SVD methods report the relative Frobenius error of the truncation. The output \
            config has scaling 1 (r = lora_alpha, rank_pattern = alpha_pattern where ranks differ). An IA3 \
            adapter needs --base MODEL: its update is W * (l - 1) (full rank; the bias change of row-scaled \
            modules becomes a lora_B bias), so `stack ia3/ -o lora/ --method svd --rank R --base MODEL` turns it \
            into a plain LoRA.

            Examples:
              scalpel stack style/ chat/ -o both/
              scalpel stack style/:0.6 chat/:0.4 -o blend/ --method ties --density 0.2
              scalpel stack a/ b/ -o dare/ --method dare_linear --density 0.3 --seed 7
              scalpel stack a/ b/ c/ -o small/ --method svd --rank 16
            """
        )

        @Argument(help: "PEFT adapter folders, each optionally ADAPTER:WEIGHT.")
        var adapters: [WeightedAdapterArgument]

        @Option(name: .shortAndLong, help: "The output adapter folder (refused if it exists, unless --force).")
        var output: String

        @Option(help: "cat, linear, svd, magnitude_prune, ties, dare_linear, dare_ties, or one of the last four + _svd.")
        var method: ScalpelKit.Stack.Method = .cat

        @Option(help: "Rank of the SVD step (svd and the *_svd methods).")
        var rank: Int?

        @Option(parsing: .unconditionalSingleValue, help: "Weight of the adapters: once for all, or once per adapter in order.")
        var weight: [Double] = []

        @Option(help: "Fraction of entries kept, in (0, 1] (magnitude_prune, ties, dare_linear, dare_ties and their _svd variants).")
        var density: Double?

        @Option(help: "TIES sign election: total (sign of the sum) or frequency (sign of the sum of signs).")
        var majoritySign: ScalpelKit.Stack.MajoritySign?

        @Option(help: "Seed of DARE's random masks and of the randomized SVD (default 0).")
        var seed: UInt64?

        @Option(help: "The base model: needed for IA3 (its update W * (l - 1) depends on the weights), and for kohya files (their module names resolve the prefixes).")
        var base: String?

        @Option(help: "For kohya LoRA files: a JSON object from kohya prefix to module path.")
        var map: String?

        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            _ = try WeightedAdapterArgument.resolve(adapters, weights: weight)
            let m = method
            if m.usesDensity {
                guard let density else { throw ValidationError("--method \(m.rawValue) needs --density") }
                guard density > 0 && density <= 1 else { throw ValidationError("--density must be in (0, 1]") }
            } else if density != nil {
                throw ValidationError("--density applies to magnitude_prune, ties, dare_linear, dare_ties and their _svd variants, not \(m.rawValue)")
            }
            if majoritySign != nil && !m.usesMajoritySign {
                throw ValidationError("--majority-sign applies to ties and dare_ties (and their _svd variants), not \(m.rawValue)")
            }
            if seed != nil && !m.usesSeed && !m.usesSVD {
                throw ValidationError("--seed applies to the dare and svd methods, not \(m.rawValue)")
            }
            if m.usesSVD {
                guard let rank else { throw ValidationError("--method \(m.rawValue) needs --rank") }
                guard rank >= 1 else { throw ValidationError("--rank must be at least 1") }
            } else if rank != nil {
                throw ValidationError("--rank applies to svd and the *_svd methods, not \(m.rawValue)")
            }
        }

        func plan() throws -> Plan {
            let resolved = try WeightedAdapterArgument.resolve(adapters, weights: weight)
            let opened = try resolved.map { try LoRAAdapter.open($0.path) }
            let used = opened.contains { $0.needsBase || $0.family == .kohya }
            let baseModel = used ? try base.map { try CheckpointReader.open($0) } : nil
            let names = try map.map(KohyaLoRA.readMap) ?? [:]
            let inputs = try zip(opened, resolved).map {
                WeightedAdapter(try $0.resolvingKohyaNames(base: baseModel, map: names).resolvingScaledModules(base: baseModel), weight: $1.weight)
            }
            let options = ScalpelKit.Stack.Options(method: method, density: density, majoritySign: majoritySign ?? .total,
                                                   seed: seed ?? 0, rank: rank)
            var plan = try ScalpelKit.Stack.plan(inputs, options: options, to: output)
            if base != nil && baseModel == nil {
                plan.warnings.append("--base is unused: no input is an IA3 adapter or a kohya file")
            }
            return plan
        }
    }
}
