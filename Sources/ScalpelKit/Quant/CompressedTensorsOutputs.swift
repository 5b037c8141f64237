/// Output tensors in compressed-tensors' `pack-quantized` layout (vLLM and transformers load it).
enum CompressedTensorsOutputs {
    /// `P.weight_packed` (I32), `P.weight_scale` (the weight's float dtype), `P.weight_shape` (I64 [2]),
    /// and `P.weight_zero_point` (I32, packed along the output dimension) when asymmetric.
    static func make(_ source: SourceTensor, bits: Int, strategy: CompressedTensors.Strategy, symmetric: Bool,
                     report: inout QuantizeReport, result: TensorQuantResult, note: String?, cache: SideCache) throws -> [OutputTensor] {
        let info = source.info
        guard info.name.hasSuffix(".weight"), info.shape.count == 2 else {
            throw ScalpelError.invalid(file: source.checkpoint.path, tensor: info.name, reason: "compressed-tensors quantizes 2-D *.weight tensors only")
        }
        let rows = info.shape[0], columns = info.shape[1]
        let prefix = String(info.name.dropLast("weight".count))
        let dtype = source.floatDType
        let quantize: @Sendable ([Float]) throws -> CompressedTensorsQuantized = { values in
            try values.withUnsafeBufferPointer {
                try CompressedTensors.quantize($0, rows: rows, columns: columns, bits: bits, strategy: strategy, symmetric: symmetric, dtype: dtype)
            }
        }
        let values = try source.values()
        let q = try quantize(values)
        var back = [Float](repeating: 0, count: values.count)
        back.withUnsafeMutableBufferPointer { CompressedTensors.dequantize(q, into: $0) }
        cache.keep(q.packed, bytes: 4 * q.packed.count, for: info.name)
        source.release()
        // Closures capture only the small parts, never the packed codes.
        let scales = q.scales, weightShape = q.weightShape, groups = q.groups

        var outputs = [
            OutputTensor(name: prefix + "weight_packed", type: .plain(.i32), shape: [rows, q.packedColumns], content: .compute { buf in
                let packed = try cache.take(info.name, as: [Int32].self) ?? quantize(try source.values()).packed
                packed.withUnsafeBytes { buf.copyMemory(from: $0) }
                return .none
            }, action: "quantize to int\(bits)", onWritten: source.release),
            OutputTensor(name: prefix + "weight_scale", type: .plain(dtype), shape: [rows, groups], content: .compute { buf in
                try scales.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype, into: buf, tensor: prefix + "weight_scale") }
                return .none
            }),
            OutputTensor(name: prefix + "weight_shape", type: .plain(.i64), shape: [2], content: .compute { buf in
                weightShape.withUnsafeBytes { buf.copyMemory(from: $0) }
                return .none
            }),
        ]
        if let zp = q.packedZeroPoints {
            outputs.append(OutputTensor(name: prefix + "weight_zero_point", type: .plain(.i32), shape: [zp.count / groups, groups], content: .compute { buf in
                zp.withUnsafeBytes { buf.copyMemory(from: $0) }
                return .none
            }))
        }
        var r = result
        r.to = bits == 4 ? "INT4" : "INT8"
        r.bytesAfter = outputs.reduce(0) { $0 + $1.byteCount }
        r.note = note
        report.record(r)
        report.setError(info.name, QuantizedOutputs.error(values, back))
        return outputs
    }
}
