/// The size a checkpoint would have after `quantize --type T`, from its header alone.
///
/// The estimate starts where `Quantize.plan` starts: `Quantize.targets` types every tensor (llama.cpp's
/// per-tensor rules for the presets, K types and GGUF inputs; Scalpel's selection otherwise), then each
/// tensor goes through `QuantizeDecision` (the switch `QuantizedOutputs.make` also takes), its output
/// tensors are described with the shapes the layout writes, and the file is sized by the writers' own
/// header code (`GGUFWriter.layout`, `SafetensorsWriter.layout`) with the metadata `quantize` writes.
/// Exact but for the bitsandbytes quant state with double quantization, whose JSON holds a float
/// (`nested_offset`) whose printed length depends on the data: a typical 20-character value is assumed.
public struct SizeEstimate: Sendable {
    /// The `--type` estimated.
    public var type: String
    /// The output layout: gguf, safetensors, bitsandbytes4, bitsandbytes8, compressed-tensors.
    public var layout: String
    /// Bytes of the output file.
    public var estimatedBytes: Int
    /// Bytes of tensor data (GGUF: with padding).
    public var dataBytes: Int
    /// Elements of the model's weights (logical tensors: quantized inputs count their real shape).
    public var parameters: Int
    /// Tensors quantized (or cast) to the type.
    public var tensorsQuantized: Int
    /// Tensors already quantized that the run quantizes again: `quantize` needs `--allow-requantize`
    /// for them (the estimate assumes it is given).
    public var tensorsRequantized: Int = 0
    /// The number of output tensors of each type ("Q4_K": 12, "F32": 25), in order of first appearance.
    public var tensorTypes: [(type: String, count: Int)] = []

    /// Tensor data bits per parameter, as quantize's summary prints it.
    public var bitsPerWeight: Double { parameters > 0 ? Double(dataBytes) * 8 / Double(parameters) : 0 }

    /// Every `--type` name `--estimate all` covers: each tensor type (`q4_0`, `q4_k`, `nf4`...; `q8_0`,
    /// `q2_k`, `q6_k`, `f16`... are also llama-quantize's presets of that name), then the presets that
    /// are not a tensor type (`Q3_K_S` ... `Q5_K_M`).
    public static var typeNames: [String] {
        let types = QuantType.allCases.map(\.rawValue)
        return types + LlamaFileType.all.map(\.name).filter { !types.contains($0.lowercased()) }
    }

    /// The options `quantize --type TEXT` runs with by default (parsed as quantize parses `--type`,
    /// `Quantize.parseType`), or nil for a name quantize does not take. `allowRequantize` is set: the
    /// estimate of an already quantized input is the size of the run with `--allow-requantize`.
    public static func options(forType text: String) -> Quantize.Options? {
        guard let (type, fileType) = Quantize.parseType(text) else { return nil }
        var options = Quantize.Options(type: type)
        options.fileType = fileType
        options.allowRequantize = true
        return options
    }

    /// Estimates for `types` (names as `quantize --type` takes them; each one's label). A Hugging Face
    /// model folder is estimated for the GGUF layouts as `quantize FOLDER out.gguf` runs: on the F32 GGUF
    /// the folder converts to first (llama.cpp's names and metadata), from that file's header alone
    /// (`modelFolderGGUFHeader`).
    /// - Throws: `ScalpelError.invalid` for a name quantize does not take, or as `estimate` does.
    public static func estimates(_ input: Checkpoint, types: [String]) throws -> [SizeEstimate] {
        var ggufView: Checkpoint? = nil
        return try types.map { name in
            guard let options = options(forType: name) else {
                throw ScalpelError.invalid(file: input.path, tensor: nil, reason: "'\(name)' is not a quantize --type")
            }
            var source = input
            if Quantize.family(options) == .gguf && input.format != .gguf && HFFolder.looksLikeModelFolder(input.path) {
                if ggufView == nil { ggufView = try modelFolderGGUFHeader(input.path) }
                source = ggufView!
            }
            return try estimate(source, options: options, label: name)
        }
    }

    /// The header of the F32 GGUF `HFToGGUF.checkpoint(folder:)` writes for a Hugging Face model folder
    /// (what `quantize FOLDER out.gguf` quantizes), laid out by the GGUF writer without converting any
    /// tensor data: a checkpoint with tensor descriptions and metadata only.
    static func modelFolderGGUFHeader(_ folder: String) throws -> Checkpoint {
        let plan = try HFToGGUF.plan(folder: folder, outType: .f32, destination: try Destination(path: folder + "/estimate.gguf"))
        let layout = try GGUFWriter.layout(plan.tensors, metadata: plan.metadata, alignment: plan.ggufAlignment, file: folder)
        let h = try layout.header.withUnsafeBytes { try GGUFReader.parse($0, fileLength: nil, file: folder) }
        return Checkpoint(path: folder, format: .gguf, tensors: h.tensors, locations: [], files: [], metadata: h.metadata,
                          fileBytes: layout.byteCount, alignment: h.alignment)
    }

