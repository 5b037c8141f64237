import Foundation

/// A Hugging Face model folder as the tensors and metadata of the GGUF llama.cpp's `convert_hf_to_gguf.py`
/// writes for it (llama.cpp 0c1e57098, vendored by llama-cpp-python 0.3.36).
///
/// Per tensor, as the reference: the HF name is mapped through the architecture's table (a tensor the table
/// does not know is refused), values are read as f32 (any float dtype), transformed if the architecture
/// says so (Llama's Q/K row permutation, Gemma's norm +1, GPT-2's Conv1D transpose), then stored as F32
/// when 1-D, a `*_norm.weight`, not a `.weight`, or one of the architecture's always-F32 tensors; else as
/// the output type, with Q8_0 falling back to F16 when a row is not a multiple of 32.
///
/// Metadata: `general.architecture`, `general.type`, `general.name` (the folder name), `general.size_label`,
/// the hyperparameters from config.json, `general.file_type`, `general.quantization_version`, then the
/// tokenizer. The reference also copies model-card fields (README.md: license, tags, datasets, languages,
/// and a name/version/organization parsed from the card); Scalpel does not read model cards.
public enum HFToGGUF {
    /// The output type (`--dtype`).
    public enum OutType: String, Sendable, CaseIterable {
        case f32, f16, bf16, q8_0

        /// The float dtype, nil for q8_0.
        public var floatDType: DType? {
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            case .q8_0: return nil
            }
        }

