import Foundation

/// An adapter and the weight its update is multiplied by when merged or stacked (negative removes a
/// merged adapter).
public struct WeightedAdapter: Sendable {
    public var adapter: LoRAAdapter
    public var weight: Double

    public init(_ adapter: LoRAAdapter, weight: Double = 1) {
        self.adapter = adapter
        self.weight = weight
    }
}

/// Merging LoRA adapters into a base checkpoint: the `merge` command's transform.
///
/// For each module an adapter targets, in adapter order: `W' = W + weight * scaling * B @ A` (transposed
/// for `fan_in_fan_out` layers and embeddings), `bias' = bias + weight * scaling * lora_B.bias`, DoRA's
/// `W' = m / ||W + dW||_row * (W + dW)` (weight 1 only), and full replacement tensors (`modules_to_save`)
/// as `W' = W + weight * (T - W)`, i.e. T at weight 1. The math is f32; each changed tensor is written in
/// the base's dtype (a ggml block type re-quantized, see `plan`), or `Options.dtype`. Untouched tensors
/// are copied (or cast with `dtype`).
public enum Merge {
    public struct Options: Sendable {
        /// Cast every float tensor of the output to this dtype; nil keeps the base's dtypes.
        public var dtype: DType?
        /// Skip adapter tensors that match no base tensor, or whose shape disagrees, instead of failing.
        public var ignoreMissing: Bool

        public init(dtype: DType? = nil, ignoreMissing: Bool = false) {
            self.dtype = dtype
            self.ignoreMissing = ignoreMissing
        }
    }

    /// What a merge does.
    public struct Summary: Sendable {
        /// Tensors written.
        public var tensors = 0
        /// Base tensors whose values change.
        public var changed = 0
        /// LoRA products added (one per module and adapter), of which DoRA modules.
        public var products = 0
        public var dora = 0
        /// `lora_B` biases added.
        public var biases = 0
        /// Base tensors replaced by adapter tensors.
        public var replaced = 0
        /// IA3 scalings applied (weights and biases).
        public var scaled = 0
        /// Changed tensors of a quantized base written back to their ggml block type.
        public var requantized = 0
        /// The merged tensors re-quantized to their ggml type, with the error that added (after writing).
        public var requantizations: [Requantization] = []
        /// Adapter tensors skipped under `ignoreMissing`, as "ADAPTER: TENSOR: reason".
        public var ignored: [String] = []
        /// How adapter names were lined up with the base's, when not unchanged.
        public var notes: [String] = []
        public var bytesRead = 0
        public var bytesWritten = 0
    }

    /// A merged tensor of a quantized base written back to its ggml type.
    public struct Requantization: Sendable {
        public var tensor: String
        public var type: String
        /// The re-quantized values against the merged f32 ones.
        public var error: QuantError
    }

    /// Plans the output of merging `adapters` (in order) into `base` for `destination`.
    ///
    /// A targeted tensor of a GGUF base in a ggml block type is dequantized, merged and re-quantized to
    /// the same type with ggml's reference quantizer when the output is GGUF and `dtype` is not set
    /// (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1); otherwise it is written as `dtype` (F32 by default).
    ///
    /// - Throws: `ScalpelError.invalid` naming the adapter tensors that match no base tensor or whose
    ///   shapes disagree (unless `ignoreMissing`), a DoRA adapter with a weight other than 1, a targeted
    ///   tensor that is not a float, a ggml type Scalpel cannot re-quantize, a bitsandbytes or
    ///   compressed-tensors weight, and any error of `Convert.plan`. Errors met while the data is computed
    ///   (a negative weight on a replacement) are thrown by the writer.
    ///
    /// A folder output gets the base folder's companion files (config.json, tokenizer...). The report
    /// gives what changed and, for a quantized base, the error re-quantization added.
    public static func plan(base: Checkpoint, adapters: [WeightedAdapter], for destination: Destination, options: Options = Options()) throws -> Plan {
        var summary = Summary()
        var edits: [String: [MergeEdit]] = [:]
        let layouts = try quantizedLayouts(base)
        for input in adapters {
            for (target, edit) in try resolve(input, base: base, layouts: layouts, options: options, summary: &summary) {
                edits[target, default: []].append(edit)
            }
        }
        var plan = try Convert.plan(base, for: destination, options: .init(dtype: options.dtype))
        var requantized: [(tensor: String, type: String)] = []
        for (i, info) in base.tensors.enumerated() {
            guard let list = edits[info.name] else { continue }
            let outType = try outputType(info, base: base, dtype: options.dtype, toGGUF: destination.kind == .gguf)
            if case .block(let g) = outType {
                summary.requantized += 1
                requantized.append((info.name, g.name))
            }
            plan.tensors[i] = try mergedTensor(base, index: i, edits: list, outType: outType)
            summary.changed += 1
        }
        guard summary.changed > 0 else {
            throw ScalpelError.invalid(file: adapters.first?.adapter.path, tensor: nil, reason: "no adapter tensor matches a tensor of \(base.path): nothing would be merged" + (summary.ignored.isEmpty ? "" : " (--ignore-missing skipped \(summary.ignored.count))"))
        }
        summary.tensors = plan.tensors.count
        summary.bytesRead = base.dataBytes + adapters.reduce(0) { $0 + $1.adapter.checkpoint.dataBytes }
        summary.bytesWritten = plan.tensors.reduce(0) { $0 + $1.byteCount }
        plan.inputs += adapters.flatMap { $0.adapter.checkpoint.sourcePaths }
        plan.warnings += summary.ignored.map { "skipped \($0)" }
        let done = summary, count = adapters.count
        let requantizedTensors = requantized
        plan.report = { result in report(done, adapters: count, requantized: requantizedTensors, outcomes: result.outcomes) }
        return plan
    }