    /// Estimates `quantize --type options.type` of `input` into a single file: a `.gguf` for GGUF
    /// types, a `.safetensors` for the safetensors layouts, the input's own format for plain types.
    /// `label` names the type in the result (default: the preset's or the type's name).
    /// - Throws: `ScalpelError` when the input's quantized layouts cannot be read, or `quantize` would
    ///   refuse the type (a preset type Scalpel cannot write).
    public static func estimate(_ input: Checkpoint, options: Quantize.Options, label: String? = nil) throws -> SizeEstimate {
        let family = Quantize.family(options)
        let toGGUF = family == .gguf || (family == .plain && input.format == .gguf)
        let targets = try Quantize.targets(input, toGGUF: toGGUF, options: options)
        var strict = options
        strict.allowRequantize = false
        var outputs: [OutputTensor] = []
        var quantized = 0, requantized = 0, parameters = 0
        for (i, logical) in targets.logicals.enumerated() {
            let source = SourceTensor(checkpoint: input, logical: logical, allowNonfinite: true)
            let decision = QuantizeDecision.decide(source, target: targets.types[i], options: options)
            parameters += logical.elementCount
            let described = try layout(source, decision: decision, options: options, toGGUF: toGGUF, keepAsStored: targets.keepAsStored)
            if decision.transforms { quantized += 1 }
            if (try? Quantize.checkRequantize(input, logical, target: targets.types[i], options: strict)) == nil { requantized += 1 }
            outputs += described.map { OutputTensor(name: $0.name, type: $0.type, shape: $0.shape, content: .compute { _ in .none }) }
        }
        let metadata = Quantize.outputMetadata(input, outputs: outputs, options: options, toGGUF: toGGUF, llamaFileType: targets.llamaFileType)
        let layout = toGGUF
            ? try GGUFWriter.layout(outputs, metadata: metadata, alignment: input.alignment ?? GGUFConstants.defaultAlignment, file: input.path)
            : try SafetensorsWriter.layout(outputs, metadata: metadata, file: input.path)
        let data = layout.items.reduce(0) { $0 + $1.tensor.byteCount + $1.padding }
        let layoutName = family == .plain ? (toGGUF ? "gguf" : "safetensors") : family.rawValue
        var counts: [(type: String, count: Int)] = []
        for t in outputs {
            let name = t.type.description
            if let k = counts.firstIndex(where: { $0.type == name }) { counts[k].count += 1 } else { counts.append((name, 1)) }
        }
        return SizeEstimate(type: label ?? options.fileType?.name ?? options.type.rawValue, layout: layoutName,
                            estimatedBytes: layout.byteCount, dataBytes: data, parameters: parameters, tensorsQuantized: quantized,
                            tensorsRequantized: requantized, tensorTypes: counts)
    }