        /// GGUF `general.file_type` (llama_ftype).
        var fileType: UInt32 {
            switch self {
            case .f32: return 0
            case .f16: return 1
            case .q8_0: return 7
            case .bf16: return 32
            }
        }
    }

    /// The converted model, before it is given a destination.
    public struct Conversion {
        public var architecture: String
        public var outType: OutType
        public var tensors: [OutputTensor]
        public var metadata: Metadata
        /// HF tensors dropped on purpose (pooler, position ids...).
        public var dropped: [String]
        /// The files read.
        public var inputs: [String]
    }

    /// Plans the conversion of `folder`; `outType` nil picks the reference's "auto": BF16 or F16 after
    /// the first 2-D BF16/F16 tensor, else F16.
    public static func convert(folder path: String, outType: OutType?) throws -> Conversion {
        let folder = try HFFolder(path: path)
        let arch = try HFArchitectures.find(folder)
        let ckpt = folder.checkpoint
        let out = outType ?? autoType(ckpt)
        var tensors: [OutputTensor] = []
        var dropped: [String] = []
        var seen = Set<String>()
        for (i, info) in ckpt.tensors.enumerated() {
            if arch.drop(info.name) || info.name.hasSuffix(".attention.masked_bias") || info.name.hasSuffix(".attention.bias")
                || info.name.hasSuffix(".rotary_emb.inv_freq") {
                dropped.append(info.name)
                continue
            }
            guard let name = arch.ggufName(info.name.hasSuffix(".gamma") ? String(info.name.dropLast(6)) + ".weight"
                                          : info.name.hasSuffix(".beta") ? String(info.name.dropLast(5)) + ".bias" : info.name) else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: info.name, reason: "cannot map this tensor to a llama.cpp \(arch.gguf) tensor name")
            }
            guard seen.insert(name).inserted else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: info.name, reason: "maps to \(name), which another tensor already maps to")
            }
            guard case .plain(let d) = info.type, d.isComputableFloat else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: info.name, reason: "type \(info.type) is not a float type the converter reads")
            }
            let transform = try arch.transform?(folder, name, info.shape, info.type)
            tensors.append(try tensor(ckpt, index: i, name: name, shape: transform?.shape ?? info.shape, out: out, arch: arch,
                                      transform: transform))
        }
        if let extra = try arch.extraTensors?(folder) { tensors = extra + tensors }
        var m = Metadata()
        m["general.architecture"] = .string(arch.gguf)
        m["general.type"] = .string("model")
        m["general.name"] = .string(PathName.file(canonicalName(path)))
        let total = tensors.reduce(0) { $0 + ($1.shape.checkedProduct() ?? 0) }
        if total > 0 { m["general.size_label"] = .string(sizeLabel(total)) }
        if arch.commonParameters { try commonParameters(folder, arch: arch.gguf, into: &m) }
        m["general.file_type"] = .uint32(out.fileType)
        try arch.parameters(folder, &m)
        m["general.quantization_version"] = .uint32(2)
        try arch.vocab(folder, &m)
        return Conversion(architecture: arch.gguf, outType: out, tensors: tensors, metadata: m, dropped: dropped,
                          inputs: ckpt.sourcePaths)
    }

    /// The pipeline plan of converting `folder` into `destination` (a GGUF file).
    public static func plan(folder: String, outType: OutType?, destination: Destination) throws -> Plan {
        guard destination.kind == .gguf else {
            throw ScalpelError.invalid(file: destination.path, tensor: nil, reason: "a Hugging Face folder converts to a .gguf file")
        }
        let c = try convert(folder: folder, outType: outType)
        var plan = Plan(destination: destination, tensors: c.tensors, metadata: c.metadata, ggufAlignment: 32, inputs: c.inputs)
        let summary = "\(c.architecture), \(Format.counted(c.tensors.count, "tensor")) (\(c.outType.rawValue)), \(Format.counted(c.metadata.entries.count, "metadata key"))"
        let arch = c.architecture, type = c.outType.rawValue, n = c.tensors.count, dropped = c.dropped.count
        plan.report = { _ in
            Report(text: "converted Hugging Face " + summary, fields: [
                ("architecture", .string(arch)), ("dtype", .string(type)), ("tensors", .int(n)), ("dropped", .int(dropped)),
            ])
        }
        return plan
    }

    static func canonicalName(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    static func autoType(_ ckpt: Checkpoint) -> OutType {
        for t in ckpt.tensors where t.shape.count >= 2 {
            if t.type == .plain(.bf16) { return .bf16 }
            if t.type == .plain(.f16) { return .f16 }
        }
        return .f16
    }

    /// One output tensor: decode to f32, transform, encode.
    static func tensor(_ ckpt: Checkpoint, index i: Int, name: String, shape: [Int], out: OutType, arch: HFArchitecture,
                       transform: HFTransform?) throws -> OutputTensor {
        let info = ckpt.tensors[i]
        let view = try ckpt.view(at: i)
        var chosen: TensorType
        if shape.count <= 1 || name.hasSuffix("_norm.weight") || !name.hasSuffix(".weight") || arch.alwaysF32.contains(name) {
            chosen = .plain(.f32)
        } else {
            switch out {
            case .f32: chosen = .plain(.f32)
            case .f16: chosen = .plain(.f16)
            case .bf16: chosen = .plain(.bf16)
            case .q8_0: chosen = (shape.last ?? 0) % 32 == 0 ? .block(.q8_0) : .plain(.f16)
            }
        }
        let type = chosen
        let count = info.elementCount
        let source = info.type
        let plainCopy = transform == nil && type == source
        let release: @Sendable () -> Void = { ckpt.release(info.name) }
        if plainCopy { return OutputTensor(name: name, type: type, shape: shape, content: .view(view), action: "copy", onWritten: release) }
        return OutputTensor(name: name, type: type, shape: shape, content: .filling { buf in
            let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(count, 1))
            defer { floats.deallocate() }
            let f = UnsafeMutableBufferPointer(rebasing: floats[0..<count])
            try FloatConversion.decode(source, view.bytes, into: f, tensor: info.name)
            transform?.apply(f)
            switch type {
            case .block(let g): try GGMLQuantize.quantize(g, UnsafeBufferPointer(f), into: buf)
            case .plain(let d): try FloatConversion.encode(UnsafeBufferPointer(f), as: d, into: buf, tensor: name)
            }
        }, action: "\(source) -> \(type)" + (transform.map { " (\($0.label))" } ?? ""), onWritten: release)
    }

    /// The hyperparameters every text model gets (the reference's `TextModel.set_gguf_parameters`).
    static func commonParameters(_ folder: HFFolder, arch a: String, into m: inout Metadata) throws {
        func u32(_ key: String, _ keys: [String]) {
            if let v = folder.hparam(keys)?.intValue, let u = UInt32(exactly: v) { m[a + "." + key] = .uint32(u) }
        }
        func f32(_ key: String, _ keys: [String]) {
            if let v = folder.hparam(keys)?.doubleValue { m[a + "." + key] = .float32(Float(v)) }
        }
        let blocks = try folder.int(["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
        m[a + ".block_count"] = .uint32(UInt32(blocks))
        u32("context_length", ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"])
        u32("embedding_length", ["hidden_size", "n_embd", "dim"])
        u32("feed_forward_length", ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"])
        u32("attention.head_count", ["num_attention_heads", "n_head", "n_heads"])
        u32("attention.head_count_kv", ["num_key_value_heads", "n_kv_heads"])
        if folder.config["is_causal"]?.boolValue == false { m[a + ".attention.causal"] = .bool(false) }
        let rope = folder.config["rope_parameters"] ?? folder.config["rope_scaling"]
        if let rope, rope != .null {
            let type = rope["rope_type"]?.stringValue ?? rope["type"]?.stringValue
            let factor = rope["factor"]?.doubleValue
            switch type {
            case "linear" where factor != nil:
                m[a + ".rope.scaling.type"] = .string("linear"); m[a + ".rope.scaling.factor"] = .float32(Float(factor!))
            case "yarn", "su", "longrope", "dynamic":
                throw ScalpelError.invalid(file: folder.path + "/config.json", tensor: nil, reason: "rope scaling type \(type!) is not supported yet")
            default: break
            }
        }
        let theta = folder.hparam(["global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"])?.doubleValue
            ?? rope?["rope_theta"]?.doubleValue
        if let theta { m[a + ".rope.freq_base"] = .float32(Float(theta)) }
        f32("attention.layer_norm_rms_epsilon", ["rms_norm_eps", "norm_eps"])
        f32("attention.layer_norm_epsilon", ["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])
        if let hd = folder.config["head_dim"]?.intValue, let u = UInt32(exactly: hd) {
            m[a + ".attention.key_length"] = .uint32(u)
            m[a + ".attention.value_length"] = .uint32(u)
        }
    }

    /// gguf-py's size label: "23M", "1.1B" (two significant digits at least).
    static func sizeLabel(_ n: Int) -> String {
        let x = Double(n)
        let (scaled, suffix): (Double, String) = x > 1e12 ? (x * 1e-12, "T") : x > 1e9 ? (x * 1e-9, "B") : x > 1e6 ? (x * 1e-6, "M") : (x * 1e-3, "K")
        let digits = String(Int(scaled.rounded(.toNearestOrEven))).drop(while: { $0 == "0" }).count
        let fix = max(2 - digits, 0)
        return String(format: "%.\(fix)f", scaled) + suffix
    }
}

extension HFToGGUF {
    /// The folder converted to an F32 GGUF (llama.cpp names, hyperparameters and tokenizer) and opened as a
    /// checkpoint, so commands that read GGUF (`quantize HF_FOLDER out.gguf`) take a Hugging Face folder
    /// through the same mapping. The F32 file is written to `$TMPDIR` and unlinked once mapped.
    public static func checkpoint(folder: String) throws -> Checkpoint {
        let tmpDir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let tmp = tmpDir + "/scalpel-hf-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).gguf"
        _ = try Pipeline.write(try plan(folder: folder, outType: .f32, destination: try Destination(path: tmp)))
        defer { unlink(tmp) }
        let inner = try CheckpointReader.openFile(tmp, headerOnly: false)
        return Checkpoint(path: folder, format: .gguf, tensors: inner.tensors, locations: inner.locations, files: inner.files,
                          metadata: inner.metadata, fileBytes: inner.fileBytes, alignment: inner.alignment)
    }
}