    /// The merge's summary and, for a quantized base, the error re-quantization added.
    static func report(_ summary: Summary, adapters: Int, requantized: [(tensor: String, type: String)], outcomes: [String: TensorOutcome]) -> Report {
        var s = summary
        s.requantizations = requantized.compactMap { r in outcomes[r.tensor]?.error.map { Requantization(tensor: r.tensor, type: r.type, error: $0) } }
        var parts = s.products > 0 || s.scaled == 0 ? [Format.counted(s.products, "LoRA product")] : []
        if s.dora > 0 { parts.append("\(s.dora) of them DoRA") }
        if s.biases > 0 { parts.append(Format.counted(s.biases, "bias").replacingOccurrences(of: "biass", with: "biases")) }
        if s.replaced > 0 { parts.append("\(s.replaced) replaced") }
        if s.scaled > 0 { parts.append(Format.counted(s.scaled, "IA3 scaling")) }
        var lines = s.notes.map { "note: " + $0 }
        lines.append("merged \(Format.counted(adapters, "adapter")) into \(Format.counted(s.changed, "tensor")) (\(parts.joined(separator: ", "))); \(s.tensors - s.changed) unchanged")
        var fields: [(String, JSONValue)] = [
            ("adapters", .int(adapters)), ("tensors", .int(s.tensors)), ("changed", .int(s.changed)), ("products", .int(s.products)),
            ("dora", .int(s.dora)), ("biases", .int(s.biases)), ("replaced", .int(s.replaced)),
            ("ignored", .array(s.ignored.map { .string($0) })), ("notes", .array(s.notes.map { .string($0) })),
        ]
        let entries = s.requantizations
        if let worst = entries.max(by: { $0.error.relativeRMSE < $1.error.relativeRMSE }) {
            let total = QuantError.combined(entries.map(\.error))
            let types = Set(entries.map(\.type)).sorted().joined(separator: ", ")
            lines.append("re-quantized \(Format.counted(entries.count, "merged tensor")) to \(types) (the base's types): added relative RMS error \(Format.stat(total.relativeRMSE)) overall (SQNR \(Format.fixed(total.sqnrDB, 1)) dB), largest \(Format.stat(worst.error.relativeRMSE)) in \(worst.tensor)")
            fields.append(("requantized", .array(entries.map {
                .object([("tensor", .string($0.tensor)), ("type", .string($0.type)), ("relative_rmse", .double($0.error.relativeRMSE)), ("sqnr_db", .double($0.error.sqnrDB))])
            })))
        }
        return Report(text: lines.joined(separator: "\n"), fields: fields, details: s)
    }

    /// The quantized safetensors layouts of the base (bitsandbytes, compressed-tensors): logical weight
    /// name -> storage ("NF4", "INT8"...).
    private static func quantizedLayouts(_ base: Checkpoint) throws -> [String: String] {
        guard base.format != .gguf, base.tensors.contains(where: { !($0.type.dtype?.isComputableFloat ?? false) }) else { return [:] }
        var out: [String: String] = [:]
        for l in try LogicalTensors.resolve(base) where l.isQuantized && l.fileIndex == nil { out[l.name] = l.storage }
        return out
    }

