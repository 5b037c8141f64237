/// What `quantize` does with one input tensor, decided from its header description alone. The writer
/// (`QuantizedOutputs.make`) and the size estimate (`SizeEstimate`) both follow this one decision.
enum QuantizeDecision: Equatable {
    /// Kept: copied, or widened/dequantized when the output cannot hold it (see `KeptAction`).
    case keep(note: String?)
    /// Kept because the input features do not fill whole int4 groups (safetensors outputs only).
    case keepInSafetensors(note: String)
    /// Already stored as the target ggml type: its blocks are copied.
    case alreadyTarget(GGMLType)
    /// A float cast: f32/f16/bf16 targets, and F16 for rows that do not fill whole ggml blocks.
    case cast(DType, note: String?)
    /// ggml blocks.
    case ggml(GGMLType, note: String?)
    /// bitsandbytes 4-bit.
    case fourBit(FourBitKind, note: String?)
    /// bitsandbytes LLM.int8.
    case int8Bitsandbytes(note: String?)
    /// compressed-tensors pack-quantized with `bits` 4 or 8.
    case compressed(bits: Int, note: String?)

    /// How a kept tensor is written.
    enum KeptAction: Equatable {
        /// Its file tensors as they are.
        case copy
        /// Cast to this float dtype (GGUF 1-D floats to F32, as llama.cpp does).
        case widen(DType)
        /// Dequantized to this dtype: a layout the output cannot hold.
        case dequantize(DType)
    }

    /// True when the tensor is converted to the target (not kept or copied).
    var transforms: Bool {
        switch self {
        case .keep, .keepInSafetensors, .alreadyTarget: return false
        default: return true
        }
    }

    /// The decision for `source` when its target is `target` (from `Quantize.targetType`).
    static func decide(_ source: SourceTensor, target: QuantType?, options: Quantize.Options) -> QuantizeDecision {
        let info = source.info
        guard let target, source.isNumeric else { return .keep(note: target != nil ? "not a float tensor: kept" : nil) }
        var note: String? = nil
        if source.logical.isQuantized {
            if let g = source.blockType, g == target.ggmlType { return .alreadyTarget(g) }
            note = "was \(source.logical.storage): dequantized first"
        }
        if let plain = target.plainDType { return .cast(plain, note: note) }
        if var g = target.ggmlType {
            let rowLength = info.shape.last ?? 1
            if rowLength % g.blockSize != 0 && (KQuant.supportedTypes + KQuant.iq4Types).contains(g)
                && KQuant.kQuantFallback(g, rowLength: rowLength) != .f16 {
                let k = g
                g = KQuant.kQuantFallback(k, rowLength: rowLength)  // llama.cpp's fallback for K types and IQ4_XS
                note = "row length \(rowLength) is not a multiple of \(k.blockSize): \(g.name) instead of \(k.name)" + (note.map { "; \($0)" } ?? "")
            }
            guard rowLength % g.blockSize == 0 else {
                return .cast(.f16, note: "row length \(rowLength) is not a multiple of \(g.blockSize): written as F16")
            }
            return .ggml(g, note: note)
        }
        switch target {
        case .nf4, .fp4: return .fourBit(target == .nf4 ? .nf4 : .fp4, note: note)
        case .int8 where options.int8Format == .bitsandbytes: return .int8Bitsandbytes(note: note)
        case .int8, .int4:
            let columns = info.shape.last ?? 1
            if target == .int4 && columns % options.groupSize != 0 {
                return .keepInSafetensors(note: "\(columns) input features are not a multiple of the group size \(options.groupSize): kept")
            }
            return .compressed(bits: target == .int4 ? 4 : 8, note: note)
        default:
            preconditionFailure("every QuantType is handled above")
        }
    }

    /// How a kept tensor is written to a GGUF (`toGGUF`) or safetensors output.
    static func kept(_ source: SourceTensor, toGGUF: Bool, asStored: Bool = false) -> KeptAction {
        let info = source.info
        if toGGUF, !asStored, info.shape.count <= 1, let d = info.type.dtype, d.isComputableFloat, d != .f32 { return .widen(.f32) }
        if source.logical.isQuantized && (toGGUF == (source.blockType == nil)) {
            return .dequantize(source.blockType == nil ? source.floatDType : .f32)
        }
        return .copy
    }
}
