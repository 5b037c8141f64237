import Foundation

/// One LoRA module to write: `delta = (alpha / rank) * B @ A` in PEFT's [out, in] product orientation.
public struct AdapterOutputModule {
    public var path: String
    public var kind: LoRAModule.Kind
    /// A [rank, cols] and B [rows, rank], as tensors to be renamed by the writer.
    public var a: OutputTensor
    public var b: OutputTensor
    public var rank: Int
    /// kohya-style alpha: the module's scaling is alpha / rank.
    public var alpha: Double
    /// A `lora_B` bias [rows], written under PEFT's key.
    public var bias: OutputTensor?

    public init(path: String, kind: LoRAModule.Kind, a: OutputTensor, b: OutputTensor, rank: Int, alpha: Double, bias: OutputTensor? = nil) {
        self.path = path
        self.kind = kind
        self.a = a
        self.b = b
        self.rank = rank
        self.alpha = alpha
        self.bias = bias
    }

    /// The module of an opened adapter, its factors copied byte for byte (alpha = scaling * rank).
    public static func copying(_ m: LoRAModule, of adapter: LoRAAdapter) throws -> AdapterOutputModule {
        let ckpt = adapter.checkpoint
        return AdapterOutputModule(
            path: m.path, kind: m.kind, a: OutputTensor(copying: try ckpt.view(m.aName)), b: OutputTensor(copying: try ckpt.view(m.bName)),
            rank: m.rank, alpha: m.scaling * Double(m.rank), bias: try m.biasName.map { OutputTensor(copying: try ckpt.view($0)) })
    }

    /// Factors from matrices (f32), with alpha = rank (scaling 1).
    public static func factors(path: String, kind: LoRAModule.Kind, _ f: LoRAFactors) -> AdapterOutputModule {
        func tensor(_ m: Matrix) -> OutputTensor {
            OutputTensor(name: "", type: .plain(.f32), shape: [m.rows, m.cols], content: .filling { out in m.values.withUnsafeBytes { out.copyMemory(from: $0) } })
        }
        return AdapterOutputModule(path: path, kind: kind, a: tensor(f.a), b: tensor(f.b), rank: f.rank, alpha: Double(f.rank))
    }
}

/// Writers of LoRA adapters in the formats `convert-adapter` and `resize` produce.
public enum AdapterOutput {
    /// The PEFT config of `modules`: r and lora_alpha the most common rank and alpha, rank_pattern and
    /// alpha_pattern (exact module paths) for the others; the other fields from `like` when given.
    public static func peftConfig(_ modules: [AdapterOutputModule], like: AdapterConfig?, targetModules: JSONValue? = nil,
                                  fanInFanOut: Bool = false, modulesToSave: [String] = []) throws -> AdapterConfig {
        func mostCommon<T: Hashable & Comparable>(_ xs: [T], _ fallback: T) -> T {
            var counts: [T: Int] = [:]
            for x in xs { counts[x, default: 0] += 1 }
            return counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key ?? fallback
        }
        let r = mostCommon(modules.map(\.rank), 8)
        let alpha = mostCommon(modules.map(\.alpha), Double(r))
        let rankPattern = modules.filter { $0.rank != r }.map { (AdapterConfig.modulePattern($0.path), $0.rank) }
        let alphaPattern = modules.filter { $0.alpha != alpha }.map { (AdapterConfig.modulePattern($0.path), $0.alpha) }
        let targets = targetModules ?? .array(Array(Set(modules.map(\.path))).sorted().map { .string($0) })
        return try AdapterConfig(
            r: r, loraAlpha: alpha, targetModules: targets, rankPattern: rankPattern, alphaPattern: alphaPattern,
            fanInFanOut: fanInFanOut, loraBias: modules.contains { $0.bias != nil }, modulesToSave: modulesToSave,
            baseModelNameOrPath: like?.json["base_model_name_or_path"]?.stringValue, taskType: like?.json["task_type"]?.stringValue)
    }

