import ArgumentParser
import ScalpelKit

extension Scalpel {
struct ConvertAdapter: PlanningCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert-adapter",
        abstract: "Convert a LoRA adapter between PEFT, kohya and llama.cpp GGUF formats.",
        discussion: """
        IN is a PEFT adapter folder (LoRA, or AdaLoRA / LoHa / LoKr written as their exact LoRA factors), \
        a kohya LoRA .safetensors file, or a GGUF LoRA. Factors are copied byte for byte and each module's \
        scaling is kept (PEFT alpha/r and rsLoRA, kohya's per-module alpha). --to gguf needs --base, the \
        GGUF model (llama.cpp's tensor names; q/k rows reordered as llama.cpp's converter does); GGUF in \
        needs it too. A kohya file without Scalpel's record of module paths needs --base (a model whose \
        module names it matches) or --map to become PEFT. An IA3 adapter needs --base MODEL (not GGUF): \
        its update W * (l - 1) becomes an exact full-rank LoRA (bias changes as lora_B biases). What a \
        target cannot hold is refused (DoRA, biases and embeddings in kohya) or dropped with a note \
        (modules_to_save).

        Examples:
          scalpel convert-adapter adapter/ lora.safetensors --to kohya
          scalpel convert-adapter lora.safetensors adapter/ --to peft --base model.safetensors
          scalpel convert-adapter adapter/ lora.gguf --to gguf --base model-f16.gguf
        """
    )

    @Argument(help: "The adapter to convert.")
    var input: String

    @Argument(help: "The output (a folder for peft, a file for kohya and gguf).")
    var output: String

    @Option(help: "peft, kohya or gguf.")
    var to: TargetArgument

    @Option(help: "The base model: GGUF for GGUF in or out; any checkpoint to name a kohya file's modules or to compute an IA3 adapter's update.")
    var base: String?

    @Option(help: "For kohya input: a JSON object from kohya prefix to module path.")
    var map: String?

    @OptionGroup var writing: WriteOptions
    @OptionGroup var global: GlobalOptions

    func plan() throws -> Plan {
        let baseCheckpoint = try base.map { try CheckpointReader.open($0) }
        let names = try map.map(KohyaLoRA.readMap) ?? [:]
        var adapter = try LoRAAdapter.open(input).resolvingKohyaNames(base: baseCheckpoint?.format == .gguf ? nil : baseCheckpoint, map: names)
        if adapter.needsBase {
            if let b = baseCheckpoint, b.format == .gguf {
                throw ScalpelError.invalid(file: adapter.path, tensor: adapter.scaledModules[0].vectorName, reason: "module \(adapter.scaledModules[0].path) is IA3: its update W * (l - 1) is computed from a base with the adapter's own (Hugging Face) names, not \(b.path); convert it --to peft with --base MODEL first, then that LoRA --to gguf")
            }
            adapter = try adapter.resolvingScaledModules(base: baseCheckpoint)
        }
        return try ScalpelKit.ConvertAdapter.plan(adapter, to: to.target, output: output, base: baseCheckpoint)
    }
}
}

/// `--to` values.
enum TargetArgument: String, ExpressibleByArgument, CaseIterable {
    case peft, kohya, gguf
    var target: ScalpelKit.ConvertAdapter.Target { ScalpelKit.ConvertAdapter.Target(rawValue: rawValue)! }
}
