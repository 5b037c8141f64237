import Foundation

/// Names, shapes, config and metadata of an extracted adapter, in PEFT's or llama.cpp's vocabulary.
struct AdapterLayout {
    var tensors: [OutputTensor] = []
    var config: AdapterConfig?
    var metadata = Metadata()

    /// - Parameter factors: per base tensor, its factors and the factor `r / alpha` that B is multiplied
    ///   by so that `alpha / r * B A` is the delta.
    init(format: ExtractLoRA.OutputFormat, factors: [(name: String, f: LoRAFactors, scale: Float, embedding: Bool)],
         full: [(name: String, tensor: Int)], base: Checkpoint, tuned: Checkpoint, options: ExtractLoRA.Options, dtype: DType) throws {
        let encode = { (m: Matrix, scale: Float, name: String) -> OutputTensor in
            OutputTensor(name: name, type: .plain(dtype), shape: [m.rows, m.cols], content: .compute { buf in
                let v = scale == 1 ? m.values : m.values.map { $0 * scale }
                try v.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype, into: buf, tensor: name) }
                return .none
            }, action: "write factor")
        }
        let paths = factors.map { PEFTAdapterWriter.modulePath(ofBaseTensor: $0.name) }
        switch format {
        case .peft:
            for (k, item) in factors.enumerated() {
                let kind: LoRAModule.Kind = item.embedding ? .embedding : .linear
                tensors.append(encode(item.f.a, 1, PEFTAdapterWriter.aKey(paths[k], kind: kind)))
                tensors.append(encode(item.f.b, item.scale, PEFTAdapterWriter.bKey(paths[k], kind: kind)))
            }
            for item in full {
                tensors.append(OutputTensor(copying: try tuned.view(at: item.tensor), name: LoRAAdapter.peftPrefix + item.name))
            }
            let ranks = factors.map(\.f.rank)
            let r = ranks.max() ?? 1
            let alpha = options.alpha ?? Double(r)
            var rankPattern: [(String, Int)] = []
            var alphaPattern: [(String, Double)] = []
            for (k, rank) in ranks.enumerated() where rank != r {
                rankPattern.append((AdapterConfig.modulePattern(paths[k]), rank))
                if options.alpha == nil { alphaPattern.append((AdapterConfig.modulePattern(paths[k]), Double(rank))) }
            }
            config = try AdapterConfig(r: r, loraAlpha: alpha, targetModules: AdapterLayout.targetModules(paths, base: base),
                                       rankPattern: rankPattern, alphaPattern: alphaPattern,
                                       modulesToSave: full.map { PEFTAdapterWriter.modulePath(ofBaseTensor: $0.name) },
                                       baseModelNameOrPath: options.baseID ?? base.path)
        case .gguf:
            guard base.format == .gguf else {
                throw ScalpelError.invalid(file: base.path, tensor: nil, reason: "--format gguf needs GGUF inputs (llama.cpp names its tensors differently)")
            }
            guard full.isEmpty else {
                throw ScalpelError.invalid(file: base.path, tensor: full[0].name, reason: "a GGUF LoRA cannot store full tensors (--save-full)")
            }
            // llama.cpp uses one alpha for every tensor: scale = alpha / r per tensor. B is compensated.
            let alpha = options.alpha ?? Double(factors.map(\.f.rank).max() ?? 1)
            for item in factors {
                tensors.append(encode(item.f.a, 1, item.name + ".lora_a"))
                tensors.append(encode(item.f.b, Float(Double(item.f.rank) / alpha), item.name + ".lora_b"))
            }
            metadata = Metadata([
                ("general.architecture", base.metadata["general.architecture"] ?? .string("unknown")),
                ("general.type", .string("adapter")),
                ("general.name", .string("LoRA extracted by scalpel")),
                ("adapter.type", .string("lora")),
                ("adapter.lora.alpha", .float32(Float(alpha))),
            ])
        }
    }

    /// Module names (the last path part) when every base module of that name was extracted, so the list
    /// reads as PEFT users write it; otherwise the full paths.
    static func targetModules(_ paths: [String], base: Checkpoint) -> JSONValue {
        let extracted = Set(paths)
        let leaf = { (p: String) in String(p.split(separator: ".").last ?? Substring(p)) }
        let leaves = Set(paths.map(leaf))
        let allCovered = base.tensors.allSatisfy { t in
            guard t.shape.count == 2, t.name.hasSuffix(".weight") else { return true }
            let p = PEFTAdapterWriter.modulePath(ofBaseTensor: t.name)
            return !leaves.contains(leaf(p)) || extracted.contains(p)
        }
        let names = allCovered ? leaves.sorted() : paths.sorted()
        return .array(names.map { .string($0) })
    }
}
