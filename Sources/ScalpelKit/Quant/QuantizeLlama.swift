import Foundation

extension Quantize {
    /// Which rules choose each tensor's type for a GGUF output.
    public enum TypeRules: String, Sendable {
        /// llama.cpp's (`LlamaQuantRules`) for GGUF inputs, for the K and IQ4 presets and types, and whenever a
        /// llama-quantize control (`--pure`, `--imatrix`, `--tensor-type`, ...) is given; Scalpel's own
        /// selection (linear weights only) otherwise.
        case automatic
        /// Always llama.cpp's.
        case llama
        /// Scalpel's own selection (`TensorSelection`), as before presets existed.
        case scalpel
    }

    /// Parses a `--type` value: one of llama-quantize's file types (case-insensitive: `Q4_K_M`, `q8_0`,
    /// `F16`...) gives that preset and its default tensor type; any other `QuantType` name (`q4_k`,
    /// `nf4`, `int8`...) is a plain type. nil when it is neither, or Scalpel cannot write the preset's
    /// default type.
    public static func parseType(_ text: String) -> (type: QuantType, fileType: LlamaFileType?)? {
        if let ft = LlamaFileType(name: text) {
            guard let t = QuantType(ggml: ft.defaultType) else { return nil }
            return (t, ft)
        }
        return QuantType(rawValue: text.lowercased()).map { ($0, nil) }
    }

    /// True when llama.cpp's rules choose the types of this run (see `TypeRules`).
    static func usesLlamaRules(_ input: Checkpoint, toGGUF: Bool, options: Options) -> Bool {
        guard toGGUF, family(options) == .gguf || family(options) == .plain else { return false }
        switch options.rules {
        case .llama: return true
        case .scalpel: return false
        case .automatic:
            if input.format == .gguf { return family(options) == .gguf || options.fileType != nil }
            // The K and IQ4 types are new to Scalpel: llama.cpp's rules from the start. The legacy types
            // keep Scalpel's own selection for non-GGUF inputs.
            let kType = (options.type.ggmlType?.blockSize ?? 0) == 256 || options.type == .iq4_nl
            let controls = options.pure || options.outputTensorType != nil || options.tokenEmbeddingType != nil
                || options.leaveOutputTensor || !options.tensorTypes.isEmpty || options.importance != nil
            return family(options) == .gguf && (kType || controls)
        }
    }

    /// The llama-rule targets of a run: per logical tensor, the type (nil: kept as it is) and the
    /// importance values to quantize it with.
    struct LlamaTargets {
        var types: [QuantType?]
        var importance: [[Float]?]
        var fileType: LlamaFileType
    }

