import CScalpelKernels

/// Conversions between stored element types and f32, the type all transforms compute in.
public enum FloatConversion {
    /// Elements per parallel chunk (fixed, so results never depend on thread count).
    static let chunk = 1 << 18
    /// The dtypes `decode` reads (besides the ggml block types).
    public static let decodable: Set<DType> = [.f32, .f16, .bf16, .f64, .i8, .u8, .bool, .i16, .u16, .i32, .u32, .i64, .u64]
    /// The dtypes `encode` writes.
    public static let encodable: Set<DType> = [.f32, .f16, .bf16, .f64]

    /// Decodes `count` elements of `type` from `src` into `dst` as f32.
    ///
    /// F32 is copied, F16 and BF16 widen exactly, F64 rounds to nearest, integer types convert by value
    /// (I64/U64 rounding to nearest f32), BOOL gives 0/1; ggml block types are dequantized.
    /// - Throws: `ScalpelError.invalid` naming `tensor` for types with no numeric meaning here (F8, F4,
    ///   F6, C64), and when `src` does not hold exactly `dst.count` elements of `type`.
    public static func decode(_ type: TensorType, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>, tensor: String = "") throws {
        let n = dst.count
        guard let d = type.dtype else {
            guard case .block(let g) = type else { return }
            try checkSize(src.count, of: n, type, "input", tensor: tensor)
            try naming(tensor) { try GGMLDequantize.dequantize(g, src, into: dst) }
            return
        }
        guard decodable.contains(d) else {
            throw ScalpelError.invalid(file: nil, tensor: tensor.isEmpty ? nil : tensor, reason: "cannot compute on dtype \(d.rawValue)")
        }
        try checkSize(src.count, of: n, type, "input", tensor: tensor)
        guard n > 0 else { return }
        let s = UncheckedBox(src.baseAddress!)
        let o = UncheckedBox(dst.baseAddress!)
        switch d {
        case .f32:
            parallelChunks(count: n, chunk: chunk) { r in
                (o.value + r.lowerBound).update(from: (s.value + 4 * r.lowerBound).assumingMemoryBound(to: Float.self), count: r.count)
            }
        case .f16:
            parallelChunks(count: n, chunk: chunk) { r in
                scalpel_f16_to_f32((s.value + 2 * r.lowerBound).assumingMemoryBound(to: UInt16.self), o.value + r.lowerBound, r.count)
            }
        case .bf16:
            parallelChunks(count: n, chunk: chunk) { r in
                scalpel_bf16_to_f32((s.value + 2 * r.lowerBound).assumingMemoryBound(to: UInt16.self), o.value + r.lowerBound, r.count)
            }
        case .f64: convert(src, dst, as: Double.self) { Float($0) }
        case .i8: convert(src, dst, as: Int8.self) { Float($0) }
        case .u8: convert(src, dst, as: UInt8.self) { Float($0) }
        case .bool: convert(src, dst, as: UInt8.self) { $0 != 0 ? 1 : 0 }
        case .i16: convert(src, dst, as: Int16.self) { Float($0) }
        case .u16: convert(src, dst, as: UInt16.self) { Float($0) }
        case .i32: convert(src, dst, as: Int32.self) { Float($0) }
        case .u32: convert(src, dst, as: UInt32.self) { Float($0) }
        case .i64: convert(src, dst, as: Int64.self) { Float($0) }
        case .u64: convert(src, dst, as: UInt64.self) { Float($0) }
        default:
            throw ScalpelError.invalid(file: nil, tensor: tensor.isEmpty ? nil : tensor, reason: "cannot compute on dtype \(d.rawValue)")
        }
    }

    /// Throws unless a buffer of `bytes` bytes holds exactly `count` elements of `type` (the check the
    /// dequantizers make), naming `tensor` and which buffer (`what`) is wrong.
    static func checkSize(_ bytes: Int, of count: Int, _ type: TensorType, _ what: String, tensor: String) throws {
        let expected = type.byteCount(elements: count)
        guard expected != bytes else { return }
        let need = expected.map { "\($0) bytes" } ?? "a whole number of bytes or blocks, which they are not"
        throw ScalpelError.invalid(file: nil, tensor: tensor.isEmpty ? nil : tensor,
                                   reason: "\(what) buffer has \(bytes) bytes, but \(count) \(type) values need \(need)")
    }

    /// Runs `body`, giving `tensor`'s name to an `invalid` error that names no tensor.
    private static func naming(_ tensor: String, _ body: () throws -> Void) throws {
        do { try body() } catch ScalpelError.invalid(let file, nil, let reason) where !tensor.isEmpty {
            throw ScalpelError.invalid(file: file, tensor: tensor, reason: reason)
        }
    }

