import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct ExtractLoRA: PlanningCommand {
        static let configuration = CommandConfiguration(
            commandName: "extract-lora",
            abstract: "Extract a LoRA adapter from a full fine-tune (tuned minus base) by truncated SVD.",
            discussion: """
            For each 2-D linear weight present in both checkpoints with the same shape, dW = tuned - base (f32) \
            is factored by a randomized SVD (Halko-Martinsson-Tropp, on OpenBLAS/LAPACKE) into lora_B [out, r] \
            and lora_A [r, in]. The rank is fixed (--rank), or the smallest keeping a fraction of the energy \
            (--energy) or meeting a relative error (--max-error), capped by --max-rank. Different ranks go to \
            rank_pattern/alpha_pattern. lora_alpha = r (scaling 1) unless --alpha, which B compensates. \
            Nothing that changed is dropped silently: the summary lists every changed tensor not in the factors.

            Examples:
              scalpel extract-lora --base base/ --tuned tuned/ -o adapter/ --rank 16
              scalpel extract-lora --base base.safetensors --tuned ft.safetensors -o adapter/ --max-error 0.3 --max-rank 128
              scalpel extract-lora --base base.gguf --tuned ft.gguf -o lora.gguf --format gguf --energy 0.9
            """
        )

        @Option(help: "The base checkpoint.")
        var base: String

        @Option(help: "The fine-tuned checkpoint.")
        var tuned: String

        @Option(name: .shortAndLong, help: "The output: a PEFT adapter folder, or a .gguf file with --format gguf.")
        var output: String

        @Option(help: "Fixed rank for every tensor.")
        var rank: Int?

        @Option(help: "Smallest rank keeping this fraction (0 < E <= 1) of ||dW||_F^2.")
        var energy: Double?

        @Option(help: "Smallest rank whose relative Frobenius error is at most this (0 <= F < 1).")
        var maxError: Double?

        @Option(help: "Cap on every rank.")
        var maxRank: Int?

        @Option(help: "Randomized SVD oversampling.")
        var oversample = 8

        @Option(help: "Randomized SVD power iterations (each re-orthonormalized).")
        var powerIters = 2

        @Flag(help: "Use a full SVD (sgesdd) instead of the randomized one.")
        var exact = false

        @Option(help: "Seed of the randomized SVD (same seed, same bytes).")
        var seed: UInt64 = 0

        @Option(help: "Singular values into B (default: B = U S, A = Vt) or sqrt (sqrt(S) on each side, as mergekit).")
        var split: SplitArgument = .default

        @Option(help: "lora_alpha to declare (B is scaled so the delta is unchanged).")
        var alpha: Double?

        @Option(help: "dtype of the factors (default: the base's float dtype).")
        var dtype: DType?

        @Option(help: "peft (a PEFT adapter folder) or gguf (a llama.cpp LoRA; GGUF inputs).")
        var format: ScalpelKit.ExtractLoRA.OutputFormat = .peft

        @Option(help: "base_model_name_or_path for adapter_config.json (default: the --base path).")
        var baseId: String?

        @Option(help: "lora: factor embedding tables too (PEFT lora_embedding_A/B); skip (default): list them as changed.")
        var embeddings: EmbeddingsArgument = .skip

        @Flag(help: "Store changed tensors that are not decomposed (norms, biases...) in full, as modules_to_save.")
        var saveFull = false

        @OptionGroup var selection: SelectionOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            let rules = [rank != nil, energy != nil, maxError != nil].filter { $0 }.count
            guard rules <= 1 else { throw ValidationError("give one of --rank, --energy, --max-error") }
            if let rank, rank < 1 { throw ValidationError("--rank must be at least 1") }
            if let energy, !(energy > 0 && energy <= 1) { throw ValidationError("--energy must be in (0, 1]") }
            if let maxError, !(maxError >= 0 && maxError < 1) { throw ValidationError("--max-error must be in [0, 1)") }
            if let maxRank, maxRank < 1 { throw ValidationError("--max-rank must be at least 1") }
            if let alpha, !(alpha > 0) { throw ValidationError("--alpha must be positive") }
            guard oversample >= 0, powerIters >= 0 else { throw ValidationError("--oversample and --power-iters must be non-negative") }
        }

        func plan() throws -> Plan {
            var options = ScalpelKit.ExtractLoRA.Options()
            options.rule = rank.map { .fixed($0) } ?? energy.map { .energy($0) } ?? maxError.map { .maxError($0) } ?? .fixed(16)
            options.maxRank = maxRank ?? Int.max
            options.svd = RandomizedSVDOptions(oversampling: oversample, powerIterations: powerIters, seed: seed)
            options.exact = exact
            options.split = split == .sqrt ? .balanced : .intoB
            options.alpha = alpha
            options.dtype = dtype
            options.selection = selection.selection
            options.selection.includeEmbeddings = options.selection.includeEmbeddings || embeddings == .lora
            options.saveFull = saveFull
            options.format = format
            options.baseID = baseId
            let progress = SVDProgress(global: global)
            return try ScalpelKit.ExtractLoRA.plan(base: try CheckpointReader.open(base), tuned: try CheckpointReader.open(tuned),
                                                   options: options, to: output, log: progress.log)
        }
    }
}

enum SplitArgument: String, ExpressibleByArgument, CaseIterable {
    case `default`, sqrt
}

enum EmbeddingsArgument: String, ExpressibleByArgument, CaseIterable {
    case lora, skip
}
