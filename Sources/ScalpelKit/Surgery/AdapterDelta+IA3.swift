extension LoRAAdapter {
    /// True when some module's change depends on the base weights (IA3), so that stacking, resizing or
    /// converting the adapter needs the base model.
    public var needsBase: Bool { !scaledModules.isEmpty }

    /// The adapter with its IA3 modules written as exact LoRA modules against `base`; the adapter itself
    /// when it has none.
    ///
    /// IA3 merges as `W' = W * l` (rows for attention targets, columns for `feedforward_modules`,
    /// transposed with `fan_in_fan_out`) and scales the base bias of a row-scaling module the same way
    /// (PEFT's `IA3Layer.merge`). Its additive change is therefore `D = W' - W = W * (l - 1)`, a dense
    /// matrix of rank up to min(out, in), stored as exact factors (`B' = I`, `A' = D` when out <= in, else
    /// `B' = D`, `A' = I`; rank min(out, in), scaling 1), and the bias change `b * (l - 1)` as the module's
    /// `lora_B` bias. Merged at weight w, the LoRA module gives `W + w D = W * (1 + w (l - 1))`, which is
    /// what `merge` does with an IA3 adapter at weight w. Base names are matched as `merge` matches them
    /// (`MergeNameMapping`). The factors are computed from the base, one module at a time, into the unlinked
    /// temporary file that backs the returned adapter (as the other families' factors are).
    ///
    /// - Throws: `ScalpelError.invalid` naming the adapter and the IA3 vector when `base` is nil, when the
    ///   base lacks the module's weight, when its shape disagrees with the vector, or when the weight is not
    ///   a float tensor Scalpel can decode.
    public func resolvingScaledModules(base: Checkpoint?) throws -> LoRAAdapter {
        guard let first = scaledModules.first else { return self }
        guard let base else {
            throw ScalpelError.invalid(file: path, tensor: first.vectorName, reason: "module \(first.path) is IA3: its change W * (l - 1) depends on the base weight \(first.weightName); give the base model with --base MODEL")
        }
        let mapping = MergeNameMapping.choose(for: scaledModules.map(\.weightName), in: base)
        var outputs = try checkpoint.tensors.indices.map { OutputTensor(copying: try checkpoint.view(at: $0)) }
        var added: [LoRAModule] = []
        for m in scaledModules {
            guard case .scaleVector(let vectorName, let columns) = m.rule else { continue }
            guard let baseName = mapping.baseName(m.weightName), let info = base.info(named: baseName) else {
                throw ScalpelError.invalid(file: path, tensor: vectorName, reason: "module \(m.path) is IA3 and targets \(m.weightName), which is not in the base \(base.path)")
            }
            let length = max(m.productShape[0], m.productShape[1])
            guard info.shape.count == 2 else {
                throw ScalpelError.invalid(file: path, tensor: vectorName, reason: "module \(m.path) is IA3 and targets \(info.name) of shape \(info.shape) in \(base.path); only 2-D (linear) weights are read")
            }
            // [out, in] as PEFT orients the update; the base holds [in, out] with fan_in_fan_out.
            let (rows, cols) = m.transposed ? (info.shape[1], info.shape[0]) : (info.shape[0], info.shape[1])
            guard (columns ? cols : rows) == length else {
                throw ScalpelError.invalid(file: path, tensor: vectorName, reason: "module \(m.path) is IA3 with a vector of length \(length) scaling \(columns ? "input columns" : "output rows"), but \(info.name) in \(base.path) has shape \(info.shape)\(m.transposed ? " (fan_in_fan_out: [in, out])" : "")")
            }
            switch info.type {
            case .plain(let d) where d.isComputableFloat: break
            case .block(let g) where GGMLDequantize.supportedTypes.contains(g): break
            default:
                throw ScalpelError.invalid(file: base.path, tensor: info.name, reason: "is \(info.type), not a float tensor an IA3 vector can scale")
            }
            let adapterCkpt = checkpoint, transposed = m.transposed
            let delta: @Sendable (UnsafeMutableBufferPointer<Float>) throws -> Void = { out in
                let l = try FloatConversion.floats(try adapterCkpt.view(vectorName))
                let view = try base.view(info.name)
                var w = try FloatConversion.floats(view)
                if transposed { w = StackSVD.transposed(Matrix(rows: cols, cols: rows, values: w)).values }
                for i in 0..<rows {
                    for j in 0..<cols { out[i * cols + j] = w[i * cols + j] * (l[columns ? j : i] - 1) }
                }
            }
            let identity: @Sendable (UnsafeMutableBufferPointer<Float>, Int) -> Void = { out, n in
                out.update(repeating: 0)
                for i in 0..<n { out[i * n + i] = 1 }
            }
            let rank = min(rows, cols)
            let aName = "scalpel.materialized." + PEFTAdapterWriter.aKey(m.path), bName = "scalpel.materialized." + PEFTAdapterWriter.bKey(m.path)
            outputs.append(OutputTensor(name: aName, type: .plain(.f32), shape: [rank, cols], content: .filling { raw in
                let out = raw.bindMemory(to: Float.self)
                if rows <= cols { try delta(out) } else { identity(out, cols) }
            }))
            outputs.append(OutputTensor(name: bName, type: .plain(.f32), shape: [rows, rank], content: .filling { raw in
                let out = raw.bindMemory(to: Float.self)
                if rows <= cols { identity(out, rows) } else { try delta(out) }
            }))
            var biasName: String?
            let biasPath = String(baseName.dropLast(".weight".count)) + ".bias"
            if !columns, baseName.hasSuffix(".weight"), let bias = base.info(named: biasPath), bias.shape == [rows] {
                let name = "scalpel.materialized." + PEFTAdapterWriter.biasKey(m.path)
                biasName = name
                outputs.append(OutputTensor(name: name, type: .plain(.f32), shape: [rows], content: .filling { raw in
                    let out = raw.bindMemory(to: Float.self)
                    let l = try FloatConversion.floats(try adapterCkpt.view(vectorName))
                    let b = try FloatConversion.floats(try base.view(bias.name))
                    for i in 0..<rows { out[i] = b[i] * (l[i] - 1) }
                }))
            }
            added.append(LoRAModule(path: m.path, kind: .linear, weightName: m.weightName, aName: aName, bName: bName, biasName: biasName,
                                    magnitudeName: nil, rank: rank, alpha: Double(rank), scaling: 1, productShape: [rows, cols],
                                    transposed: m.transposed))
        }
        var resolved = LoRAAdapter(checkpoint: try LoRAAdapter.temporaryCheckpoint(outputs, like: checkpoint), config: config,
                                   modules: modules + added, replacements: replacements)
        resolved.family = family
        resolved.familyModules = familyModules
        return resolved
    }
}

extension AdapterDeltaModule {
    /// The IA3 vector's tensor name (the weight name for the other families).
    public var vectorName: String {
        if case .scaleVector(let name, _) = rule { return name }
        return weightName
    }
}
