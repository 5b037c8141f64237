/// A tensor as the model means it. Quantized safetensors layouts store one weight as several file
/// tensors (bitsandbytes: codes, absmax, quant state...; compressed-tensors: packed codes, scales,
/// shape); a logical tensor puts them back together and can decode them to f32.
public struct LogicalTensor: Sendable {
    /// The weight's name (`P.weight`).
    public var name: String
    /// Row-major shape of the weight.
    public var shape: [Int]
    /// How it is stored: a dtype or ggml type name, or "NF4", "FP4", "INT8", "INT4".
    public var storage: String
    /// The float dtype the weight had before quantization (recorded by the layout), or its own dtype.
    public var originalDType: DType?
    /// The file tensors holding it.
    public var parts: [String]
    /// Bytes of all parts.
    public var storedBytes: Int
    /// True when `storage` is a quantized form (anything but a plain dtype).
    public var isQuantized: Bool
    /// The index of the file tensor, when the logical tensor is exactly one plain or ggml tensor.
    public var fileIndex: Int?
    /// Decodes the values to f32.
    public let decode: @Sendable () throws -> [Float]

    public var elementCount: Int { shape.reduce(1, *) }
}

/// Recognizes the quantized safetensors layouts Scalpel writes (bitsandbytes 4-bit and LLM.int8,
/// compressed-tensors pack-quantized) and lists a checkpoint's logical tensors in file order.
public enum LogicalTensors {
    public static func resolve(_ c: Checkpoint) throws -> [LogicalTensor] {
        var claimed = Set<String>()
        // Each quantized weight is listed where its first part (the codes) stands in the file.
        var byAnchor: [String: LogicalTensor] = [:]
        let names = Set(c.tensors.map(\.name))
        for t in c.tensors {
            var found: LogicalTensor? = nil
            for kind in FourBitKind.allCases where t.name.hasSuffix(".weight." + FourBitQuantState.tensorSuffix(kind)) {
                found = try fourBit(c, stateName: t.name, kind: kind)
            }
            if t.name.hasSuffix(".SCB"), names.contains(String(t.name.dropLast(4)) + ".weight") {
                found = try int8(c, prefix: String(t.name.dropLast(4)))
            }
            if t.name.hasSuffix(".weight_packed") {
                found = try compressed(c, prefix: String(t.name.dropLast("weight_packed".count)))
            }
            if let l = found {
                byAnchor[l.parts[0]] = l
                claimed.formUnion(l.parts)
            }
        }
        var out: [LogicalTensor] = []
        for (i, t) in c.tensors.enumerated() {
            if let l = byAnchor[t.name] {
                out.append(l)
                continue
            }
            guard !claimed.contains(t.name) else { continue }
            let quantized: Bool = { if case .block = t.type { return true }; return false }()
            out.append(LogicalTensor(name: t.name, shape: t.shape, storage: t.type.description, originalDType: t.type.dtype,
                                     parts: [t.name], storedBytes: t.byteCount, isQuantized: quantized, fileIndex: i,
                                     decode: { try FloatConversion.floats(try c.view(at: i), consumed: { c.release(at: i, bytes: $0) }) }))
        }
        return out
    }

    private static func part(_ c: Checkpoint, _ name: String, _ dtype: DType, logical: String) throws -> TensorView {
        let v = try c.view(name)
        guard v.info.type == .plain(dtype) else {
            throw ScalpelError.malformed(file: c.path, tensor: name, reason: "is \(v.info.type), expected \(dtype.rawValue) for the quantized weight \(logical)")
        }
        return v
    }

    private static func floats(_ v: TensorView) -> [Float] { Array(v.bytes.bindMemory(to: Float.self)) }

