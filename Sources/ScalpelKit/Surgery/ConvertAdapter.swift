import Foundation

/// Converting adapters between PEFT LoRA folders, kohya LoRA files and llama.cpp GGUF LoRAs: the
/// `convert-adapter` command's transform.
///
/// Factors are copied byte for byte and each module's scaling is carried exactly where the target can
/// hold it: PEFT's `lora_alpha / r` (rank_pattern / alpha_pattern per module, rsLoRA as alpha = scaling *
/// r) and kohya's per-module `alpha / r` are equivalent. AdaLoRA, LoHa and LoKr inputs become their exact
/// LoRA factors (`AdapterDeltaModule`). What a target cannot hold is refused or dropped with a note:
/// DoRA magnitudes and IA3 (refused), `lora_B` biases and embedding LoRAs (refused for kohya),
/// `modules_to_save` tensors (dropped for kohya and GGUF, noted).
public enum ConvertAdapter {
    public enum Target: String, CaseIterable, Sendable {
        case peft, kohya, gguf
    }

    /// What the conversion wrote.
    public struct Summary: Sendable {
        public var modules = 0
        public var minRank = 0
        public var maxRank = 0
        /// What the target could not hold.
        public var notes: [String] = []
    }

    /// Plans the conversion of `adapter` to `target` at `output`. `base` (a GGUF model) is needed for GGUF
    /// in and out: its tensor names and head counts. Notes on what the target could not hold are the
    /// plan's warnings; the report says what was converted.
    public static func plan(_ adapter: LoRAAdapter, to target: Target, output: String, base: Checkpoint?) throws -> Plan {
        if !adapter.scaledModules.isEmpty {
            throw ScalpelError.invalid(file: adapter.path, tensor: adapter.scaledModules[0].weightName, reason: "module \(adapter.scaledModules[0].path) is IA3: its change W * (l - 1) depends on the base weight; resolve it against the base first (LoRAAdapter.resolvingScaledModules, the CLI's --base MODEL)")
        }
        if adapter.usesDoRA {
            throw ScalpelError.invalid(file: adapter.path, tensor: adapter.modules.first { $0.magnitudeName != nil }?.magnitudeName, reason: "is a DoRA adapter: its magnitudes renormalize the base weight, which neither kohya nor GGUF LoRAs can hold")
        }
        var modules = try adapter.modules.map { try AdapterOutputModule.copying($0, of: adapter) }
        var summary = Summary()
        if adapter.family != .lora && adapter.family != .kohya {
            summary.notes.append("\(adapter.family.displayName) modules written as their exact LoRA factors")
        }
        if target == .peft { try adapter.checkKohyaPathsKnown() }
        let carried = try adapter.replacements.map { OutputTensor(copying: try adapter.checkpoint.view($0.source)) }
        let inputs = adapter.checkpoint.sourcePaths + (base?.sourcePaths ?? [])
        var plan: Plan
        switch target {
        case .peft:
            if adapter.format == .gguf {
                modules = try GGUFLoRANames.toPEFT(modules, base: base, adapter: adapter)
            }
            let fifo = adapter.config?.fanInFanOut ?? false
            let config = try AdapterOutput.peftConfig(
                modules, like: adapter.config, targetModules: adapter.family == .lora && adapter.config != nil ? adapter.config!.targetModules : nil,
                fanInFanOut: fifo, modulesToSave: adapter.config?.modulesToSave ?? [])
            plan = try AdapterOutput.planPEFT(modules, config: config, carried: carried, to: output, inputs: inputs)
        case .kohya:
            if adapter.format == .gguf {
                modules = try GGUFLoRANames.toPEFT(modules, base: base, adapter: adapter)
            }
            if adapter.modules.contains(where: { $0.transposed && $0.kind == .linear }) {
                throw ScalpelError.invalid(file: adapter.path, tensor: nil, reason: "has fan_in_fan_out layers (GPT-2 Conv1D), whose orientation kohya's format does not record")
            }
            if !carried.isEmpty { summary.notes.append("dropped \(carried.count) full tensors (modules_to_save), which kohya's format cannot hold") }
            plan = try AdapterOutput.planKohya(modules, to: output, inputs: inputs)
        case .gguf:
            if !carried.isEmpty { summary.notes.append("dropped \(carried.count) full tensors (modules_to_save), which a GGUF LoRA cannot hold") }
            let (tensors, metadata, notes) = try GGUFLoRANames.fromPEFT(modules, base: base, adapter: adapter)
            summary.notes += notes
            plan = Plan(destination: try Destination(path: output), tensors: tensors, metadata: metadata, inputs: inputs)
        }
        summary.modules = modules.count
        summary.minRank = modules.map(\.rank).min() ?? 0
        summary.maxRank = modules.map(\.rank).max() ?? 0
        plan.warnings += summary.notes
        let done = summary, family = adapter.family.displayName
        plan.report = { _ in
            let ranks = done.minRank == done.maxRank ? "rank \(done.minRank)" : "ranks \(done.minRank)-\(done.maxRank)"
            return Report(text: "converted \(done.modules) modules (\(ranks)) from \(family) to \(target.rawValue)",
                          fields: [("modules", .int(done.modules)), ("min_rank", .int(done.minRank)), ("max_rank", .int(done.maxRank)),
                                   ("from", .string(family)), ("to", .string(target.rawValue))], details: done)
        }
        return plan
    }
}

extension LoRAAdapter {
    /// The format of the opened file (PEFT folder, GGUF, safetensors for kohya).
    public var format: CheckpointFormat { checkpoint.format }
}

extension LoRAAdapter {
    /// Throws unless every module of a kohya adapter has a module path (from Scalpel's record, `--map`
    /// or `--base`): PEFT keys need the dotted path.
    public func checkKohyaPathsKnown() throws {
        guard family == .kohya, let first = modules.first(where: { !$0.path.contains(".") }) else { return }
        throw ScalpelError.invalid(file: path, tensor: first.aName, reason: "the module path of \(first.path) is unknown (underscores cannot be turned back into dots): give --base (a model whose module names it matches) or --map")
    }
}
