/// The non-tensor part of a bitsandbytes 4-bit quant state, stored as the U8 tensor
/// `<param>.quant_state.bitsandbytes__<kind>` (`QuantState.as_dict(packed=True)`).
public enum FourBitQuantState {
    /// The tensor name suffix: `quant_state.bitsandbytes__nf4` or `..._fp4`.
    public static func tensorSuffix(_ kind: FourBitKind) -> String { "quant_state.bitsandbytes__" + kind.rawValue }

    /// The UTF-8 bytes of Python's `json.dumps` of the state dict, bit-identical to bitsandbytes':
    /// `{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 4096]}`, followed
    /// with double quantization by `"nested_blocksize": 256, "nested_dtype": "float32",
    /// "nested_offset": <offset>` (the f32 offset printed as the shortest repr of its f64 value, as
    /// Python prints `tensor.item()`).
    ///
    /// - Parameters:
    ///   - dtype: the dtype of the original weight (`QuantState.dtype`): F32, F16 or BF16.
    ///   - shape: the original weight's shape (row-major), whose product must be `q.count`.
    /// - Throws: `ScalpelError.invalid` for another dtype or a shape that does not match.
    public static func json(for q: FourBitQuantized, dtype: DType, shape: [Int]) throws -> [UInt8] {
        guard let torchName = torchDTypeName(dtype) else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "bitsandbytes 4-bit weights must be F32, F16 or BF16, not \(dtype.rawValue)")
        }
        guard shape.reduce(1, *) == q.count else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "shape \(shape) does not hold \(q.count) quantized elements")
        }
        var pairs: [(String, JSONValue)] = [
            ("quant_type", .string(q.kind.rawValue)),
            ("blocksize", .int(q.blockSize)),
            ("dtype", .string(torchName)),
            ("shape", .array(shape.map { .int($0) })),
        ]
        if let nested = q.nested {
            pairs += [
                ("nested_blocksize", .int(NestedAbsmax.blockSize)),
                ("nested_dtype", .string("float32")),
                ("nested_offset", .double(Double(nested.offset))),
            ]
        }
        return Array(JSONWriter.string(.object(pairs), style: .python).utf8)
    }

    /// torch's name of a float dtype as bitsandbytes writes it (`str(dtype).strip("torch.")`).
    static func torchDTypeName(_ dtype: DType) -> String? {
        switch dtype {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        default: return nil
        }
    }
}