    /// bitsandbytes 4-bit: `P.weight` codes, `P.weight.absmax` (F32, or U8 with nested), the quant state.
    static func fourBit(_ c: Checkpoint, stateName: String, kind: FourBitKind) throws -> LogicalTensor {
        let name = String(stateName.dropLast(1 + FourBitQuantState.tensorSuffix(kind).count))
        func bad(_ r: String) -> ScalpelError { .malformed(file: c.path, tensor: stateName, reason: r) }
        let stateView = try part(c, stateName, .u8, logical: name)
        guard let text = String(validating: stateView.bytes, as: UTF8.self),
              let state = try? JSONParser.parse(text) else { throw bad("quant state is not JSON") }
        guard let blockSize = state["blocksize"]?.intValue, FourBit.blockSizes.contains(blockSize) else { throw bad("bad blocksize") }
        guard let raw = state["shape"]?.arrayValue, case let dims = raw.compactMap(\.intValue), dims.count == raw.count,
              dims.allSatisfy({ $0 >= 0 }), let count = dims.checkedProduct() else { throw bad("bad shape") }
        let nested = state["nested_offset"] != nil
        var parts = [name, name + ".absmax", name + ".quant_map", stateName]
        if nested { parts += [name + ".nested_absmax", name + ".nested_quant_map"] }
        let codes = try part(c, name, .u8, logical: name)
        guard codes.bytes.count == count / 2 + count % 2 else { throw bad("\(codes.bytes.count) code bytes for \(count) values") }
        let blocks = count / blockSize + (count % blockSize == 0 ? 0 : 1)
        let absmax = try part(c, name + ".absmax", nested ? .u8 : .f32, logical: name)
        guard absmax.info.elementCount == blocks else { throw bad("absmax has \(absmax.info.elementCount) values for \(blocks) blocks") }
        var nestedParts: (TensorView, Float)? = nil
        if nested {
            let n = try part(c, name + ".nested_absmax", .f32, logical: name)
            guard n.info.elementCount == blocks / NestedAbsmax.blockSize + (blocks % NestedAbsmax.blockSize == 0 ? 0 : 1),
                  let offset = state["nested_offset"]?.doubleValue, offset.isFinite else { throw bad("nested absmax does not fit") }
            nestedParts = (n, Float(offset))
        }
        let original = state["dtype"]?.stringValue.flatMap { ["float32": DType.f32, "float16": .f16, "bfloat16": .bf16][$0] }
        let stored = parts.compactMap { c.info(named: $0)?.byteCount }.reduce(0, +)
        return LogicalTensor(name: name, shape: dims, storage: kind.rawValue.uppercased(), originalDType: original, parts: parts,
                             storedBytes: stored, isQuantized: true, fileIndex: nil, decode: { [nestedParts] in
            let scales: [Float]
            if let (n, offset) = nestedParts {
                scales = NestedAbsmax(codes: Array(absmax.bytes), absmax: floats(n), offset: offset).dequantize()
            } else {
                scales = floats(absmax)
            }
            var out = [Float](repeating: 0, count: count)
            codes.bytes.withMemoryRebound(to: UInt8.self) { cb in
                scales.withUnsafeBufferPointer { s in
                    out.withUnsafeMutableBufferPointer { FourBit.dequantize(codes: cb, scales: s, kind: kind, blockSize: blockSize, into: $0) }
                }
            }
            return out
        })
    }

    /// LLM.int8: `P.weight` I8 and `P.SCB` F32 (and `P.weight_format`).
    static func int8(_ c: Checkpoint, prefix: String) throws -> LogicalTensor {
        let name = prefix + ".weight"
        let cb = try part(c, name, .i8, logical: name)
        let scb = try part(c, prefix + ".SCB", .f32, logical: name)
        guard cb.info.shape.count == 2, scb.info.elementCount == cb.info.shape[0] else {
            throw ScalpelError.malformed(file: c.path, tensor: prefix + ".SCB", reason: "SCB does not have one value per row of \(name)")
        }
        var parts = [name, prefix + ".SCB"]
        if c.info(named: prefix + ".weight_format") != nil { parts.append(prefix + ".weight_format") }
        let rows = cb.info.shape[0], columns = cb.info.shape[1]
        return LogicalTensor(name: name, shape: cb.info.shape, storage: "INT8", originalDType: nil, parts: parts,
                             storedBytes: parts.compactMap { c.info(named: $0)?.byteCount }.reduce(0, +), isQuantized: true,
                             fileIndex: nil, decode: {
            let q = BnbInt8Quantized(rows: rows, columns: columns, cb: Array(cb.bytes.bindMemory(to: Int8.self)), scb: floats(scb))
            var out = [Float](repeating: 0, count: rows * columns)
            out.withUnsafeMutableBufferPointer { BnbInt8.dequantize(q, into: $0) }
            return out
        })
    }