    private static func convert<T>(_ src: UnsafeRawBufferPointer, _ dst: UnsafeMutableBufferPointer<Float>, as: T.Type, _ f: (T) -> Float) {
        for i in 0..<dst.count {
            dst[i] = f(src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
        }
    }

    /// Decodes a whole tensor view to a new f32 array.
    /// - Parameter consumed: called with each byte range of `view.bytes` (in order, together covering it)
    ///   once it has been decoded, so a mapped input's pages can be dropped while the f32 copy grows:
    ///   resident memory then peaks near the f32 array, not the array plus the whole input.
    public static func floats(_ view: TensorView, consumed: ((Range<Int>) -> Void)? = nil) throws -> [Float] {
        let n = view.info.elementCount
        let type = view.info.type
        let step = 1 << 20  // elements per piece: a multiple of every block size (32, 256)
        return try [Float](unsafeUninitializedCapacity: n) { buf, count in
            guard let consumed, n > step, let total = type.byteCount(elements: n), total == view.bytes.count else {
                try decode(type, view.bytes, into: buf, tensor: view.info.name)
                consumed?(0..<view.bytes.count)
                count = n
                return
            }
            var start = 0
            while start < n {
                let end = min(n, start + step)
                let from = type.byteCount(elements: start)!, to = end == n ? total : type.byteCount(elements: end)!
                try decode(type, UnsafeRawBufferPointer(rebasing: view.bytes[from..<to]),
                           into: UnsafeMutableBufferPointer(rebasing: buf[start..<end]), tensor: view.info.name)
                consumed(from..<to)
                start = end
            }
            count = n
        }
    }

    /// Encodes f32 values as `dtype` into `dst` (which holds exactly `src.count` elements of it).
    ///
    /// F16 and BF16 round to nearest even; NaN stays NaN, values beyond the range become infinities.
    /// - Throws: `ScalpelError.invalid` naming `tensor` for dtypes other than F32, F16, BF16, F64, and
    ///   when `dst` does not hold exactly `src.count` elements of `dtype`.
    public static func encode(_ src: UnsafeBufferPointer<Float>, as dtype: DType, into dst: UnsafeMutableRawBufferPointer, tensor: String = "") throws {
        let n = src.count
        guard encodable.contains(dtype) else {
            throw ScalpelError.invalid(file: nil, tensor: tensor.isEmpty ? nil : tensor, reason: "cannot write f32 values as \(dtype.rawValue)")
        }
        try checkSize(dst.count, of: n, .plain(dtype), "output", tensor: tensor)
        guard n > 0 else { return }
        let s = UncheckedBox(src.baseAddress!)
        let o = UncheckedBox(dst.baseAddress!)
        switch dtype {
        case .f32:
            dst.copyMemory(from: UnsafeRawBufferPointer(src))
        case .f16:
            parallelChunks(count: n, chunk: chunk) { r in
                scalpel_f32_to_f16(s.value + r.lowerBound, (o.value + 2 * r.lowerBound).assumingMemoryBound(to: UInt16.self), r.count)
            }
        case .bf16:
            parallelChunks(count: n, chunk: chunk) { r in
                scalpel_f32_to_bf16(s.value + r.lowerBound, (o.value + 2 * r.lowerBound).assumingMemoryBound(to: UInt16.self), r.count)
            }
        case .f64:
            for i in 0..<n { dst.storeBytes(of: Double(src[i]), toByteOffset: 8 * i, as: Double.self) }
        default:
            throw ScalpelError.invalid(file: nil, tensor: tensor.isEmpty ? nil : tensor, reason: "cannot write f32 values as \(dtype.rawValue)")
        }
    }

    /// Converts a tensor's bytes directly from one float dtype to another (through f32, in chunks, so
    /// no whole-tensor f32 copy is made).
    /// - Throws: as `decode` and `encode`, naming `tensor`; also when `src` or `dst` does not hold exactly
    ///   `count` elements of its type.
    public static func cast(_ src: UnsafeRawBufferPointer, from: TensorType, to: DType, count: Int, into dst: UnsafeMutableRawBufferPointer, tensor: String = "") throws {
        try checkSize(src.count, of: count, from, "input", tensor: tensor)
        try checkSize(dst.count, of: count, .plain(to), "output", tensor: tensor)
        if from == .plain(to) {
            dst.copyMemory(from: src)
            return
        }
        let inBytes = from.byteCount(elements: 1) ?? 0
        let outBytes = to.bitWidth / 8
        if from == .plain(.f32) {
            try encode(src.bindMemory(to: Float.self), as: to, into: dst, tensor: tensor)
            return
        }
        if case .plain = from, inBytes > 0 {
            let s = UncheckedBox(src), o = UncheckedBox(dst)
            try parallelChunksThrowing(count: count, chunk: chunk) { r in
                var tmp = [Float](repeating: 0, count: r.count)
                try tmp.withUnsafeMutableBufferPointer { t in
                    try decode(from, UnsafeRawBufferPointer(rebasing: s.value[(r.lowerBound * inBytes)..<(r.upperBound * inBytes)]), into: t, tensor: tensor)
                    try encode(UnsafeBufferPointer(t), as: to, into: UnsafeMutableRawBufferPointer(rebasing: o.value[(r.lowerBound * outBytes)..<(r.upperBound * outBytes)]), tensor: tensor)
                }
            }
            return
        }
        var tmp = [Float](repeating: 0, count: count)
        try tmp.withUnsafeMutableBufferPointer { t in
            try decode(from, src, into: t, tensor: tensor)
            try encode(UnsafeBufferPointer(t), as: to, into: dst, tensor: tensor)
        }
    }
}
