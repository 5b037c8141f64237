/// Output tensors in compressed-tensors' `pack-quantized` layout (vLLM and transformers load it).
enum CompressedTensorsOutputs {
    /// `P.weight_packed` (I32), `P.weight_scale` (the weight's float dtype), `P.weight_shape` (I64 [2]),
    /// and `P.weight_zero_point` (I32, packed along the output dimension) when asymmetric.
    static func make(_ source: SourceTensor, bits: Int, strategy: CompressedTensors.Strategy, symmetric: Bool,
                     report: inout QuantizeReport, result: TensorQuantResult, note: String?) throws -> [OutputTensor] {
        let info = source.info
        guard info.name.hasSuffix(".weight"), info.shape.count == 2 else {
            throw ScalpelError.invalid(file: source.checkpoint.path, tensor: info.name, reason: "compressed-tensors quantizes 2-D *.weight tensors only")
        }
        let rows = info.shape[0], columns = info.shape[1]
        let prefix = String(info.name.dropLast("weight".count))
        let dtype = source.floatDType
        let groupSize: Int
        switch strategy {
        case .channel: groupSize = columns
        case .group(let g): groupSize = g
        }
        guard DTypeRounding(dtype) != nil, groupSize > 0, columns % groupSize == 0 else {
            throw ScalpelError.invalid(file: source.checkpoint.path, tensor: info.name, reason: "group size \(groupSize) does not divide the \(columns) input features")
        }
        let layout = CompressedTensorsKernel.Layout(rows: rows, columns: columns, bits: bits, groupSize: groupSize, symmetric: symmetric)
        // Only the scales and zero points are computed while planning (one pass of minima and maxima:
        // `weight_scale` precedes `weight_packed` in the file); the codes are computed straight into the
        // output buffer when written, the error measured row by row, so quantizing overlaps writing.
        // NaN and Inf make a scale non-finite, so only then is the input scanned for them.
        var q = CompressedTensorsQuantized(rows: rows, columns: columns, bits: bits, groupSize: groupSize, packed: [],
                                           scales: [Float](repeating: 0, count: rows * layout.groups),
                                           zeroPoints: symmetric ? nil : [Int8](repeating: 0, count: rows * layout.groups), scaleDType: dtype)
        try source.withValues(checkFinite: false) { values in
            guard let base = values.baseAddress else { return }
            q.scales.withUnsafeMutableBufferPointer { s in
                var zp = q.zeroPoints ?? []
                zp.withUnsafeMutableBufferPointer { z in
                    CompressedTensorsKernel.scales(base, layout, dtype: dtype, scales: s.baseAddress!, zeroPoints: symmetric ? nil : z.baseAddress)
                }
                if !symmetric { q.zeroPoints = zp }
            }
            if q.scales.contains(where: { !$0.isFinite }) { try source.checkFinite(values) }
        }
        source.release()
        let weightShape = q.weightShape, scales = q.scales

        var outputs = [
            OutputTensor(name: prefix + "weight_packed", type: .plain(.i32), shape: [rows, q.packedColumns], content: .compute { buf in
                let error = try source.withValues(checkFinite: false) { values -> QuantError? in
                    guard let base = values.baseAddress, let packed = buf.baseAddress else { return nil }
                    var s = [Float](repeating: 0, count: rows * layout.groups), z = [Int8](repeating: 0, count: symmetric ? 0 : rows * layout.groups)
                    return s.withUnsafeMutableBufferPointer { s in
                        z.withUnsafeMutableBufferPointer { z in
                            CompressedTensorsKernel.run(base, layout, dtype: dtype, packed: packed.assumingMemoryBound(to: Int32.self),
                                                        scales: s.baseAddress!, zeroPoints: symmetric ? nil : z.baseAddress, measure: true)
                        }
                    }
                }
                return TensorOutcome(error: error)
            }, action: "quantize to int\(bits)", onWritten: source.release),
            OutputTensor(name: prefix + "weight_scale", type: .plain(dtype), shape: [rows, q.groups], content: .compute { buf in
                try scales.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype, into: buf, tensor: prefix + "weight_scale") }
                return .none
            }),
            OutputTensor(name: prefix + "weight_shape", type: .plain(.i64), shape: [2], content: .compute { buf in
                weightShape.withUnsafeBytes { buf.copyMemory(from: $0) }
                return .none
            }),
        ]
        if let zp = q.packedZeroPoints {
            outputs.append(OutputTensor(name: prefix + "weight_zero_point", type: .plain(.i32), shape: [zp.count / q.groups, q.groups], content: .compute { buf in
                zp.withUnsafeBytes { buf.copyMemory(from: $0) }
                return .none
            }))
        }
        var r = result
        r.to = bits == 4 ? "INT4" : "INT8"
        r.bytesAfter = outputs.reduce(0) { $0 + $1.byteCount }
        r.note = note
        report.record(r)
        report.setMeasured(info.name, by: prefix + "weight_packed")
        return outputs
    }
}