    /// The output tensors (name, type, row-major shape) a decision writes for one input tensor.
    static func layout(_ source: SourceTensor, decision: QuantizeDecision, options: Quantize.Options,
                       toGGUF: Bool, keepAsStored: Bool = false) throws -> [(name: String, type: TensorType, shape: [Int])] {
        let name = source.logical.name, shape = source.logical.shape
        let count = source.logical.elementCount
        let copies = source.logical.parts.compactMap { p in source.checkpoint.info(named: p).map { (name: p, type: $0.type, shape: $0.shape) } }
        func kept(_ toGGUF: Bool, asStored: Bool = false) -> [(name: String, type: TensorType, shape: [Int])] {
            switch QuantizeDecision.kept(source, toGGUF: toGGUF, asStored: asStored) {
            case .copy:
                return copies
            case .widen(let d), .dequantize(let d):
                return [(name, .plain(d), shape)]
            }
        }
        switch decision {
        case .keep: return kept(toGGUF, asStored: keepAsStored)
        case .keepInSafetensors: return kept(false)
        case .alreadyTarget: return copies
        case .cast(let d, _): return [(name, .plain(d), shape)]
        case .ggml(let g, _): return [(name, .block(g), shape)]
        case .fourBit(let kind, _):
            let blocks = (count + options.blockSize - 1) / options.blockSize
            // The quant state JSON, as the writer builds it; with double quantization its nested_offset is
            // a typical value (its printed length is the only data-dependent byte count).
            let nested = options.doubleQuant ? NestedAbsmax(codes: [], absmax: [], offset: 0.0123456789) : nil
            let q = FourBitQuantized(kind: kind, blockSize: options.blockSize, count: count, codes: [], absmax: [], nested: nested)
            let state = try FourBitQuantState.json(for: q, dtype: source.floatDType, shape: shape)
            var out: [(name: String, type: TensorType, shape: [Int])] = [
                (name, .plain(.u8), [(count + 1) / 2, 1]),
                (name + ".quant_map", .plain(.f32), [kind.quantMap.count]),
                (name + "." + FourBitQuantState.tensorSuffix(kind), .plain(.u8), [state.count]),
            ]
            if options.doubleQuant {
                out += [(name + ".absmax", .plain(.u8), [blocks]),
                        (name + ".nested_absmax", .plain(.f32), [(blocks + NestedAbsmax.blockSize - 1) / NestedAbsmax.blockSize]),
                        (name + ".nested_quant_map", .plain(.f32), [NestedAbsmax.quantMap.count])]
            } else {
                out.append((name + ".absmax", .plain(.f32), [blocks]))
            }
            return out
        case .int8Bitsandbytes:
            let prefix = String(name.dropLast(".weight".count))
            return [(name, .plain(.i8), shape), (prefix + ".SCB", .plain(.f32), [shape.first ?? 1]),
                    (prefix + ".weight_format", .plain(.u8), [])]
        case .compressed(let bits, _):
            let rows = shape.first ?? 1, columns = shape.last ?? 1
            let prefix = String(name.dropLast("weight".count))
            let q = CompressedTensorsQuantized(rows: rows, columns: columns, bits: bits, groupSize: bits == 8 ? columns : options.groupSize,
                                               packed: [], scales: [], zeroPoints: nil, scaleDType: source.floatDType)
            var out: [(name: String, type: TensorType, shape: [Int])] = [
                (prefix + "weight_packed", .plain(.i32), [rows, q.packedColumns]),
                (prefix + "weight_scale", .plain(source.floatDType), [rows, q.groups]),
                (prefix + "weight_shape", .plain(.i64), [2]),
            ]
            if options.asymmetric { out.append((prefix + "weight_zero_point", .plain(.i32), [(rows * bits + 31) / 32, q.groups])) }
            return out
        }
    }
}

extension SizeEstimate {
    /// `{"type", "layout", "estimated_bytes", "data_bytes", "parameters", "bits_per_weight", "tensors_quantized",
    /// "tensors_requantized", "tensor_types"}` (`tensor_types`: output type name -> number of tensors).
    public var json: JSONValue {
        .object([("type", .string(type)), ("layout", .string(layout)), ("estimated_bytes", .int(estimatedBytes)),
                 ("data_bytes", .int(dataBytes)), ("parameters", .int(parameters)), ("bits_per_weight", .double(bitsPerWeight)),
                 ("tensors_quantized", .int(tensorsQuantized)), ("tensors_requantized", .int(tensorsRequantized)),
                 ("tensor_types", .object(tensorTypes.map { ($0.type, .int($0.count)) }))])
    }

    /// A table of estimates against the current file size; for a single estimate, also the output
    /// tensors by type.
    public static func text(_ estimates: [SizeEstimate], currentBytes: Int) -> String {
        var table = TextTable(header: ["type", "layout", "tensors", "file bytes", "size", "share", "bits/weight"], rightAligned: [2, 3, 4, 5, 6])
        for e in estimates {
            table.add([e.type, e.layout, String(e.tensorsQuantized), Format.grouped(e.estimatedBytes), Format.bytes(e.estimatedBytes),
                       Format.fixed(currentBytes > 0 ? Double(e.estimatedBytes) / Double(currentBytes) * 100 : 0, 1) + "%",
                       Format.fixed(e.bitsPerWeight, 2)])
        }
        var lines = ["estimated size after quantize (default selection; from the header)", table.render()]
        if estimates.count == 1, let e = estimates.first {
            lines.append("output tensors: " + e.tensorTypes.map { "\($0.count) \($0.type)" }.joined(separator: ", "))
        }
        let requantizing = estimates.filter { $0.tensorsRequantized > 0 }
        if !requantizing.isEmpty {
            lines.append("note: quantizes already quantized tensors again (\(requantizing.map { "\($0.type): \($0.tensorsRequantized)" }.joined(separator: ", "))); "
                         + "quantize needs --allow-requantize for that")
        }
        return lines.joined(separator: "\n")
    }
}

extension JSONValue {
    /// An inspect report with estimates: one adds `estimated_bytes`, `estimated_bits_per_weight` and
    /// `estimate`; several (`--estimate all`) add `estimates`.
    public func adding(estimates: [SizeEstimate], single: Bool) -> JSONValue {
        guard case .object(var pairs) = self, !estimates.isEmpty else { return self }
        if single, let e = estimates.first {
            pairs += [("estimated_bytes", .int(e.estimatedBytes)), ("estimated_bits_per_weight", .double(e.bitsPerWeight)),
                      ("estimate", e.json)]
        } else {
            pairs.append(("estimates", .array(estimates.map(\.json))))
        }
        return .object(pairs)
    }
}
