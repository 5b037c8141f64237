/// Turns one input tensor into the output tensors of its target type and layout, recording what
/// happened in the report.
enum QuantizedOutputs {
    static func make(_ source: SourceTensor, target: QuantType?, options: Quantize.Options, toGGUF: Bool,
                     report: inout QuantizeReport, cache: SideCache, importance: [Float]? = nil, keepAsStored: Bool = false) throws -> [OutputTensor] {
        let info = source.info
        let base = TensorQuantResult(name: info.name, shape: info.shape, from: source.logical.storage, to: source.logical.storage,
                                     parameters: info.elementCount, bytesBefore: info.byteCount, bytesAfter: info.byteCount)
        switch QuantizeDecision.decide(source, target: target, options: options) {
        case .keep(let note):
            var r = base
            r.note = note
            return try kept(source, toGGUF: toGGUF, report: &report, result: r, asStored: keepAsStored)
        case .keepInSafetensors(let note):
            var r = base
            r.note = note
            return try kept(source, toGGUF: false, report: &report, result: r)
        case .alreadyTarget(let g):
            var r = base
            r.note = "already \(g.name): copied unchanged"
            report.record(r)
            return try source.copies()
        case .cast(let dtype, let note):
            return [cast(source, to: dtype, report: &report, result: base, note: note)]
        case .ggml(let g, let note):
            return [ggml(source, type: g, report: &report, result: base, note: note, importance: importance)]
        case .fourBit(let kind, let note):
            return try BitsandbytesOutputs.fourBit(source, kind: kind, options: options, report: &report,
                                                   result: base, note: note, cache: cache)
        case .int8Bitsandbytes(let note):
            return try BitsandbytesOutputs.int8(source, report: &report, result: base, note: note)
        case .compressed(let bits, let note):
            let strategy: CompressedTensors.Strategy = bits == 8 ? .channel : .group(options.groupSize)
            return try CompressedTensorsOutputs.make(source, bits: bits, strategy: strategy, symmetric: !options.asymmetric,
                                                     report: &report, result: base, note: note)
        }
    }

    /// An unquantized tensor: copied, except that in GGUF outputs 1-D float tensors (norms, biases) are
    /// written as F32, as llama.cpp does, and a layout the output cannot hold (ggml blocks in
    /// safetensors, bitsandbytes or compressed-tensors weights in GGUF) is dequantized to its original
    /// float dtype (F32 for ggml blocks).
    /// With `asStored` (llama.cpp's rules on a GGUF input) a GGUF tensor is copied in its own type.
    static func kept(_ source: SourceTensor, toGGUF: Bool, report: inout QuantizeReport, result: TensorQuantResult,
                     asStored: Bool = false) throws -> [OutputTensor] {
        switch QuantizeDecision.kept(source, toGGUF: toGGUF, asStored: asStored) {
        case .widen(let dtype):
            return [cast(source, to: dtype, report: &report, result: result, note: result.note, measured: false)]
        case .dequantize(let dtype):
            var r = result
            r.note = "\(source.logical.storage) cannot be stored in this output: dequantized to \(dtype.rawValue)"
            return [cast(source, to: dtype, report: &report, result: r, note: r.note, measured: false)]
        case .copy:
            report.record(result)
            return try source.copies()
        }
    }

    /// A float cast (f32/f16/bf16 targets and fallbacks), measured unless `measured` is false.
    static func cast(_ source: SourceTensor, to dtype: DType, report: inout QuantizeReport, result: TensorQuantResult,
                     note: String?, measured: Bool = true) -> OutputTensor {
        var r = result
        r.to = dtype.rawValue
        r.bytesAfter = TensorType.plain(dtype).byteCount(elements: result.parameters) ?? 0
        if let note { r.note = note }
        report.record(r)
        let name = r.name, shape = r.shape
        return OutputTensor(name: name, type: .plain(dtype), shape: shape, content: .compute { buf in
            // Kept tensors (not measured) are widened as they are: the NaN policy is for quantized ones.
            let values = measured ? try source.values() : try source.logical.decode()
            try values.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype, into: buf, tensor: name) }
            guard measured && dtype != .f32 else { return .none }
            var back = [Float](repeating: 0, count: values.count)
            try back.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(dtype), UnsafeRawBufferPointer(buf), into: $0, tensor: name) }
            return TensorOutcome(error: error(values, back))
        }, action: measured ? "cast to \(dtype.rawValue)" : "widen to \(dtype.rawValue)", onWritten: source.release)
    }

    /// A ggml block type, bit-identical to ggml's reference quantizer.
    /// With `importance` (an imatrix entry: one row of `columns` values per expert), ggml's weighted
    /// quantizer, as `ggml_quantize_chunk` with `quant_weights`.
    static func ggml(_ source: SourceTensor, type: GGMLType, report: inout QuantizeReport, result: TensorQuantResult, note: String?,
                     importance: [Float]? = nil) -> OutputTensor {
        var r = result
        r.to = type.name
        r.bytesAfter = TensorType.block(type).byteCount(elements: r.parameters) ?? 0
        r.note = note
        report.record(r)
        let name = r.name, shape = r.shape
        return OutputTensor(name: name, type: .block(type), shape: shape, content: .compute { buf in
            // The quantizer refuses NaN and Inf itself (ggml's result is undefined for them).
            let error = try source.withValues(checkFinite: false) { values in
                do {
                    if let importance {
                        return try WeightedQuantize.quantizeMeasuring(type, values, columns: shape.last ?? 1, importance: importance, into: buf)
                    }
                    return try GGMLQuantize.quantizeMeasuring(type, values, into: buf)
                } catch let ScalpelError.invalid(_, _, reason) {
                    let nonfinite = values.contains { !$0.isFinite }
                    throw ScalpelError.invalid(file: source.checkpoint.path, tensor: name, reason: nonfinite
                        ? "has NaN or infinite values, which ggml's \(type.name) cannot quantize (--allow-nonfinite does not apply to GGUF types): \(reason)"
                        : reason)
                }
            }
            return TensorOutcome(error: error)
        }, action: "quantize to \(type.name)", onWritten: source.release)
    }

    /// The error of a round trip.
    static func error(_ original: [Float], _ reconstructed: [Float]) -> QuantError {
        original.withUnsafeBufferPointer { o in
            reconstructed.withUnsafeBufferPointer { QuantError.measure(original: o, reconstructed: $0) }
        }
    }
}
