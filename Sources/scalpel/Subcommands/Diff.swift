import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Diff: ScalpelCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare two checkpoints tensor by tensor (relative change, cosine, max |B-A|, LoRA rank profile).",
            discussion: """
            A and B are anything inspect reads; quantized tensors (GGUF blocks, bitsandbytes, compressed-tensors) \
            are dequantized on the fly. Tensors are matched by name. For each tensor in both: the relative change \
            ||B-A||/||A||, the cosine of A and B, and max |B-A|; then the tensors on one side only, shape and dtype \
            changes, and totals. --rank-profile adds, per 2-D tensor, the share of ||B-A||² that the best \
            rank-8/16/32/64/128 approximation captures and the rank needed for --energy, by the randomized SVD \
            extract-lora uses, and the summary "a LoRA of rank R captures X% of the fine-tune".

            Examples:
              scalpel diff base.safetensors tuned.safetensors --rank-profile
              scalpel diff model.safetensors model-q8_0.gguf --json
            """
        )

        @Argument(help: "The first checkpoint (A).")
        var a: String

        @Argument(help: "The second checkpoint (B).")
        var b: String

        @Flag(help: "Add the rank profile of each 2-D difference (randomized SVD).")
        var rankProfile = false

        @Option(help: "Energy fraction (0 < E <= 1) for rank_for_energy and the summary rank.")
        var energy = 0.9

        @Option(help: "Profile ranks, comma-separated.")
        var ranks = "8,16,32,64,128"

        @Option(help: "Seed of the randomized SVD (same seed, same figures).")
        var seed: UInt64 = 0

        @Option(help: "Changed tensors listed in the text report.")
        var limit = 20

        @Flag(help: "Print one JSON object instead of tables.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard energy > 0 && energy <= 1 else { throw ValidationError("--energy must be in (0, 1]") }
            guard parsedRanks != nil else { throw ValidationError("--ranks takes positive integers separated by commas") }
        }

        private var parsedRanks: [Int]? {
            let r = ranks.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !r.isEmpty, r.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
            return r.map { $0! }
        }

        func execute() throws {
            var options = ScalpelKit.Diff.Options()
            options.rankProfile = rankProfile
            options.energy = energy
            options.ranks = parsedRanks!
            options.svd.seed = seed
            let result = try ScalpelKit.Diff.compare(try CheckpointReader.open(a), try CheckpointReader.open(b), options: options)
            print(json ? JSONWriter.string(result.json, style: .pretty) : result.text(limit: limit))
        }
    }
}