    /// compressed-tensors pack-quantized: `P.weight_packed` I32, `P.weight_scale`, `P.weight_shape` I64,
    /// optional `P.weight_zero_point` I32.
    static func compressed(_ c: Checkpoint, prefix: String) throws -> LogicalTensor {
        let name = prefix + "weight"
        func bad(_ r: String) -> ScalpelError { .malformed(file: c.path, tensor: name, reason: r) }
        let packed = try part(c, prefix + "weight_packed", .i32, logical: name)
        let shapeView = try part(c, prefix + "weight_shape", .i64, logical: name)
        let scale = try c.view(prefix + "weight_scale")
        guard let scaleDType = scale.info.type.dtype, [.f32, .f16, .bf16].contains(scaleDType) else { throw bad("weight_scale is not a float tensor") }
        let dims = shapeView.bytes.bindMemory(to: Int64.self).map(Int.init)
        guard dims.count == 2, dims.allSatisfy({ $0 > 0 }), packed.info.shape.count == 2, packed.info.shape[0] == dims[0],
              scale.info.shape.count == 2, scale.info.shape[0] == dims[0], scale.info.shape[1] > 0,
              dims[1] % scale.info.shape[1] == 0 else { throw bad("weight_packed, weight_scale and weight_shape do not agree") }
        let rows = dims[0], columns = dims[1], groups = scale.info.shape[1]
        guard let bits = [4, 8].first(where: { (columns * $0 + 31) / 32 == packed.info.shape[1] }) else {
            throw bad("packed width \(packed.info.shape[1]) fits neither 4 nor 8 bits for \(columns) columns")
        }
        var parts = [prefix + "weight_packed", prefix + "weight_scale", prefix + "weight_shape"]
        let zpView = c.info(named: prefix + "weight_zero_point") != nil ? try part(c, prefix + "weight_zero_point", .i32, logical: name) : nil
        if zpView != nil { parts.append(prefix + "weight_zero_point") }
        return LogicalTensor(name: name, shape: dims, storage: bits == 4 ? "INT4" : "INT8", originalDType: scaleDType, parts: parts,
                             storedBytes: parts.compactMap { c.info(named: $0)?.byteCount }.reduce(0, +), isQuantized: true,
                             fileIndex: nil, decode: {
            let scales = try FloatConversion.floats(scale)
            let zeroPoints = zpView.map { unpackZeroPoints(Array($0.bytes.bindMemory(to: Int32.self)), rows: rows, groups: groups, bits: bits) }
            let q = CompressedTensorsQuantized(rows: rows, columns: columns, bits: bits, groupSize: columns / groups,
                                               packed: Array(packed.bytes.bindMemory(to: Int32.self)), scales: scales,
                                               zeroPoints: zeroPoints, scaleDType: scaleDType)
            var out = [Float](repeating: 0, count: rows * columns)
            out.withUnsafeMutableBufferPointer { CompressedTensors.dequantize(q, into: $0) }
            return out
        })
    }

    /// The inverse of `CompressedTensorsQuantized.packedZeroPoints` (packed along the output dimension).
    static func unpackZeroPoints(_ words: [Int32], rows: Int, groups: Int, bits: Int) -> [Int8] {
        let perWord = 32 / bits, mask = UInt32((1 << bits) - 1)
        var out = [Int8](repeating: 0, count: rows * groups)
        for r in 0..<rows {
            for j in 0..<groups {
                let w = (r / perWord) * groups + j
                guard w < words.count else { continue }
                let v = Int32((UInt32(bitPattern: words[w]) >> UInt32(bits * (r % perWord))) & mask) - Int32(1 << (bits - 1))
                out[r * groups + j] = Int8(v)
            }
        }
        return out
    }
}
