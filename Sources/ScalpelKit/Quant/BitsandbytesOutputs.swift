/// Output tensors in the layouts bitsandbytes and transformers save 4-bit and 8-bit Linear weights in.
enum BitsandbytesOutputs {
    /// `P.weight` (U8 codes `[(n+1)/2, 1]`), `P.weight.absmax` (F32, or U8 codes with double
    /// quantization plus `P.weight.nested_absmax` F32 and `P.weight.nested_quant_map` F32 [256]),
    /// `P.weight.quant_map` (F32 [16]) and `P.weight.quant_state.bitsandbytes__KIND` (U8: the JSON).
    ///
    /// The tensor is quantized while planning (the quant state JSON holds the nested offset, and the
    /// header must be known before data); codes are kept for writing while they fit the cache budget,
    /// else quantized again when written.
    static func fourBit(_ source: SourceTensor, kind: FourBitKind, options: Quantize.Options, report: inout QuantizeReport,
                        result: TensorQuantResult, note: String?, cache: SideCache) throws -> [OutputTensor] {
        let info = source.info
        let name = info.name
        // A NaN or infinity makes its block's absmax non-finite, so the input is scanned for them only then.
        let (q, error) = try source.withValues(checkFinite: false) { values in
            let q = try FourBit.quantize(values, kind: kind, blockSize: options.blockSize, doubleQuant: options.doubleQuant)
            if q.absmax.contains(where: { !$0.isFinite }) { try source.checkFinite(values) }
            return (q, try fourBitError(q, original: values))
        }
        let state = try FourBitQuantState.json(for: q, dtype: source.floatDType, shape: info.shape)
        cache.keep(q.codes, bytes: q.codes.count, for: name)
        source.release()

        var outputs: [OutputTensor] = [
            OutputTensor(name: name, type: .plain(.u8), shape: [q.codes.count, 1], content: .compute { buf in
                // Values were checked for NaN and Inf while planning.
                let codes = try cache.take(name, as: [UInt8].self) ?? source.withValues(checkFinite: false) {
                    try FourBit.quantize($0, kind: kind, blockSize: options.blockSize, doubleQuant: options.doubleQuant).codes
                }
                buf.copyBytes(from: codes)
                return .none
            }, action: "quantize to \(kind.rawValue)", onWritten: source.release),
            constant(name + ".quant_map", kind.quantMap),
            bytes(name + "." + FourBitQuantState.tensorSuffix(kind), state),
        ]
        if let nested = q.nested {
            outputs += [bytes(name + ".absmax", nested.codes), constant(name + ".nested_absmax", nested.absmax),
                        constant(name + ".nested_quant_map", NestedAbsmax.quantMap)]
        } else {
            outputs.append(constant(name + ".absmax", q.absmax))
        }
        var r = result
        r.to = kind.rawValue.uppercased()
        r.bytesAfter = outputs.reduce(0) { $0 + $1.byteCount }
        r.note = note
        report.record(r)
        report.setError(name, error)
        return outputs
    }

    /// The round-trip error of 4-bit codes, dequantized a chunk of blocks at a time into small buffers.
    static func fourBitError(_ q: FourBitQuantized, original: UnsafeBufferPointer<Float>) throws -> QuantError {
        let io = UncheckedBox((original, q.codes, q.blockScales))
        return try QuantError.inChunks(count: original.count, chunk: q.blockSize * max(1, 65536 / q.blockSize)) { r in
            let (o, codes, scales) = io.value
            return withUnsafeTemporaryAllocation(of: Float.self, capacity: r.count) { back in
                codes.withUnsafeBufferPointer { c in
                    scales.withUnsafeBufferPointer { s in
                        FourBit.dequantize(codes: UnsafeBufferPointer(rebasing: c[(r.lowerBound / 2)..<((r.upperBound + 1) / 2)]),
                                           scales: UnsafeBufferPointer(rebasing: s[(r.lowerBound / q.blockSize)...]),
                                           kind: q.kind, blockSize: q.blockSize, into: back)
                    }
                }
                return QuantError.measure(original: UnsafeBufferPointer(rebasing: o[r]), reconstructed: UnsafeBufferPointer(back))
            }
        }
    }

    /// LLM.int8: `P.weight` (I8 `[out, in]`), `P.SCB` (F32 `[out]`) and `P.weight_format` (U8 scalar 0,
    /// row-major). Weights are rounded to F16 first, as bitsandbytes' Int8Params does.
    ///
    /// Only the row scales are computed while planning (one pass of maxima: `SCB` precedes the weights
    /// in the file); the codes are computed straight into the output buffer when written, the error
    /// measured row by row, so quantizing overlaps writing the previous tensor.
    static func int8(_ source: SourceTensor, report: inout QuantizeReport, result: TensorQuantResult, note: String?) throws -> [OutputTensor] {
        let info = source.info
        guard info.name.hasSuffix(".weight"), info.shape.count == 2 else {
            throw ScalpelError.invalid(file: source.checkpoint.path, tensor: info.name, reason: "LLM.int8 quantizes 2-D *.weight tensors only")
        }
        let rows = info.shape[0], columns = info.shape[1]
        let prefix = String(info.name.dropLast(".weight".count))
        // NaN and Inf make an SCB non-finite, so only then is the input scanned for them (values beyond
        // f16's range also do, and are then allowed, as before).
        let scb = try source.withValues(checkFinite: false) { values in
            let scb = BnbInt8.rowScales(values, rows: rows, columns: columns)
            if scb.contains(where: { !$0.isFinite }) { try source.checkFinite(values) }
            return scb
        }
        source.release()
        let outputs = [
            OutputTensor(name: info.name, type: .plain(.i8), shape: [rows, columns], content: .compute { buf in
                let error = try source.withValues(checkFinite: false) { values in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: rows) { s in
                        BnbInt8.quantize(values, rows: rows, columns: columns, codes: buf.baseAddress?.assumingMemoryBound(to: Int8.self),
                                         scb: s.baseAddress, measure: true)
                    }
                }
                return TensorOutcome(error: error)
            }, action: "quantize to int8", onWritten: source.release),
            constant(prefix + ".SCB", scb),
            OutputTensor(name: prefix + ".weight_format", type: .plain(.u8), shape: [], content: .compute { $0[0] = 0; return .none }),
        ]
        var r = result
        r.to = "INT8"
        r.bytesAfter = outputs.reduce(0) { $0 + $1.byteCount }
        r.note = note
        report.record(r)
        report.setMeasured(info.name, by: info.name)
        return outputs
    }

    /// An F32 tensor of fixed values.
    static func constant(_ name: String, _ values: [Float]) -> OutputTensor {
        OutputTensor(name: name, type: .plain(.f32), shape: [values.count], content: .compute { buf in
            values.withUnsafeBytes { buf.copyMemory(from: $0) }
            return .none
        })
    }

    /// A U8 tensor of fixed bytes.
    static func bytes(_ name: String, _ values: [UInt8]) -> OutputTensor {
        OutputTensor(name: name, type: .plain(.u8), shape: [values.count], content: .compute { $0.copyBytes(from: values); return .none })
    }
}
