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
        let groupSize: Int
        switch strategy {
        case .channel: groupSize = columns
        case .group(let g): groupSize = g
        }
        guard DTypeRounding(dtype) != nil, groupSize > 0, columns % groupSize == 0 else {
            throw ScalpelError.invalid(file: source.checkpoint.path, tensor: info.name, reason: "group size \(groupSize) does not divide the \(columns) input features")
        }
        let layout = CompressedTensorsKernel.Layout(rows: rows, columns: columns, bits: bits, groupSize: groupSize, symmetric: symmetric)
        // Quantized once while planning (the error measured a row at a time); the packed codes are kept
        // for writing while they fit the cache budget, else quantized again straight into the output.
        var packed = [Int32](repeating: 0, count: rows * layout.wordsPerRow)
        var scales = [Float](repeating: 0, count: rows * layout.groups)
        var zeroPoints = [Int8](repeating: 0, count: symmetric ? 0 : rows * layout.groups)
        let error = try source.withValues { values in
            packed.withUnsafeMutableBufferPointer { p in
                scales.withUnsafeMutableBufferPointer { s in
                    zeroPoints.withUnsafeMutableBufferPointer { z in
                        CompressedTensorsKernel.run(values.baseAddress!, layout, dtype: dtype, packed: p.baseAddress!, scales: s.baseAddress!,
                                                    zeroPoints: symmetric ? nil : z.baseAddress, measure: true)!
                    }
                }
            }
        }
        let q = CompressedTensorsQuantized(rows: rows, columns: columns, bits: bits, groupSize: groupSize, packed: [], scales: scales,
                                           zeroPoints: symmetric ? nil : zeroPoints, scaleDType: dtype)
        cache.keep(packed, bytes: 4 * packed.count, for: info.name)
        packed = []
        source.release()
        // Closures capture only the small parts, never the packed codes.
        let weightShape = q.weightShape, groups = q.groups, fixedScales = scales

        var outputs = [
            OutputTensor(name: prefix + "weight_packed", type: .plain(.i32), shape: [rows, q.packedColumns], content: .compute { buf in
                if let packed = cache.take(info.name, as: [Int32].self) {
                    packed.withUnsafeBytes { buf.copyMemory(from: $0) }
                    return .none
                }
                try source.withValues(checkFinite: false) { values in
                    var s = [Float](repeating: 0, count: rows * groups), z = [Int8](repeating: 0, count: symmetric ? 0 : rows * groups)
                    s.withUnsafeMutableBufferPointer { s in
                        z.withUnsafeMutableBufferPointer { z in
                            _ = CompressedTensorsKernel.run(values.baseAddress!, layout, dtype: dtype, packed: buf.baseAddress!.assumingMemoryBound(to: Int32.self),
                                                            scales: s.baseAddress!, zeroPoints: symmetric ? nil : z.baseAddress, measure: false)
                        }
                    }
                }
                return .none
            }, action: "quantize to int\(bits)", onWritten: source.release),
            OutputTensor(name: prefix + "weight_scale", type: .plain(dtype), shape: [rows, groups], content: .compute { buf in
                try fixedScales.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype, into: buf, tensor: prefix + "weight_scale") }
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
        report.setError(info.name, error)
        return outputs
    }
}
