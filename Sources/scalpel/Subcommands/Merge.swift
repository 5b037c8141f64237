import ArgumentParser
import Dispatch
import Foundation
import ScalpelKit

struct Merge: ScalpelCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge LoRA adapters into a base checkpoint.",
        discussion: """
        BASE is a safetensors file or folder, or a GGUF file. Each ADAPTER is a PEFT adapter folder, or a \
        llama.cpp GGUF LoRA when BASE is GGUF; adapters apply in order, each scaled by its weight \
        (ADAPTER:WEIGHT or --weight; a negative weight removes a merged adapter). For each targeted module \
        W' = W + weight * scaling * B @ A, with PEFT's scaling (lora_alpha/r, rsLoRA, rank_pattern and \
        alpha_pattern); fan_in_fan_out, embedding LoRAs, lora_bias, modules_to_save and DoRA are handled. \
        The math is f32 and the output keeps the base's dtypes (or --dtype). Targeted tensors of a quantized \
        GGUF base (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) are dequantized, merged and re-quantized to their type, and \
        the error that adds is reported. When BASE is a folder and OUT is a folder, the base's other files \
        (config.json, tokenizer) are copied.

        Examples:
          scalpel merge llama/ adapter/ -o merged/
          scalpel merge model.safetensors style/:0.7 chat/ -o merged.safetensors --dtype bf16
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
    var dtype: FloatDTypeArgument?

    @Flag(help: "Skip adapter tensors that match no base tensor or whose shape disagrees, instead of failing.")
    var ignoreMissing = false

    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        _ = try WeightedAdapterArgument.resolve(adapters, weights: weight)
    }

    func execute() throws {
        let start = DispatchTime.now()
        let resolved = try WeightedAdapterArgument.resolve(adapters, weights: weight)
        let baseCheckpoint = try CheckpointReader.open(base)
        let inputs = try resolved.map { WeightedAdapter(try LoRAAdapter.open($0.path), weight: $0.weight) }
        let dest = try Destination(path: output, zstdLevel: outputOptions.zstdLevel)
        try dest.checkNotOverwriting([base] + resolved.map(\.path))
        let plan = try ScalpelKit.Merge.plan(base: baseCheckpoint, adapters: inputs, for: dest,
                                             options: .init(dtype: dtype?.dtype, ignoreMissing: ignoreMissing))
        let s = plan.summary
        for note in s.notes { say("note: \(note)") }
        for skipped in s.ignored { warn("skipped \(skipped)") }
        let copied = try ScalpelKit.Merge.write(plan.tensors, metadata: plan.metadata, to: dest, base: baseCheckpoint)
        let t = seconds(since: start)
        var parts = ["\(s.products) LoRA products"]
        if s.dora > 0 { parts.append("\(s.dora) of them DoRA") }
        if s.biases > 0 { parts.append("\(s.biases) biases") }
        if s.replaced > 0 { parts.append("\(s.replaced) replaced") }
        say("merged \(inputs.count) adapter\(inputs.count == 1 ? "" : "s") into \(s.changed) tensors (\(parts.joined(separator: ", "))); \(s.tensors - s.changed) unchanged")
        say(String(format: "wrote \(output): \(s.tensors) tensors, \(Format.bytes(s.bytesWritten)) of tensor data in %.2f s", t))
        if !copied.isEmpty { say("copied from the base folder: \(copied.joined(separator: ", "))") }
        let entries = plan.requantization.entries
        if let total = plan.requantization.total, let worst = entries.max(by: { $0.error.relativeRMSE < $1.error.relativeRMSE }) {
            let types = Set(entries.map(\.type)).sorted().joined(separator: ", ")
            say(String(format: "re-quantized \(entries.count) merged tensors to \(types) (the base's types): added relative RMS error %.3g overall (SQNR %.1f dB), largest %.3g in \(worst.tensor)",
                       total.relativeRMSE, total.sqnrDB, worst.error.relativeRMSE))
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
        return try adapters.enumerated().map { i, a in
            let option = weights.isEmpty ? nil : weights[weights.count == 1 ? 0 : i]
            if a.weight != nil && option != nil {
                throw ValidationError("\(a.path) has a weight both as ADAPTER:WEIGHT and from --weight")
            }
            return (a.path, a.weight ?? option ?? 1)
        }
    }
}

/// Prints a line to standard error.
func warn(_ text: String) {
    FileHandle.standardError.write(Data("scalpel: warning: \(text)\n".utf8))
}