    /// The type a changed tensor is written as: `dtype`; else a ggml block type again when the output is
    /// GGUF (re-quantized), F32 for a block type in a safetensors output; else the base's dtype.
    private static func outputType(_ info: TensorInfo, base: Checkpoint, dtype: DType?, toGGUF: Bool) throws -> TensorType {
        if let dtype { return .plain(dtype) }
        guard case .block(let g) = info.type else { return info.type }
        guard toGGUF else { return .plain(.f32) }
        guard GGMLQuantize.supportedTypes.contains(g) else {
            throw ScalpelError.invalid(file: base.path, tensor: info.name, reason: "is \(g.name)-quantized: merging into it needs re-quantization to \(g.name), which Scalpel cannot do (it re-quantizes \(GGMLQuantize.supportedTypes.map(\.name).joined(separator: ", "))); pass --dtype f16 to write the merged tensors unquantized")
        }
        return .block(g)
    }

    /// The edits of one adapter, keyed by base tensor name, in the order they apply (replacements first).
    private static func resolve(_ input: WeightedAdapter, base: Checkpoint, layouts: [String: String], options: Options, summary: inout Summary) throws -> [(String, MergeEdit)] {
        let adapter = input.adapter, ckpt = adapter.checkpoint, weight = input.weight
        let mapping = adapter.config == nil
            ? MergeNameMapping(rewrite: .unchanged)
            : MergeNameMapping.choose(for: adapter.modules.map(\.weightName) + adapter.scaledModules.map(\.weightName)
                                        + adapter.replacements.map(\.target), in: base)
        if let d = mapping.description { summary.notes.append("\(adapter.path): \(d)") }

        var problems: [(tensor: String, reason: String)] = []
        func target(_ adapterTensor: String, _ name: String, shape: [Int]) throws -> TensorInfo? {
            if let baseName = mapping.baseName(name), let storage = layouts[baseName] {
                throw ScalpelError.invalid(file: base.path, tensor: baseName, reason: "is stored as \(storage) (bitsandbytes or compressed-tensors): Scalpel merges into these layouts only through plain weights (scalpel dequantize, merge, then quantize again)")
            }
            guard let baseName = mapping.baseName(name), let info = base.info(named: baseName) else {
                problems.append((adapterTensor, "targets \(name), which is not in the base"))
                return nil
            }
            guard info.shape == shape else {
                problems.append((adapterTensor, "targets \(info.name) of shape \(info.shape), but the update has shape \(shape)"))
                return nil
            }
            return info
        }

        var out: [(TensorInfo, MergeEdit)] = []
        for r in adapter.replacements {
            if let t = try target(r.source, r.target, shape: ckpt.info(named: r.source)!.shape) {
                out.append((t, .replace(source: r.source, adapter: ckpt, weight: weight)))
            }
        }
        for m in adapter.modules {
            if m.magnitudeName != nil && weight != 1 {
                throw ScalpelError.invalid(file: adapter.path, tensor: m.magnitudeName, reason: "is a DoRA magnitude: a DoRA adapter merges only with weight 1 (its renormalization cannot be scaled or undone)")
            }
            guard m.productShape.allSatisfy({ $0 < Int(Int32.max) }) else {
                throw ScalpelError.invalid(file: adapter.path, tensor: m.aName, reason: "dimensions \(m.productShape) exceed 32-bit BLAS sizes")
            }
            if let t = try target(m.aName, m.weightName, shape: m.baseShape) {
                out.append((t, .product(m, adapter: ckpt, weight: weight)))
            }
            if let bias = m.biasName, let t = try target(bias, m.biasTargetName, shape: [m.productShape[0]]) {
                out.append((t, .bias(m, adapter: ckpt, weight: weight)))
            }
        }
        for m in adapter.scaledModules {
            for edit in AdapterScaleEdit.edits(m, adapter: ckpt, weight: weight, base: base, baseName: mapping.baseName, problems: &problems) {
                out.append(edit)
            }
        }
        if !problems.isEmpty {
            guard options.ignoreMissing else {
                let more = problems.count > 1
                    ? "; \(problems.count - 1) more: " + problems.dropFirst().prefix(8).map(\.tensor).joined(separator: ", ") + (problems.count > 9 ? ", ..." : "")
                    : ""
                var hint = " (--ignore-missing skips them)"
                if base.format == .gguf && adapter.config != nil {
                    hint = " (a PEFT adapter names tensors as Hugging Face does; for a GGUF base convert it with llama.cpp's convert_lora_to_gguf.py)"
                }
                throw ScalpelError.invalid(file: adapter.path, tensor: problems[0].tensor, reason: problems[0].reason + more + hint)
            }
            summary.ignored += problems.map { "\(adapter.path): \($0.tensor): \($0.reason)" }
        }
        for (info, edit) in out {
            try checkComputable(info, base: base)
            switch edit {
            case .product(let m, _, _):
                summary.products += 1
                if m.magnitudeName != nil { summary.dora += 1 }
            case .bias: summary.biases += 1
            case .replace: summary.replaced += 1
            case .scale: summary.scaled += 1
            }
        }
        return out.map { ($0.0.name, $0.1) }
    }

