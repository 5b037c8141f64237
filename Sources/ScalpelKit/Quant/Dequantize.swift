/// The `dequantize` command's transform: every quantized tensor (ggml blocks, bitsandbytes 4-bit and
/// LLM.int8, compressed-tensors) back to plain floats.
public enum Dequantize {
    /// What a dequantization does (the report's details).
    public struct Summary: Sendable {
        /// Quantized tensors turned into floats.
        public var dequantized: [(name: String, from: String, to: String)] = []
        /// Float tensors cast to `--dtype`.
        public var cast = 0
        /// Tensors copied as they are.
        public var kept = 0
    }

    /// Plans the output. Quantized tensors become `dtype`, or the float dtype their layout recorded
    /// (F32 for ggml blocks); with `dtype` set, plain float tensors are cast to it too. A folder output
    /// gets the input folder's companion files, with `quantization_config` removed from config.json.
    public static func plan(_ input: Checkpoint, for destination: Destination, dtype: DType?) throws -> Plan {
        var summary = Summary()
        var out: [OutputTensor] = []
        for l in try LogicalTensors.resolve(input) {
            let release: @Sendable () -> Void = { for p in l.parts { input.release(p) } }
            let plainFloat = l.fileIndex.flatMap { input.tensors[$0].type.dtype }.map(\.isComputableFloat) ?? false
            guard l.isQuantized || (plainFloat && dtype != nil && l.originalDType != dtype) else {
                summary.kept += l.parts.count
                out += try l.parts.map { OutputTensor(copying: try input.view($0), onWritten: release) }
                continue
            }
            let target = dtype ?? (l.fileIndex == nil ? l.originalDType ?? .f32 : .f32)
            let action: String
            if l.isQuantized {
                action = "dequantize \(l.storage) to \(target.rawValue)"
                summary.dequantized.append((l.name, l.storage, target.rawValue))
            } else {
                action = "cast \(l.storage) to \(target.rawValue)"
                summary.cast += 1
            }
            out.append(OutputTensor(name: l.name, type: .plain(target), shape: l.shape, content: .compute { buf in
                let values = try l.decode()
                try values.withUnsafeBufferPointer { try FloatConversion.encode($0, as: target, into: buf, tensor: l.name) }
                return .none
            }, action: action, onWritten: release))
        }
        var metadata = Convert.metadata(input, toGGUF: destination.kind == .gguf, outputs: out, options: .init())
        if destination.kind == .gguf { metadata["general.quantization_version"] = nil }
        let companions = destination.isFolder
            ? try ModelFolder(checkpointPath: input.path).extras(quantizationConfig: nil, dropQuantization: true) : []
        var plan = Plan(destination: destination, tensors: out, metadata: metadata, ggufAlignment: input.alignment ?? 32,
                        companions: companions, inputs: input.sourcePaths)
        var byKind: [String: Int] = [:]
        for d in summary.dequantized { byKind["\(d.from) -> \(d.to)", default: 0] += 1 }
        let kinds = byKind.sorted { $0.key < $1.key }, done = summary
        plan.report = { _ in
            let total = done.dequantized.count, cast = done.cast, kept = done.kept
            var text = "dequantized \(Format.counted(total, "tensor"))"
            if !kinds.isEmpty { text += " (" + kinds.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")" }
            if cast > 0 { text += ", cast \(cast) to \(dtype!.rawValue)" }
            text += ", kept \(kept)"
            return Report(text: text, fields: [
                ("dequantized", .int(total)), ("cast", .int(cast)), ("kept", .int(kept)),
                ("by_kind", .object(kinds.map { ($0.key, .int($0.value)) })),
            ], details: done)
        }
        return plan
    }
}
