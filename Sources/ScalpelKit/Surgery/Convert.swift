import Foundation

/// Format conversion and dtype casts: the `convert` command's transform.
public enum Convert {
    /// Options of a conversion.
    public struct Options: Sendable {
        /// Cast every float tensor (F32, F16, BF16, F64) to this dtype; nil keeps dtypes.
        public var dtype: DType?
        /// `general.architecture` for GGUF outputs (default: the input's, else "unknown").
        public var architecture: String?
        /// `general.name` for GGUF outputs (default: the input's, else the input file name).
        public var name: String?

        public init(dtype: DType? = nil, architecture: String? = nil, name: String? = nil) {
            self.dtype = dtype
            self.architecture = architecture
            self.name = name
        }
    }

    /// What a conversion did.
    public struct Summary: Sendable {
        public var tensors = 0
        /// Tensors cast between float dtypes.
        public var cast = 0
        /// Block-quantized tensors dequantized because the output cannot hold them (or a dtype was asked).
        public var dequantized = 0
        public var bytesRead = 0
        public var bytesWritten = 0
    }

    /// The GGUF `general.file_type` of a float dtype.
    static func fileType(_ d: DType) -> UInt32? {
        switch d {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 32
        default: return nil
        }
    }

    /// Plans converting `input` to `destination`: float tensors cast to `options.dtype`, block-quantized
    /// tensors dequantized when the output cannot hold them (or a dtype is asked), everything else
    /// copied. A folder output gets the input folder's companion files (config.json, tokenizer...).
    public static func plan(_ input: Checkpoint, for destination: Destination, options: Options) throws -> Plan {
        var summary = Summary()
        var out: [OutputTensor] = []
        let toGGUF = destination.kind == .gguf
        for (i, info) in input.tensors.enumerated() {
            let view = try input.view(at: i)
            let release: @Sendable () -> Void = { input.release(info.name) }
            summary.tensors += 1
            summary.bytesRead += info.byteCount
            var target: DType? = nil
            var action = ""
            switch info.type {
            case .plain(let d) where d.isComputableFloat:
                if let want = options.dtype, want != d { target = want; summary.cast += 1; action = "cast \(d.rawValue) to \(want.rawValue)" }
            case .block(let g):
                if !toGGUF || options.dtype != nil {
                    target = options.dtype ?? .f32
                    summary.dequantized += 1
                    action = "dequantize \(g.name) to \(target!.rawValue)"
                }
            default:
                break
            }
            if let target {
                let count = info.elementCount
                out.append(OutputTensor(name: info.name, type: .plain(target), shape: info.shape, content: .compute { buf in
                    try FloatConversion.cast(view.bytes, from: info.type, to: target, count: count, into: buf, tensor: info.name)
                    return .none
                }, action: action, onWritten: release))
            } else {
                out.append(OutputTensor(copying: view, onWritten: release))
            }
            summary.bytesWritten += out.last!.byteCount
        }
        var plan = Plan(destination: destination, tensors: out, metadata: metadata(input, toGGUF: toGGUF, outputs: out, options: options),
                        ggufAlignment: input.alignment ?? 32,
                        companions: destination.isFolder ? try ModelFolder(checkpointPath: input.path).extras(quantizationConfig: nil) : [],
                        inputs: input.sourcePaths)
        let done = summary
        plan.report = { result in
            var parts = ["\(Format.counted(done.tensors, "tensor")), \(Format.bytes(done.bytesWritten)) of tensor data"]
            if done.cast > 0 { parts.append("\(done.cast) cast to \(options.dtype!.rawValue)") }
            if done.dequantized > 0 { parts.append("\(done.dequantized) dequantized") }
            parts.append(Format.fixed(Double(done.bytesRead) / max(result.seconds, 1e-9) / 1e9, 2) + " GB/s read")
            return Report(text: "converted " + parts.joined(separator: ", "), fields: [
                ("tensors", .int(done.tensors)), ("cast", .int(done.cast)), ("dequantized", .int(done.dequantized)),
                ("bytes_read", .int(done.bytesRead)),
            ])
        }
        return plan
    }

    /// Output metadata: the input's, plus for GGUF outputs `general.architecture`, `general.name` and
    /// `general.file_type` (from the dominant float dtype). `general.alignment` is left to the writer.
    static func metadata(_ input: Checkpoint, toGGUF: Bool, outputs: [OutputTensor], options: Options) -> Metadata {
        var m = input.metadata
        guard toGGUF else { return m }
        m["general.alignment"] = nil
        let arch = options.architecture ?? m["general.architecture"]?.stringValue ?? "unknown"
        let stem = PathName.stem(input.path)
        let name = options.name ?? m["general.name"]?.stringValue ?? stem.replacingOccurrences(of: ".safetensors", with: "")
        m["general.architecture"] = nil
        m["general.name"] = nil
        var head = Metadata([("general.architecture", .string(arch)), ("general.name", .string(name))])
        for (k, v) in m.entries { head[k] = v }
        var bytesByType: [DType: Int] = [:]
        for t in outputs where t.shape.count >= 2 { if let d = t.type.dtype { bytesByType[d, default: 0] += t.byteCount } }
        if let dominant = bytesByType.max(by: { $0.value < $1.value })?.key, let ft = fileType(dominant),
           !outputs.contains(where: { if case .block = $0.type { return true }; return false }) {
            head["general.file_type"] = .uint32(ft)
        }
        return head
    }
}