    /// A targeted base tensor must hold floats or ggml blocks that Scalpel can decode.
    private static func checkComputable(_ info: TensorInfo, base: Checkpoint) throws {
        switch info.type {
        case .plain(let d) where d.isComputableFloat:
            return
        case .block(let g) where GGMLDequantize.supportedTypes.contains(g):
            return
        case .block(let g):
            throw ScalpelError.invalid(file: base.path, tensor: info.name, reason: "is \(g.name)-quantized, which Scalpel cannot dequantize")
        default:
            throw ScalpelError.invalid(file: base.path, tensor: info.name, reason: "is \(info.type), not a float tensor an adapter can change")
        }
    }

    /// Elements per row chunk of a changed tensor: small enough that a chunk's f32 values stay in cache
    /// between decoding, editing and encoding.
    static let chunkElements = 1 << 16

    /// The output tensor of a changed base tensor: decoded to f32, edited, encoded, in fixed chunks of
    /// rows processed in parallel (each chunk's sgemm single-threaded), so results do not depend on the
    /// thread count. A tensor with an edit that needs all rows at once is one chunk.
    private static func mergedTensor(_ base: Checkpoint, index i: Int, edits: [MergeEdit], outType: TensorType) throws -> OutputTensor {
        let info = base.tensors[i]
        let view = try base.view(at: i)
        let rows = info.shape.first ?? 1
        let cols = info.shape.count > 1 ? info.shape.dropFirst().reduce(1, *) : 1
        let chunkRows = edits.allSatisfy(\.isRowLocal) ? max(1, chunkElements / max(cols, 1)) : max(rows, 1)
        let inWidth = info.type.byteCount(elements: cols)!, outWidth = outType.byteCount(elements: cols)!
        return OutputTensor(name: info.name, type: outType, shape: info.shape, content: .compute { out in
            let prepared = try edits.map { try $0.prepared() }
            let outBox = UncheckedBox(out)
            let chunks = (rows + chunkRows - 1) / chunkRows
            var errors = [QuantError?](repeating: nil, count: chunks)
            try errors.withUnsafeMutableBufferPointer { errorsBuffer in
                let errorSink = UncheckedBox(errorsBuffer)
                try parallelChunksThrowing(count: rows, chunk: chunkRows) { r in
                    var w = [Float](repeating: 0, count: r.count * cols)
                    try w.withUnsafeMutableBufferPointer { w in
                        let src = UnsafeRawBufferPointer(rebasing: view.bytes[(r.lowerBound * inWidth)..<(r.upperBound * inWidth)])
                        try FloatConversion.decode(info.type, src, into: w, tensor: info.name)
                        for p in prepared { try p.apply(rows: r, cols: cols, to: w, tensor: info.name) }
                        let dst = UnsafeMutableRawBufferPointer(rebasing: outBox.value[(r.lowerBound * outWidth)..<(r.upperBound * outWidth)])
                        errorSink.value[r.lowerBound / chunkRows] = try encode(UnsafeBufferPointer(w), as: outType, into: dst, tensor: info.name)
                    }
                }
            }
            guard case .block = outType else { return .none }
            return TensorOutcome(error: QuantError.combined(errors.compactMap { $0 }))
        }, action: "merge \(Format.counted(edits.count, "edit"))" + (outType == info.type ? "" : " as \(outType)"), onWritten: { base.release(info.name) })
    }

    /// Encodes merged f32 values as `type`; for a ggml block type (ggml's reference quantizer), returns
    /// the error of the re-quantized values.
    private static func encode(_ w: UnsafeBufferPointer<Float>, as type: TensorType, into dst: UnsafeMutableRawBufferPointer, tensor: String) throws -> QuantError? {
        switch type {
        case .plain(let d):
            try FloatConversion.encode(w, as: d, into: dst, tensor: tensor)
            return nil
        case .block(let g):
            do { try GGMLQuantize.quantize(g, w, into: dst) } catch let ScalpelError.invalid(_, _, reason) {
                throw ScalpelError.invalid(file: nil, tensor: tensor, reason: "re-quantizing the merged values: " + reason)
            }
            var back = [Float](repeating: 0, count: w.count)
            try back.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(g, UnsafeRawBufferPointer(dst), into: $0) }
            return back.withUnsafeBufferPointer { QuantError.measure(original: w, reconstructed: $0) }
        }
    }
}
