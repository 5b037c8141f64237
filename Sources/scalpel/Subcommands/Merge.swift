import ArgumentParser
import Foundation
import ScalpelKit

extension Scalpel {
    struct Merge: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge LoRA adapters into a base checkpoint.",
            discussion: """
            BASE is a safetensors file or folder, or a GGUF file. Each ADAPTER is a PEFT adapter folder (LoRA, \
            AdaLoRA, IA3, LoHa, LoKr: docs/adapters.md), a kohya LoRA file (names matched to the base, or \
            --map), or a llama.cpp GGUF LoRA when BASE is GGUF; adapters apply in order, each scaled by its weight \
            (ADAPTER:WEIGHT or --weight; a negative weight removes a merged adapter). For each targeted module \
            W' = W + weight * scaling * B @ A, with PEFT's scaling (lora_alpha/r, rsLoRA, rank_pattern and \
            alpha_pattern); fan_in_fan_out, embedding LoRAs, lora_bias, modules_to_save and DoRA are handled. \
            The math is f32 and the output keeps the base's dtypes (or --dtype). Targeted tensors of a quantized \
            GGUF base (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) are dequantized, merged and re-quantized to their type, and \
            the error that adds is reported. When BASE is a folder and OUT is a folder, the base's other files \
            (config.json, tokenizer) are copied.

            Examples:
              scalpel merge llama/ adapter/ -o merged/
              scalpel merge base/ style/:0.7 chat/ -o merged.safetensors --dtype bf16
              scalpel merge merged.safetensors style/:-0.7 -o unmerged.safetensors
              scalpel merge model-f16.gguf lora.gguf -o merged.gguf
            """
        )

        @Argument(help: "The base checkpoint.")
        var base: String

        @Argument(help: "Adapters to merge, in order, each optionally ADAPTER:WEIGHT.")
        var adapters: [WeightedAdapterArgument]

        @Option(name: .shortAndLong, help: "The output path (*.safetensors, *.gguf, either + .zst, or a folder).")
        var output: String

        @Option(parsing: .unconditionalSingleValue, help: "Weight of the adapters: once for all, or once per adapter in order.")
        var weight: [Double] = []

        @Option(help: "Write float tensors as f32, f16 or bf16 (default: the base's dtypes).")
        var dtype: DType?

        @Flag(help: "Skip adapter tensors that match no base tensor or whose shape disagrees, instead of failing.")
        var ignoreMissing = false

        @Option(help: "For kohya LoRA files: a JSON object from kohya prefix to module path (default: the module path with dots as underscores, behind lora_unet_/lora_te_).")
        var map: String?

        @OptionGroup var zstd: OutputOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            _ = try WeightedAdapterArgument.resolve(adapters, weights: weight)
        }

        func plan() throws -> Plan {
            let resolved = try WeightedAdapterArgument.resolve(adapters, weights: weight)
            let baseCheckpoint = try CheckpointReader.open(base)
            let names = try map.map(KohyaLoRA.readMap) ?? [:]
            let inputs = try resolved.map {
                WeightedAdapter(try LoRAAdapter.open($0.path).resolvingKohyaNames(base: baseCheckpoint, map: names), weight: $0.weight)
            }
            let dest = try Destination(path: output, zstdLevel: zstd.zstdLevel)
            return try ScalpelKit.Merge.plan(base: baseCheckpoint, adapters: inputs, for: dest,
                                             options: .init(dtype: dtype, ignoreMissing: ignoreMissing))
        }
    }
}

/// An `ADAPTER[:WEIGHT]` argument.
struct WeightedAdapterArgument: ExpressibleByArgument {
    var path: String
    var weight: Double?

    /// Splits at the last ':' when what follows is a finite number and the whole text is not an existing
    /// path.
    init?(argument: String) {
        if let colon = argument.lastIndex(of: ":"), !FileManager.default.fileExists(atPath: argument),
           let w = Double(argument[argument.index(after: colon)...]), w.isFinite {
            path = String(argument[..<colon])
            weight = w
        } else {
            path = argument
            weight = nil
        }
        if path.isEmpty { return nil }
    }

    /// Paths and weights: an inline weight, else `--weight` (one for all, or one per adapter), else 1.
    static func resolve(_ adapters: [WeightedAdapterArgument], weights: [Double]) throws -> [(path: String, weight: Double)] {
        guard weights.count <= 1 || weights.count == adapters.count else {
            throw ValidationError("--weight is given \(weights.count) times for \(adapters.count) adapters: give it once, or once per adapter")
        }
        guard weights.allSatisfy(\.isFinite) else { throw ValidationError("--weight must be a finite number") }
        if let stray = adapters.first(where: { Double($0.path) != nil && !FileManager.default.fileExists(atPath: $0.path) }) {
            throw ValidationError("'\(stray.path)' is a number, not an adapter: --weight takes one value, so give it once per adapter (--weight 0.5 --weight 0.5) or write ADAPTER:WEIGHT")
        }
        return try adapters.enumerated().map { i, a in
            let option = weights.isEmpty ? nil : weights[weights.count == 1 ? 0 : i]
            if a.weight != nil && option != nil {
                throw ValidationError("\(a.path) has a weight both as ADAPTER:WEIGHT and from --weight")
            }
            return (a.path, a.weight ?? option ?? 1)
        }
    }
}
