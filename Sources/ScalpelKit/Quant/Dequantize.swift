/// The `dequantize` command's transform: every quantized tensor (ggml blocks, bitsandbytes 4-bit and
/// LLM.int8, compressed-tensors) back to plain floats.
public enum Dequantize {
    public struct Summary: Sendable {
        public var dequantized: [(name: String, from: String, to: String)] = []
        public var kept = 0
    }

    /// Plans the output. Quantized tensors become `dtype`, or the float dtype their layout recorded
    /// (F32 for ggml blocks); with `dtype` set, plain float tensors are cast to it too.
    public static func plan(_ input: Checkpoint, for destination: Destination, dtype: DType?) throws -> (tensors: [OutputTensor], metadata: Metadata, summary: Summary) {
        var summary = Summary()
        var out: [OutputTensor] = []
        for l in try LogicalTensors.resolve(input) {
            let release = { for p in l.parts { input.release(p) } }
            let plainFloat = l.fileIndex.flatMap { input.tensors[$0].type.dtype }.map(\.isComputableFloat) ?? false
            guard l.isQuantized || (plainFloat && dtype != nil && l.originalDType != dtype) else {
                summary.kept += 1
                out += try l.parts.map { OutputTensor(copying: try input.view($0), onWritten: release) }
                continue
            }
            let target = dtype ?? (l.fileIndex == nil ? l.originalDType ?? .f32 : .f32)
            if l.isQuantized { summary.dequantized.append((l.name, l.storage, target.rawValue)) }
            out.append(OutputTensor(name: l.name, type: .plain(target), shape: l.shape, content: .compute { buf in
                let values = try l.decode()
                try values.withUnsafeBufferPointer { try FloatConversion.encode($0, as: target, into: buf, tensor: l.name) }
            }, onWritten: release))
        }
        var metadata = Convert.metadata(input, toGGUF: destination.kind == .gguf, outputs: out, options: .init())
        if destination.kind == .gguf { metadata["general.quantization_version"] = nil }
        return (out, metadata, summary)
    }
}