    /// The plan of a PEFT adapter folder (plus `carried` full tensors, written as given). When some module
    /// has a `lora_B` bias, the linear modules without one get zeros: PEFT's `lora_bias` gives every
    /// `lora_B` a bias and expects its key (IA3's feedforward modules, base layers without bias).
    public static func planPEFT(_ modules: [AdapterOutputModule], config: AdapterConfig, carried: [OutputTensor] = [], to folder: String, inputs: [String]) throws -> Plan {
        var tensors: [OutputTensor] = []
        let anyBias = modules.contains { $0.bias != nil }
        for m in modules {
            tensors.append(renamed(m.a, PEFTAdapterWriter.aKey(m.path, kind: m.kind)))
            tensors.append(renamed(m.b, PEFTAdapterWriter.bKey(m.path, kind: m.kind)))
            if let bias = m.bias {
                tensors.append(renamed(bias, PEFTAdapterWriter.biasKey(m.path)))
            } else if anyBias && m.kind == .linear, let rows = m.b.shape.first {
                tensors.append(OutputTensor(name: PEFTAdapterWriter.biasKey(m.path), type: .plain(.f32), shape: [rows],
                                            content: .filling { $0.initializeMemory(as: UInt8.self, repeating: 0) }))
            }
        }
        return try PEFTAdapterWriter.plan(tensors: tensors + carried, config: config, to: folder, inputs: inputs)
    }

    /// The plan of a kohya LoRA file: `<marker><path with _>.lora_down.weight`, `.lora_up.weight`, `.alpha`
    /// (f32 scalar), and the exact module paths in `scalpel_module_paths`.
    /// - Throws: `ScalpelError.invalid` for embedding modules and biases (kohya LoRA has neither).
    public static func planKohya(_ modules: [AdapterOutputModule], marker: String = "lora_unet_", to path: String, inputs: [String]) throws -> Plan {
        var tensors: [OutputTensor] = []
        var paths: [(String, JSONValue)] = []
        for m in modules {
            guard m.kind == .linear else {
                throw ScalpelError.invalid(file: path, tensor: m.path, reason: "is an embedding LoRA, which kohya's format cannot hold")
            }
            guard m.bias == nil else {
                throw ScalpelError.invalid(file: path, tensor: m.path, reason: "has a lora_B bias (lora_bias), which kohya's format cannot hold")
            }
            // A kohya module whose path was never resolved keeps its prefix.
            let unresolved = !m.path.contains(".") && KohyaLoRA.markers.contains { m.path.hasPrefix($0) }
            let prefix = unresolved ? m.path : KohyaLoRA.prefix(forModulePath: m.path, marker: marker)
            tensors.append(renamed(m.a, prefix + KohyaLoRA.downSuffix))
            tensors.append(renamed(m.b, prefix + KohyaLoRA.upSuffix))
            let alpha = Float(m.alpha)
            tensors.append(OutputTensor(name: prefix + KohyaLoRA.alphaSuffix, type: .plain(.f32), shape: [],
                                        content: .filling { out in withUnsafeBytes(of: alpha) { out.copyMemory(from: $0) } }))
            if !unresolved { paths.append((prefix, .string(m.path))) }
        }
        let metadata = Metadata([("ss_network_module", .string("networks.lora")),
                                 (KohyaLoRA.modulePathsKey, .string(JSONWriter.string(.object(paths), style: .compact)))])
        guard path.hasSuffix(".safetensors") else {
            throw ScalpelError.invalid(file: path, tensor: nil, reason: "a kohya LoRA is one .safetensors file")
        }
        return Plan(destination: try Destination(path: path), tensors: tensors, metadata: metadata, inputs: inputs)
    }

    static func renamed(_ t: OutputTensor, _ name: String) -> OutputTensor {
        OutputTensor(name: name, type: t.type, shape: t.shape, content: t.content, onWritten: t.onWritten)
    }
}