    /// Types every logical tensor as llama-quantize would (by its llama.cpp name for Hugging Face
    /// inputs), then applies Scalpel's `--skip`/`--only` (which keep tensors) and `--type-for` rules
    /// (which win over everything).
    /// - Throws: `ScalpelError.invalid` when the preset needs a type Scalpel cannot write, a quantized
    ///   tensor would be quantized again without `allowRequantize`, or an imatrix entry has the wrong size.
    static func llamaTargets(_ input: Checkpoint, _ logicals: [LogicalTensor], options: Options) throws -> LlamaTargets {
        let fileType: LlamaFileType
        var params: LlamaQuantRules.Params
        if let ft = options.fileType {
            fileType = ft
            params = .init(fileType: ft)
            params.pure = options.pure
        } else if let g = options.type.ggmlType ?? options.type.plainDType.flatMap({ GGMLType(plain: $0) }),
                  let ft = LlamaFileType(mostly: g) {
            // A plain tensor type (`q4_k`): every quantizable tensor gets it.
            fileType = ft
            params = .init(fileType: LlamaFileType(mostly: g)!)
            params.pure = true
        } else {
            throw ScalpelError.invalid(file: input.path, tensor: nil, reason: "--type \(options.type.rawValue) has no llama.cpp file type")
        }
        params.outputTensorType = options.outputTensorType
        params.tokenEmbeddingType = options.tokenEmbeddingType
        params.quantizeOutputTensor = !options.leaveOutputTensor
        params.tensorTypes = options.tensorTypes
        params.hasImatrix = !(options.importance?.entries.isEmpty ?? true)

        let isGGUF = input.format == .gguf
        let llamaNames = logicals.map { isGGUF ? $0.name : (LlamaTensorNames.llamaName($0.name) ?? $0.name) }
        let model: LlamaQuantRules.Model
        if isGGUF {
            model = .init(gguf: input.metadata, tensorNames: llamaNames)
        } else {
            let config = try? JSONParser.parse(readSmallFile(ModelFolder(checkpointPath: input.path).folder + "/config.json"))
            model = .init(huggingFaceConfig: config, llamaNames: llamaNames)
        }
        let current: [GGMLType] = logicals.map { l in
            if let i = l.fileIndex, case .block(let g) = input.tensors[i].type { return g }
            return l.originalDType.flatMap { GGMLType(plain: $0) } ?? .f32
        }
        let rules = zip(llamaNames, logicals).enumerated().map { i, p in
            LlamaQuantRules.Tensor(name: p.0, shape: p.1.shape, type: current[i])
        }
        let chosen = try LlamaQuantRules.targetTypes(rules, model: model, params: params)

        var types: [QuantType?] = []
        var importance: [[Float]?] = []
        for (i, l) in logicals.enumerated() {
            var target: QuantType? = nil
            if let rule = options.typeFor.last(where: { globMatches($0.glob, l.name) }) {
                target = rule.type
            } else if options.selection.skip.contains(where: { globMatches($0, l.name) })
                        || (!options.selection.only.isEmpty && !options.selection.only.contains(where: { globMatches($0, l.name) })) {
                target = nil
            } else if chosen[i] != current[i] || l.isQuantized {
                // (A block tensor already of its type is copied, and the report says so.)
                guard let t = QuantType(ggml: chosen[i]) else {
                    throw ScalpelError.invalid(file: input.path, tensor: l.name, reason: "\(fileType.name) gives it \(chosen[i].name), which Scalpel cannot write")
                }
                target = t
            }
            try checkRequantize(input, l, target: target, options: options)
            let ggml = target?.ggmlType
            var values: [Float]? = nil
            if let m = options.importance, let g = ggml, g.blockSize > 1, let v = m.entries[llamaNames[i]] {
                let ne2 = l.shape.count >= 3 ? l.shape[l.shape.count - 3] : 1
                let need = (l.shape.last ?? 1) * ne2
                if v.count == need {
                    values = v
                } else if llamaNames[i] != "token_embd.weight" && llamaNames[i] != "per_layer_token_embd.weight" {
                    throw ScalpelError.invalid(file: input.path, tensor: l.name,
                                               reason: "the importance matrix has \(v.count) values for it, but it needs \(need) (row length x experts)")
                }
            }
            types.append(target)
            importance.append(values)
        }
        return LlamaTargets(types: types, importance: importance, fileType: fileType)
    }

    /// Refuses to quantize an already quantized tensor again (to another block type, or a ggml block
    /// tensor to any other type) unless `allowRequantize`, as llama-quantize does; dequantizing a
    /// bitsandbytes or compressed-tensors weight to floats is allowed.
    static func checkRequantize(_ input: Checkpoint, _ l: LogicalTensor, target: QuantType?, options: Options) throws {
        guard let t = target, l.isQuantized, !options.allowRequantize else { return }
        var block: GGMLType? = nil
        if let i = l.fileIndex, case .block(let g) = input.tensors[i].type { block = g }
        if let b = block, t.ggmlType == b { return }
        if block == nil && t.plainDType != nil { return }
        throw ScalpelError.invalid(file: input.path, tensor: l.name, reason:
            "is already quantized (\(l.storage)): quantizing it again to \(t.ggmlType?.name ?? t.rawValue.uppercased()) adds a second rounding error to the first (quantize the F32/F16/BF16 original instead, or pass --allow-requantize)")
    }

    /// The metadata llama-quantize writes: the input's, `general.quantization_version` 2, the file type,
    /// and the importance matrix keys.
    static func llamaMetadata(_ base: Metadata, fileType: LlamaFileType, options: Options) -> Metadata {
        var m = base
        m["general.quantization_version"] = .uint32(2)
        m["general.file_type"] = .uint32(fileType.id)
        for key in ["split.no", "split.count", "split.tensors.count"] { m[key] = nil }
        if let imatrix = options.importance, !imatrix.entries.isEmpty {
            for (k, v) in imatrix.metadata(path: options.importancePath ?? "") { m[k] = v }
        }
        return m
    }
}

extension QuantType {
    /// The `--type` of a ggml tensor type (F32, F16, BF16 and the block types Scalpel writes).
    public init?(ggml: GGMLType) {
        self.init(rawValue: ggml.name.lowercased())
    }
}
